"""Model families. Each file holds one family's math, its module and its config."""

from arjax.models.base import AutoregressiveModel, Ordering
from arjax.models.deep_nade import DeepNADE, DeepNADEConfig
from arjax.models.fvsbn import FVSBN, FVSBNConfig
from arjax.models.lmconv import LMConv, LMConvConfig
from arjax.models.made import MADE, MADEConfig
from arjax.models.nade import NADE, NADEConfig
from arjax.models.pixelcnn import GatedPixelCNN, GatedPixelCNNConfig, PixelCNN, PixelCNNConfig
from arjax.models.rnn import RNN, RNNConfig
from arjax.models.transformer import Transformer, TransformerConfig

__all__ = [
    "AutoregressiveModel", "Ordering", "MODEL_CONFIGS", "get_model_config",
    "DeepNADE", "DeepNADEConfig", "FVSBN", "FVSBNConfig", "LMConv", "LMConvConfig", "MADE", "MADEConfig",
    "NADE", "NADEConfig", "RNN", "RNNConfig", "Transformer", "TransformerConfig",
    "PixelCNN", "PixelCNNConfig", "GatedPixelCNN", "GatedPixelCNNConfig",
]

#: Model configs by family name (used by the command line and config overrides).
MODEL_CONFIGS = {
    "deep_nade": DeepNADEConfig,
    "fvsbn": FVSBNConfig,
    "lmconv": LMConvConfig,
    "made": MADEConfig,
    "nade": NADEConfig,
    "pixelcnn": PixelCNNConfig,
    "gated_pixelcnn": GatedPixelCNNConfig,
    "rnn": RNNConfig,
    "transformer": TransformerConfig,
}


def get_model_config(family: str, **kwargs):
  """The config of a family by name, e.g. `get_model_config("nade", num_hidden=100)`."""
  if family not in MODEL_CONFIGS:
    raise ValueError(f"Unknown model family {family!r}; choose one of {sorted(MODEL_CONFIGS)}")
  return MODEL_CONFIGS[family](**kwargs)
