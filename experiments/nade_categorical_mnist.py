"""NADE with a 256-way categorical head on 8-bit MNIST (no binarization, no dequantization).

    ARJAX_DATA_DIR=../shared/data python -m arjax train nade_categorical_mnist --workdir runs/nade_categorical_mnist

Each pixel's conditional is a softmax over its 256 values, so the NLL is an
exact discrete likelihood of `mnist` (50k/10k/10k, values 0..255) and
`test_bits_per_dim` is directly bits per 8-bit pixel. The output layer costs
D·H·256 weights: with 100 hidden units the model has 20,349,604 parameters
(W 78,400 + c 100 + V 20,070,400 + b 200,704); NADE-500 would have 100,945,204,
hence 100 hidden units here.

Measured: 716.6 nats = 1.319 bits/dim after 71 epochs, stopped by a 6.4-min
budget on an H200 (experiments/results/nade_categorical_mnist.json). Adam at 1e-3 decaying by 0.95
per epoch, batch 100, early stopping on validation NLL (patience 10).
Variants: "smoke" (8 hidden units, 300 training examples, 1 epoch; seconds on CPU).
"""

import dataclasses

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.heads import Categorical
from arjax.models import NADEConfig


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="mnist"),
      model=NADEConfig(num_hidden=100, head=Categorical(num_classes=256)),
      optim=OptimConfig(learning_rate=1e-3, schedule="exponential", decay_rate=0.95),
      train=TrainConfig(batch_size=100, num_epochs=150, patience=10),
  )
  if variant == "":
    return config
  if variant == "smoke":
    return smoke(config, model=dataclasses.replace(config.model, num_hidden=8), num_epochs=1)
  raise unknown_variant(variant, ("", "smoke"))
