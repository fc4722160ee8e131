"""Anomaly scores: per-example and per-dimension NLL of any data, and heat maps of where an
image is surprising; `load_data_like` and `load_trained` read data and models for every use."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from flax import nnx

from arjax import checkpoints
from arjax import data as data_lib
from arjax import heads as heads_lib
from arjax import images
from arjax import likelihood


def load_data_like(data_config: data_lib.DataConfig, model, name: str | None = None) -> data_lib.Dataset:
  """Dataset `name` (default: the training data) preprocessed as `data_config` says, every split
  in the model's support.

  `name` is anything `arjax.data.load_dataset` reads: a dataset name or an `.npz` path. Two
  changes to `data_config` make the result scoreable: dynamic binarization becomes static (the
  same seeds, so valid/test are unchanged and train is binarized once), and 8-bit data for a
  Bernoulli model are binarized statically, as when a model of `binarized_mnist` scores
  `fashion_mnist`.
  """
  changes = {"binarize": "static"} if data_config.binarize == "dynamic" else {}
  if name is not None:
    changes["name"] = name
    if name.endswith(".npz"):
      changes["source"] = "local"
  config = dataclasses.replace(data_config, **changes)
  dataset = data_lib.load_dataset(config)
  if isinstance(model.head, heads_lib.Bernoulli) and dataset.num_levels == 256:
    dataset = data_lib.load_dataset(dataclasses.replace(config, binarize="static"))
  if dataset.event_shape != model.event_shape:
    raise ValueError(f"Dataset {config.name!r} has examples of shape {dataset.event_shape}; the model "
                     f"takes {model.event_shape}.")
  return dataset


def load_trained(workdir, *, which: str = "best"):
  """(model, config, dataset) of a training workdir, every split of the dataset in the model's
  support: `checkpoints.load_trained_model`, with a dynamically binarized training split (still 8-bit
  on load) binarized once."""
  model, config, dataset = checkpoints.load_trained_model(workdir, which=which)
  if config.data.binarize == "dynamic":
    dataset = load_data_like(config.data, model)
  return model, config, dataset


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _nll_batch(graphdef, state, x):
  model = nnx.merge(graphdef, state)
  per_dim = -likelihood.log_prob_per_dim(model, x).reshape(x.shape[0], -1)  # [B, D]
  if model.num_masks > 1:
    return -likelihood.ensemble_log_prob(model, x), per_dim
  return per_dim.sum(-1), per_dim


def nll_scores(model, x: np.ndarray, *, batch_size: int = 1000) -> dict[str, np.ndarray]:
  """Negative log-likelihoods of `x [N, *event_shape]`.

  Returns:
    nll_nats: `[N]`, −log p(x) (for models trained over several mask draws, the ensemble's).
    bits_per_dim: `[N]`, nll_nats / (D ln 2).
    per_dim_nll: `[N, D]`, −log p(x_d | x_<d) in nats under the model's current ordering;
      its rows sum to nll_nats for single-ordering models.
  """
  likelihood.check_input(model, x)
  nll, per_dim = likelihood.map_batches(_nll_batch, model, np.asarray(x), batch_size)
  return {"nll_nats": nll, "bits_per_dim": likelihood.nats_to_bits_per_dim(nll, model.num_dims),
          "per_dim_nll": per_dim}


def summarize(nll: np.ndarray) -> dict:
  """Mean, median, standard deviation and count of `nll [N]`."""
  nll = np.asarray(nll, np.float64)
  return {"mean_nll_nats": float(nll.mean()), "median_nll_nats": float(np.median(nll)),
          "std_nll_nats": float(nll.std()), "count": int(nll.size)}


def heatmap_picture(x: np.ndarray, per_dim_nll: np.ndarray, image_shape, *, num_levels: int | None,
                    num_columns: int = 4, title: str | None = None) -> tuple[np.ndarray, tuple[float, float]]:
  """Each image next to the heat map of its per-pixel NLL, on one colour scale for all, with a
  colour bar in nats (inferno: dark = unsurprising, bright = surprising).

  Args:
    x: `[N, D]` images; per_dim_nll: `[N, D]` nats (summed over channels per pixel).
    image_shape: `[H, W, C]`.
  Returns:
    (uint8 RGB picture `[H', W', 3]`, (low, high) nats of the colour scale).
  """
  from arjax import plots

  height, width, channels = image_shape
  pixels = images.to_uint8(x, num_levels).reshape(-1, height, width, channels)  # [N, H, W, C]
  if channels == 1:
    pixels = np.repeat(pixels, 3, axis=-1)  # [N, H, W, 3]
  nll = np.asarray(per_dim_nll).reshape(-1, height, width, channels).sum(-1)  # [N, H, W]
  low, high = min(0.0, float(nll.min())), float(nll.max())
  picture = plots.heatmaps_picture(pixels, nll, low=low, high=high, num_columns=num_columns, title=title)
  return picture, (low, high)
