"""FVSBN (logistic-regression conditionals) on statically binarized MNIST.

    ARJAX_DATA_DIR=../shared/data python -m arjax train fvsbn_binarized_mnist --workdir runs/fvsbn

Expected: test NLL ≤ 97.45 nats (the published FVSBN figure, Larochelle & Murray 2011).
Variants: "smoke".
"""

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import FVSBNConfig


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="binarized_mnist"),
      model=FVSBNConfig(),
      optim=OptimConfig(learning_rate=1e-3, schedule="exponential", decay_rate=0.95),
      train=TrainConfig(batch_size=100, num_epochs=100, patience=5),
  )
  if variant == "":
    return config
  if variant == "smoke":
    return smoke(config)
  raise unknown_variant(variant, ("", "smoke"))
