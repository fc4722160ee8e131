"""PixelCNN on 8-bit grayscale MNIST (values 0..255) with a discretized logistic mixture head,
reported in bits/dim next to the categorical NADE's 1.319 (experiments/nade_categorical_mnist.py).

    ARJAX_DATA_DIR=../shared/data python -m arjax train pixelcnn_mnist_8bit --workdir runs/pixelcnn_mnist_8bit
    ARJAX_DATA_DIR=../shared/data python -m arjax train pixelcnn_mnist_8bit:categorical --workdir runs/pixelcnn_mnist_cat

Main run: the binarized-MNIST PixelCNN (15 residual blocks, 32 features, output
layer 32) with PixelCNN++'s discretized mixture of 5 logistics per pixel
(`DiscretizedLogisticMixture(num_components=5)`, 15 params a pixel), Adam 1e-3
decaying ×0.99 per epoch, batch 64, early stopping on validation. Variant
"categorical": a 256-way softmax per pixel instead (256 params a pixel). Both
need hours on a CPU (resumable: the same command continues). Measured: the main
run with `train.max_train_minutes=80` on one core of the 2-core AMD EPYC CPU
(`taskset -c 0`): 4 epochs of ~20 min, test NLL 625.28 ± 1.45 nats =
**1.151 bits/dim** at the best (fourth) epoch, 83 min wall, not converged
(experiments/results/pixelcnn_mnist_8bit.json, .metrics.jsonl) — below NADE's
1.319 after the first epoch (1.217 on validation). PixelCNN-class models reach
~1.0 on this data in the literature's dequantized setting, not directly comparable.
Variant "smoke": a tiny model on 500 examples, seconds on a CPU.
"""

import dataclasses

from arjax import heads
from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import PixelCNNConfig

VARIANTS = ("", "categorical", "smoke")


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="mnist", layout="image"),
      model=PixelCNNConfig(head=heads.DiscretizedLogisticMixture(num_components=5)),
      optim=OptimConfig(learning_rate=1e-3, schedule="exponential", decay_rate=0.99),
      train=TrainConfig(batch_size=64, num_epochs=200, patience=10, eval_batch_size=500,
                        num_samples=16),
  )
  if variant == "":
    return config
  if variant == "categorical":
    return dataclasses.replace(config, model=PixelCNNConfig(head=heads.Categorical(num_classes=256)))
  if variant == "smoke":
    return smoke(config, model=dataclasses.replace(config.model, num_blocks=2, num_features=8,
                                                   head_features=8))
  raise unknown_variant(variant, VARIANTS)
