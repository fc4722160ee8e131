"""MADE on statically binarized MNIST (Germain, Gregor, Murray & Larochelle 2015).

    ARJAX_DATA_DIR=../shared/data python -m arjax train made_binarized_mnist --workdir runs/made
    ARJAX_DATA_DIR=../shared/data python -m arjax train made_binarized_mnist:ensemble --workdir runs/made_ensemble

Main run: one hidden layer of 500 ReLU units, one mask, raster ordering
(published: 88.40 nats), with direct input→output connections, hidden degrees
at quantiles of the training pixels' cumulative marginal entropy
(`hidden_degrees="entropy"`), a coupled L1 penalty 2e-4, batch 50, Adam 2e-3
decaying ×0.99 per epoch and parameter averaging (EMA 0.9995): 88.34 nats (CPU,
12 min).
Without direct connections a single-mask MADE-500 trained to 100.8 here: with
500 units for 783 degrees an output rarely has a unit that sees the pixel just
before it. With them it overfits (train 86 vs valid 93 without a penalty); the
penalty was chosen on validation over L2 {0, 1e-4, 3e-4, 1e-3, 3e-3}, L1 {1e-4,
3e-4, 1e-3} and L1 1e-4 + L2 1e-3 with evenly spread degrees (best: L1 3e-4,
89.44), then with entropy degrees over L1 {2e-4, 3e-4, 4e-4}, decay {0.98, 0.99}
and EMA {0.999, 0.9995} on the CPU (best: L1 2e-4, ×0.99, EMA 0.9995 at batch 100
and Adam 3e-3, 88.42), then around that on an H200 over L1 {1.5e-4, 2.5e-4},
decay {0.993, 0.995}, EMA 0.9998, Adam 2e-3 and batch 50 with Adam 2e-3 (best
valid: the last; experiments/results/sweeps/made_binarized_mnist/made_binarized_mnist__*).
Measured: see experiments/results/made_binarized_mnist.json (CPU).
The paper's width with one mask (one hidden layer of 8000, direct connections,
Adam 1e-3, coupled L2 1e-3; `model.hidden_sizes="(8000,)" optim.learning_rate=1e-3`):
88.76 nats, early-stopped at epoch 39 after 1.3 min on an H200
(experiments/results/sweeps/made_binarized_mnist/made_binarized_mnist__gpu_8000_direct_l2_1e-3.json).
Variant "ensemble": two hidden layers of 8000 units with direct input→output
connections (as the paper's code runs MNIST: mgermain/MADE, `direct_input_connect
Output`), trained over 32 draws of (random ordering, hidden degrees), a new draw
every step; the test NLL is that of the 32-mask ensemble, log-mean-exp of the 32
models' likelihoods (published: 86.64 nats), and results.json also gives draw 0
alone (`test_nll_single_mask_nats`). A coupled L2 penalty 1e-4 and parameter
averaging (EMA 0.9995) keep one draw from overfitting (without them: train 80 vs
valid 93 for one draw). The ensemble's width needs a GPU: 300 epochs in 11.2 min
on an H200 (two invocations of one workdir) reached 86.47 (one draw: 90.58;
valid 87.27, flat at the end). The per-epoch validation runs at the device's
default precision (TF32 there) and the sample grid is drawn every 25 epochs: an
epoch alone on the H200 took ~1.7 s, against ~5 s with full-float32 validation
and a grid every epoch, and the valid NLL at epoch 115 matched the float32 run's
to 0.001. The test NLL is always computed in full float32. The resumable checkpoint
(~900 MB) is written every 10 epochs (`train.checkpoint_every`; added after that run). 115 epochs had given 86.89; without
the penalty and EMA, 130 epochs had reached 87.08 (one draw 93.08); with L2
1e-3, 93.69 after 78 epochs; without
direct connections and at Adam 3e-4, 92.49 after 39 epochs
(experiments/results/sweeps/made_binarized_mnist/made_binarized_mnist__*ensemble*).
Adam with an exponentially decaying learning rate (batch 50 for one mask, 100 for
the ensemble), model chosen on
validation NLL (of the ensemble, for the ensemble).
Variants: "smoke" (tiny, seconds on CPU), "ensemble_smoke" (the ensemble's
code path at toy size).
"""

import dataclasses

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import MADEConfig

VARIANTS = ("", "ensemble", "smoke", "ensemble_smoke")


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="binarized_mnist"),
      model=MADEConfig(hidden_sizes=(500,), direct_connections=True, hidden_degrees="entropy"),
      optim=OptimConfig(learning_rate=2e-3, schedule="exponential", decay_rate=0.99, l1=2e-4,
                        ema_decay=0.9995),
      train=TrainConfig(batch_size=50, num_epochs=400, patience=10),
  )
  ensemble = dataclasses.replace(
      config,
      model=MADEConfig(hidden_sizes=(8000, 8000), ordering="random", num_masks=32,
                       direct_connections=True),
      optim=OptimConfig(learning_rate=1e-3, schedule="exponential", decay_rate=0.98, l2=1e-4,
                        ema_decay=0.9995),
      train=TrainConfig(batch_size=100, num_epochs=1000, patience=30, eval_batch_size=500,
                        samples_every=25, valid_precision="default", checkpoint_every=10))
  if variant == "":
    return config
  if variant == "ensemble":
    return ensemble
  if variant == "smoke":
    return smoke(config, model=dataclasses.replace(config.model, hidden_sizes=(16,)))
  if variant == "ensemble_smoke":
    return smoke(ensemble, model=MADEConfig(hidden_sizes=(16, 16), ordering="random", num_masks=4))
  raise unknown_variant(variant, VARIANTS)
