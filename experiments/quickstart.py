"""Quick start: a small NADE (64 hidden units) on binarized MNIST, well under a minute on a laptop CPU.

    ARJAX_DATA_DIR=../shared/data python -m arjax train quickstart --workdir runs/quickstart

Writes runs/quickstart/results.json (test NLL), samples/ (a PNG grid per epoch)
and metrics.jsonl. Expected: test NLL 105.20 nats after 4 epochs, in 21 s on an idle 2-core
CPU with the fused NADE kernel (experiments/results/quickstart.json). A NADE-500 needs the
full `nade_binarized_mnist` run to reach ≤ 88.3.
Variants: "smoke".
"""

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import NADEConfig


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="binarized_mnist"),
      model=NADEConfig(num_hidden=64),
      optim=OptimConfig(learning_rate=3e-3),
      train=TrainConfig(batch_size=100, num_epochs=4, patience=None),
  )
  if variant == "":
    return config
  if variant == "smoke":
    return smoke(config, num_epochs=1)
  raise unknown_variant(variant, ("", "smoke"))
