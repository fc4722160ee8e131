"""Order-agnostic images on statically binarized MNIST: one locally masked PixelCNN over K pixel
orderings (Jain, Abbeel & Pathak 2020, "Locally Masked Convolution for Autoregressive Models").

    ARJAX_DATA_DIR=../shared/data python -m arjax train lmconv_binarized_mnist --workdir runs/lmconv
    ARJAX_DATA_DIR=../shared/data python -m arjax train lmconv_binarized_mnist:cpu_hour \\
        --workdir runs/lmconv_binarized_mnist__cpu_hour train.max_train_minutes=20

Main run: a 5 × 5 strictly masked first layer and 8 residual 3 × 3 locally masked layers of 64
features (ELU), 1 × 1 output layers, Bernoulli head, all 8 orderings of
`arjax.models.lmconv.PIXEL_ORDERINGS` (raster, S-curve, their transposes and reversals), a new
ordering every step; validation and test use the 8-ordering mixture, log-mean-exp of the
likelihoods (results.json also gives ordering 0 alone). Adam 1e-3 decaying ×0.99 per epoch,
batch 32, early stopping on validation. Aimed at the static-binarization record (79.20 nats,
Diagonal BiLSTM); this size needs an accelerator (not yet run). The LMConv paper's 77.58 is on
*dynamically* binarized MNIST with the test set included: not comparable.
Variant "cpu_hour": a run that makes some progress in 20 minutes on one starved CPU core: 16
features, 4 residual layers and the 4 raster-type orderings (one convolution per layer each:
S-curves cost two), batch 32, Adam 3e-3, epochs of the first 1,600 training images (50 steps:
the loop stops for time only at the end of an epoch), and validation only when the time budget
ends the run (`train.eval_every_seconds=1e6`), since each pass over the 10,000 validation
images under 4 orderings takes minutes there. Run on the 2-core AMD EPYC CPU under a load of
~20 from other jobs, where this process got ~4% of a core (32 features had taken ~6 s per step
at ~10%). Measured: experiments/results/lmconv_binarized_mnist__cpu_hour.json.
Variant "smoke": a tiny model on 500 examples, seconds on a CPU.
Resumable: the same command on the same workdir continues a run.
"""

import dataclasses

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import LMConvConfig

VARIANTS = ("", "cpu_hour", "smoke")


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="binarized_mnist", layout="image"),
      model=LMConvConfig(num_features=64, num_layers=8, num_orderings=8),
      optim=OptimConfig(learning_rate=1e-3, schedule="exponential", decay_rate=0.99),
      train=TrainConfig(batch_size=32, num_epochs=200, patience=10, eval_batch_size=500,
                        num_samples=16),
  )
  if variant == "":
    return config
  if variant == "cpu_hour":
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, max_train_examples=1600),
        model=LMConvConfig(num_features=16, num_layers=4, num_orderings=4),
        optim=OptimConfig(learning_rate=3e-3),
        train=dataclasses.replace(config.train, eval_every_seconds=1e6))
  if variant == "smoke":
    return smoke(config, model=LMConvConfig(num_features=8, num_layers=1, num_orderings=4))
  raise unknown_variant(variant, VARIANTS)
