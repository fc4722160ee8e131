"""From an experiment's config to what the loop and the uses need: the model and the contexts."""

from __future__ import annotations

from flax import nnx

from arjax import config as config_lib
from arjax import data as data_lib


def build_model(config: config_lib.Config, dataset: data_lib.Dataset):
  """The model of `config` for `dataset`; a family whose construction depends on statistics of the
  training split (MADE's "entropy" hidden degrees) gets them through its config's `data_kwargs`,
  so rebuilding from the same config and data gives the same model."""
  data_kwargs = getattr(config.model, "data_kwargs", lambda train_x: {})(dataset.splits["train"])
  return config.model.build(dataset.event_shape, rngs=nnx.Rngs(config.train.seed), **data_kwargs)


def split_contexts(config: config_lib.Config, model, dataset: data_lib.Dataset) -> dict:
  """{split: the contexts `[N, K]` of its examples, or None} for `model` on `dataset`.

  Raises ValueError when the data's context (`config.data.context`) and the
  model's `context_size` do not fit together.
  """
  context_size = model.context_size
  if config.data.context == "none":
    if context_size:
      raise ValueError(
          f"The model conditions on a context of size {context_size} (model.context_size) but the "
          "data give none; set data.context=label (with a labelled dataset) or model.context_size=0.")
    return dict.fromkeys(data_lib.SPLITS)
  if context_size != dataset.num_classes:
    raise ValueError(
        f"data.context={config.data.context!r} gives one-hot labels of {dataset.num_classes} classes; "
        f"build the model with context_size={dataset.num_classes} (model.context_size={context_size} now).")
  return {split: data_lib.split_context(config.data, dataset, split, context_size)
          for split in data_lib.SPLITS}
