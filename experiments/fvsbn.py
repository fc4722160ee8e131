"""FVSBN on your own data: defaults that suit a few hundred to tens of thousands of rows.

    python -m arjax train fvsbn --data my.npz --workdir runs/mine

`my.npz` holds `train` and `test` arrays (and `valid`; without it a sixth of `train` is held
out), one row per example, values 0/1 (for 8-bit or real data add
`model.head=categorical(num_classes=256)` or
`model.head=mixture_of_gaussians(num_components=10)`). Without `--data` the run uses
binarized MNIST. The run is 10,000 Adam steps whatever the data's size, under a cosine
schedule over those steps; it validates every 250 steps (or every epoch when an
epoch is longer), keeps the best validation checkpoint (early stopping is what regularizes on a
few hundred rows), stops after 8 validations without improvement, and puts a Gaussian prior of
precision 1 on the weights (an L2 penalty of 1/N_train per example: it matters on small data
and fades on large; on 300 rows precisions 10 and 100 gave a worse best validation NLL).
The defaults are `nade`'s (measured there); FVSBN's conditionals are logistic regressions.
Variants: "smoke" (tiny model, a few hundred examples; seconds on CPU).
"""

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import FVSBNConfig

OPTIM = OptimConfig(learning_rate=1e-3, schedule="cosine", prior_l2=1.0)
TRAIN = TrainConfig(batch_size=100, num_steps=10_000, eval_every_steps=250, patience=8)


def get_config(variant: str = "") -> Config:
  config = Config(data=DataConfig(name="binarized_mnist"), model=FVSBNConfig(),
                  optim=OPTIM, train=TRAIN)
  if variant == "":
    return config
  if variant == "smoke":
    return smoke(config)
  raise unknown_variant(variant, ("", "smoke"))
