"""Gated PixelCNN on statically binarized MNIST (van den Oord et al. 2016, "Conditional Image
Generation with PixelCNN Decoders"; 80.10 nats as reimplemented in the PixelVAE paper, Table 1).

    ARJAX_DATA_DIR=../shared/data python -m arjax train gated_pixelcnn_binarized_mnist --workdir runs/gated
    ARJAX_DATA_DIR=../shared/data python -m arjax train gated_pixelcnn_binarized_mnist:cpu \
        --workdir runs/gated_pixelcnn_binarized_mnist train.max_train_minutes=60

Main run ("" variant): 8 gated layers of 64 features per stack (7 × 7 first layers,
3 × 3 gated layers), a 1 × 1 output layer of 128, Bernoulli head, Adam 1e-3
decaying ×0.99 per epoch, batch 64, early stopping on validation (patience 10).
It needs an accelerator to converge in reasonable time; expected near the
published 80.10.
Variant "cpu": the main run at a width that makes progress on one CPU core
in an hour (16 features per stack, 4 gated layers, output layer 32, batch 32:
~10 min an epoch of all 50,000 images on an idle core of the 2-core AMD EPYC CPU), run with a
wall-clock budget (`train.max_train_minutes`); running the same command again on
the same workdir resumes it. Measured on the 2-core AMD EPYC CPU, shared with other jobs (load
average 14-22), with `train.max_train_minutes=30 data.max_train_examples=10000` (the first 10,000
training examples, so that an epoch fits in the time): 3 epochs, valid 99.53 / 97.53 / 96.15,
in 44.7 min of training; the same command again, on a core with nothing else running (1.9 min
an epoch), 13 more epochs: valid 93.26, test NLL 92.78 nats (full test set, best epoch 16),
69 min of training in all (experiments/results/gated_pixelcnn_binarized_mnist.json,
.invocations.json, .metrics.jsonl) — still improving, far from converged.
Variant "smoke": a tiny model on 500 examples, seconds on a CPU.
"""

import dataclasses

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import GatedPixelCNNConfig

VARIANTS = ("", "cpu", "smoke")


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="binarized_mnist", layout="image"),
      model=GatedPixelCNNConfig(num_layers=8, num_features=64, head_features=128),
      optim=OptimConfig(learning_rate=1e-3, schedule="exponential", decay_rate=0.99),
      train=TrainConfig(batch_size=64, num_epochs=200, patience=10, eval_batch_size=500,
                        num_samples=16),
  )
  if variant == "":
    return config
  if variant == "cpu":
    return dataclasses.replace(
        config, model=GatedPixelCNNConfig(num_layers=4, num_features=16, head_features=32),
        train=dataclasses.replace(config.train, batch_size=32))
  if variant == "smoke":
    return smoke(config, model=GatedPixelCNNConfig(num_layers=2, num_features=8, head_features=8))
  raise unknown_variant(variant, VARIANTS)
