"""RNADE (NADE with a 10-component mixture-of-Gaussians head) on continuous MNIST in logit space.

    ARJAX_DATA_DIR=../shared/data python -m arjax train rnade_mnist_logit --workdir runs/rnade_mnist_logit

Data as in MAF (Papamakarios et al. 2017): the 8-bit pixels of `mnist`
(50k/10k/10k) are dequantized with uniform noise (fresh noise every training
step; valid/test noise fixed at load time) and mapped to logit space,
y = logit(λ + (1 − 2λ)·(x + u)/256) with λ = 1e-6. The reported NLL is in nats
of the logit-space density — the unit of MAF's Table 2, whose MADE MoG entry
for MNIST is an average test log-likelihood of −1038.5 nats (protocol checked
against MAF's own loader, gpapamak/maf datasets/mnist.py; see the README). results.json also holds
`test_bits_per_pixel_8bit`, the same model's bits/pixel of the 8-bit data.

Measured: 990.8 nats (log-likelihood −990.8; 1.322 bits per 8-bit pixel) after
70 epochs, stopped by a 6.4-min budget on an H200 while still improving
(experiments/results/rnade_mnist_logit.json). NADE-500 with 784 × 500 × 30
output weights: 12,176,020 parameters. Adam at 1e-4, batch 100, patience 30
epochs: a cautious starting point (mixture heads on logit data can be unstable
at higher rates), not yet tuned.
Variants: "smoke" (8 hidden units, 300 training examples, 1 epoch; seconds on CPU).
"""

import dataclasses

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.heads import MixtureOfGaussians
from arjax.models import NADEConfig


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="mnist", dequantize="logit", logit_lambda=1e-6),
      model=NADEConfig(num_hidden=500, head=MixtureOfGaussians(num_components=10)),
      optim=OptimConfig(learning_rate=1e-4),
      train=TrainConfig(batch_size=100, num_epochs=500, patience=30),
  )
  if variant == "":
    return config
  if variant == "smoke":
    return smoke(config, model=dataclasses.replace(config.model, num_hidden=8), num_epochs=1)
  raise unknown_variant(variant, ("", "smoke"))
