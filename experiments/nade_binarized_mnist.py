"""NADE-500 on statically binarized MNIST (Larochelle & Murray 2011).

    ARJAX_DATA_DIR=../shared/data python -m arjax train nade_binarized_mnist --workdir runs/nade

Expected: test NLL ≤ 88.3 nats (published: 88.86 Larochelle & Murray 2011; 88.33
Uria et al. 2014). Measured: 88.15 ± 0.23 (valid 88.90), best epoch 74,
early-stopped after epoch 99, 5.9 min on one H200
(experiments/results/nade_binarized_mnist.json; its time budget
`train.max_train_minutes=6.4` was not reached). Adam with a learning rate decaying by 0.98 per epoch (chosen on
validation over 0.95, which gave 89.45 valid / 88.64 test), batch 100, model
chosen on validation NLL (early stopping, patience 25).
Variants: "smoke" (tiny model, a few hundred examples; seconds on CPU).

Sweeps: "hidden" (num_hidden 100, 250, 500), "smoke_hidden" (the smoke variant at 8 and 16):

    ARJAX_DATA_DIR=../shared/data python -m arjax sweep nade_binarized_mnist:hidden --root runs/sweeps/nade_hidden
    python -m arjax sweep nade_binarized_mnist:hidden --root runs/sweeps/nade_hidden --report

Run with train.max_train_minutes=24 per point on the shared 2-core CPU: 26, 6 and 5 epochs,
none converged (experiments/results/sweeps/nade_hidden/, with that caveat).
"""

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import NADEConfig
from arjax.sweeps import Grid

SWEEPS = {
    "hidden": Grid({"model.num_hidden": [100, 250, 500]}),
    "smoke_hidden": Grid({"model.num_hidden": [8, 16]}, variant="smoke"),
}


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="binarized_mnist"),
      model=NADEConfig(num_hidden=500),
      optim=OptimConfig(learning_rate=1e-3, schedule="exponential", decay_rate=0.98),
      train=TrainConfig(batch_size=100, num_epochs=400, patience=25),
  )
  if variant == "":
    return config
  if variant == "smoke":
    return smoke(config, model=NADEConfig(num_hidden=16))
  raise unknown_variant(variant, ("", "smoke"))
