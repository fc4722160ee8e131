"""A causal Transformer over the pixels of statically binarized MNIST (ImageGPT-style: Chen et al.
2020, "Generative Pretraining from Pixels"), sampled with its KV cache.

    ARJAX_DATA_DIR=../shared/data python -m arjax train transformer_binarized_mnist --workdir runs/transformer

Main run: 4 pre-norm blocks of width 128 with 4 heads, row/column position embeddings, raster
order, Bernoulli head, Adam 1e-3 with a 1-epoch warm-up and cosine decay, batch 32, early
stopping on validation. Attention over all 784 positions makes a training step cost
O(784² E) per example: this size needs an accelerator (not yet run).
Variant "smoke": a tiny model on 500 examples, seconds on a CPU.
Resumable: the same command on the same workdir continues a run.
"""

from arjax.config import Config, OptimConfig, TrainConfig, smoke, unknown_variant
from arjax.data import DataConfig
from arjax.models import TransformerConfig

VARIANTS = ("", "smoke")


def get_config(variant: str = "") -> Config:
  config = Config(
      data=DataConfig(name="binarized_mnist", layout="image"),
      model=TransformerConfig(num_layers=4, num_heads=4, embed_dim=128, position_embedding="row_column"),
      optim=OptimConfig(learning_rate=1e-3, schedule="cosine", warmup_epochs=1.0),
      train=TrainConfig(batch_size=32, num_epochs=100, patience=10, eval_batch_size=250,
                        num_samples=16),
  )
  if variant == "":
    return config
  if variant == "smoke":
    return smoke(config, model=TransformerConfig(num_layers=1, num_heads=2, embed_dim=16,
                                                 position_embedding="row_column"))
  raise unknown_variant(variant, VARIANTS)
