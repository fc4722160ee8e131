"""A one-layer LSTM-256 read in raster order on statically binarized MNIST.

    ARJAX_DATA_DIR=../shared/data python -m arjax train lstm_binarized_mnist --workdir runs/lstm

Measured: 86.23 nats after 32 epochs (11.3 min on an H200 shared with four other
runs, over three invocations of one workdir; experiments/results/lstm_binarized_mnist.json),
stopped by the time budget while still improving (about 0.1 nats per epoch at the end).
Batch 500 with Adam 2e-3: the 784-step recurrence is latency-bound on a GPU, so
larger batches buy epochs (at batch 100 one epoch took 7 min and reached 112.45).
The model reads the 784 pixels
one per step, with a learned position embedding (arjax/models/rnn.py); the
gradient is clipped to global norm 1, the usual guard against the occasional
exploding gradient of a 784-step recurrence. Model chosen on validation NLL.
Variants: "smoke" (LSTM-16, a few hundred examples; seconds on CPU).
"""

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import RNNConfig


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="binarized_mnist"),
      model=RNNConfig(cell="lstm", num_hidden=256),
      optim=OptimConfig(learning_rate=2e-3, schedule="exponential", decay_rate=0.95,
                        grad_clip_norm=1.0),
      train=TrainConfig(batch_size=500, num_epochs=100, patience=10, eval_batch_size=500),
  )
  if variant == "":
    return config
  if variant == "smoke":
    return smoke(config, model=RNNConfig(cell="lstm", num_hidden=16))
  raise unknown_variant(variant, ("", "smoke"))
