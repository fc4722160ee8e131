"""PixelCNN on statically binarized MNIST (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel
Recurrent Neural Networks": 81.30 nats).

    ARJAX_DATA_DIR=../shared/data python -m arjax train pixelcnn_binarized_mnist --workdir runs/pixelcnn

Main run: pytorch-generative's MNIST configuration (a 7 × 7 mask-A layer, 15
residual blocks of 3 × 3 mask-B convolutions on a 32-feature stream, 16 inside a
block, a 1 × 1 output layer of 32; `PixelCNNConfig()`'s defaults), Bernoulli head,
Adam 1e-3 decaying ×0.99 per epoch, batch 128, early stopping on validation.
(pytorch-generative's README reports ~81.45 for it on *dynamically* binarized MNIST,
test set included; not comparable to the static split's 81.30.) Hours on a CPU;
resumable: the same command on the same workdir continues the run.
Variant "smoke": a tiny model on 500 examples, seconds on a CPU.
"""

import dataclasses

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import PixelCNNConfig

VARIANTS = ("", "smoke")


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="binarized_mnist", layout="image"),
      model=PixelCNNConfig(),
      optim=OptimConfig(learning_rate=1e-3, schedule="exponential", decay_rate=0.99),
      train=TrainConfig(batch_size=128, num_epochs=200, patience=10, eval_batch_size=500,
                        num_samples=16),
  )
  if variant == "":
    return config
  if variant == "smoke":
    return smoke(config, model=PixelCNNConfig(num_blocks=2, num_features=8, head_features=8))
  raise unknown_variant(variant, VARIANTS)
