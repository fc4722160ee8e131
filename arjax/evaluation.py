"""Evaluating a model over whole arrays: likelihoods in fixed-size jitted batches, and sample grids.

`dataset_log_prob` is what the test NLL and every use report; `validation_log_prob` is what early
stopping watches (the exact likelihood, or a family's own training objective where the exact one
costs D passes); `sample_grid` and `save_samples` draw the PNG grids a run writes.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from flax import nnx

from arjax import images
from arjax import likelihood
from arjax import sampling
from arjax import sharding


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _batch_log_prob(graphdef, state, x, context=None):
  return likelihood.ensemble_log_prob(nnx.merge(graphdef, state), x, context=context)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _batch_log_prob_current_mask(graphdef, state, x, context=None):
  return likelihood.log_prob(nnx.merge(graphdef, state), x, context=context)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _batch_objective(graphdef, state, x, context=None, *, offset):
  # A key of its own for each batch (from its first example's index): under one key for
  # every batch, example i of each batch drew the same ordering and split, so a whole
  # split's estimate rested on one batch's worth of draws and moved by ~±2 nats with the key.
  key = jax.random.fold_in(jax.random.key(0), offset)
  return -nnx.merge(graphdef, state).training_objective(x, key, context=context)


def _on_mesh(batch_fn, placement: sharding.Placement | None):
  """`batch_fn` with its batch split over `placement`'s devices (rows padded to a multiple of
  the device count, then cut back) and its output fetched to the host; `batch_fn` itself
  without a placement or on one device."""
  if placement is None or placement.trivial:
    return batch_fn

  def sharded(graphdef, state, x, context=None, **options):
    x = np.asarray(x)
    num, padding = len(x), (-len(x)) % placement.num_devices

    def pad(array):
      array = np.asarray(array)
      return np.concatenate([array, np.repeat(array[:1], padding, axis=0)]) if padding else array

    if context is not None:
      options["context"] = placement.put_batch(pad(context))
    if "offset" in options:  # a host scalar: every process passes the same one
      options["offset"] = np.asarray(options["offset"])
    output = batch_fn(graphdef, state, placement.put_batch(pad(x)), **options)
    return jax.tree.map(lambda part: part[:num], placement.fetch(output))

  return sharded


def dataset_log_prob(model, x: np.ndarray, *, context: np.ndarray | None = None, batch_size: int = 1000,
                     ensemble: bool = True, precision: str = "highest",
                     placement: sharding.Placement | None = None) -> np.ndarray:
  """log p(x) `[N]` over a whole array, in fixed-size jitted batches (the last one padded);
  log p(x | context) given a conditional model's `context [N, C]`.

  For models with several mask draws (orderings) this is the ensemble's
  likelihood, or with `ensemble=False` that of the current draw alone. Matrix
  products run in full float32 (`highest` precision), also on GPUs whose
  default is TF32, so reported likelihoods do not depend on the card;
  `precision="default"` uses the device's default instead (faster there).
  With a `placement` (arjax.sharding), each batch is split over its devices.
  """
  batch_fn = _on_mesh(_batch_log_prob if ensemble else _batch_log_prob_current_mask, placement)
  with jax.default_matmul_precision(precision):
    return likelihood.map_batches(batch_fn, model, x, batch_size, context=context)


def validation_log_prob(model, x: np.ndarray, *, context: np.ndarray | None = None,
                        batch_size: int = 1000, precision: str = "highest",
                        placement: sharding.Placement | None = None) -> np.ndarray:
  """What early stopping watches, `[N]`: `dataset_log_prob`, or for a family with its own
  training objective minus that estimate under fixed keys, one per batch (the exact likelihood
  of such a model can cost D passes, too many to run every epoch). `precision` as in
  `dataset_log_prob`, and so is `placement`."""
  if not model.has_training_objective:
    return dataset_log_prob(model, x, context=context, batch_size=batch_size, precision=precision,
                            placement=placement)
  with jax.default_matmul_precision(precision):
    return likelihood.map_batches(_on_mesh(_batch_objective, placement), model, x, batch_size,
                                  context=context, pass_offset=True)



def sample_grid(model, key, num_samples: int, *, temperature: float = 1.0) -> tuple[np.ndarray, int | None]:
  """(samples `[N, D]`, columns of their grid): `num_samples` samples, or for a class-conditional
  model ⌈num_samples / K⌉ of every class, one row per class (None: a square grid)."""
  if not model.context_size:
    return np.asarray(sampling.sample(model, key, num_samples, temperature=temperature)), None
  num_per_class = -(-num_samples // model.context_size)
  context = sampling.per_class_context(model.context_size, num_per_class)  # [K·n, K]
  samples = sampling.sample(model, key, len(context), temperature=temperature, context=context)
  return np.asarray(samples), num_per_class


def save_samples(model, dataset, path, key, num_samples, *, caption: str | None = None):
  """Writes a PNG grid of `num_samples` samples (one row per class for a conditional model)
  under `caption`; nothing for data that are not images, or `num_samples` 0."""
  if dataset.image_shape is None or num_samples <= 0:
    return None
  samples, num_columns = sample_grid(model, key, num_samples)  # every process draws them
  if not sharding.is_writer():
    return None
  return images.save_grid(path, samples, dataset.image_shape, num_levels=dataset.num_levels,
                          num_columns=num_columns, caption=caption)
