"""Log-likelihoods of any model: log p(x) = Σ_d log p(x_d | x_<d), in nats.

These are pure functions of (model, x): they work under `nnx.jit`, inside
`jax.jit` after `nnx.merge`, and under `jax.grad` of the model's parameters.
The shape of `x` is always checked; its values (support, NaN) are checked when
`x` is concrete, with a ValueError that says what is wrong. Traced values cannot
be checked on the host: there a value outside the head's support gets
log p = −inf (probability zero) and a NaN gives NaN (`heads`), never a finite
number. A batch of size 0 gives empty results of the right shape.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from flax import nnx

from arjax import heads as heads_lib
from arjax.models.base import AutoregressiveModel


def check_input(model: AutoregressiveModel, x, *, name: str = "x") -> None:
  """Raises ValueError unless `x` is `[B, *event_shape]` with values in the head's support."""
  shape = tuple(np.shape(x))
  if len(shape) != 1 + len(model.event_shape) or shape[1:] != model.event_shape:
    raise ValueError(
        f"{name} must have shape [batch, {', '.join(map(str, model.event_shape))}] for this "
        f"{type(model).__name__} (event_shape={model.event_shape}); got {shape}. "
        "Reshape the data, or add a batch axis with x[None] for a single example.")
  if heads_lib.is_concrete(x):
    model.head.validate(x)


def check_empty_context(model: AutoregressiveModel, context) -> None:
  """For a batch of size 0: the context must still be what the model takes (`[0, C]` or None)."""
  check_context = getattr(model, "_check_context", None)
  if check_context is not None:
    check_context(context, 0)


def log_prob_per_dim(model: AutoregressiveModel, x: jax.Array, *,
                     context: jax.Array | None = None) -> jax.Array:
  """log p(x_d | x_<d) for every dimension: `[B, *event_shape]` nats."""
  check_input(model, x)
  if np.shape(x)[0] == 0:  # the networks' reshapes cannot infer a size from zero elements
    check_empty_context(model, context)
    return jnp.zeros((0, *model.event_shape), jnp.float32)
  params = model.conditionals(x, context=context)  # [B, *event_shape, P]
  return model.head.log_prob(params, x)


def log_prob(model: AutoregressiveModel, x: jax.Array, *,
             context: jax.Array | None = None) -> jax.Array:
  """log p(x) in nats, `[B]`."""
  per_dim = log_prob_per_dim(model, x, context=context)  # [B, *event_shape]
  return per_dim.reshape(per_dim.shape[0], model.num_dims).sum(-1)


def mask_log_probs(model: AutoregressiveModel, x: jax.Array, *,
                   context: jax.Array | None = None) -> jax.Array:
  """log p(x | draw k) for each of the model's N mask draws (orderings): `[N, B]` nats.

  The draws are evaluated one after another (`lax.map`), so memory stays that
  of one pass; the caller's model keeps its current draw.
  """
  check_input(model, x)
  if np.shape(x)[0] == 0:
    check_empty_context(model, context)
    return jnp.zeros((model.num_masks, 0), jnp.float32)
  graphdef, state = nnx.split(model)

  def under_draw(index):
    draw = nnx.merge(graphdef, state)  # a copy, so the caller's model keeps its draw
    draw.set_mask(index)
    params = draw.conditionals(x, context=context)
    return draw.head.log_prob(params, x).reshape(x.shape[0], model.num_dims).sum(-1)  # [B]

  return jax.lax.map(under_draw, jnp.arange(model.num_masks))  # [N, B]


def ensemble_log_prob(model: AutoregressiveModel, x: jax.Array, *,
                      context: jax.Array | None = None) -> jax.Array:
  """log of the mixture over the model's N mask draws, log (1/N) Σ_k p(x | draw k): `[B]` nats.

  The average of the N models' probabilities (log-mean-exp of their
  log-likelihoods, `mask_log_probs`), as in MADE's and EoNADE's ensembles —
  not the likelihood of averaged logits, which is not a normalized model.
  Equals `log_prob` for models with one ordering.
  """
  if model.num_masks == 1:
    return log_prob(model, x, context=context)
  log_probs = mask_log_probs(model, x, context=context)  # [N, B]
  return jax.nn.logsumexp(log_probs, axis=0) - math.log(model.num_masks)


def bits_per_dim(model: AutoregressiveModel, x: jax.Array, *,
                 context: jax.Array | None = None) -> jax.Array:
  """−log₂ p(x) / D, `[B]`: the usual unit for images."""
  return -log_prob(model, x, context=context) / (model.num_dims * math.log(2.0))


def nats_to_bits_per_dim(nll_nats, num_dims: int):
  return nll_nats / (num_dims * math.log(2.0))


def map_batches(batch_fn, model: AutoregressiveModel, x: np.ndarray, batch_size: int, *,
                context: np.ndarray | None = None, pass_offset: bool = False, progress: str | None = None):
  """`batch_fn(graphdef, state, x_batch)` over `x [N, ...]` in fixed-size batches.

  The last batch is padded so that one compilation of a jitted `batch_fn`
  serves them all; outputs (any pytree of `[batch, ...]` arrays) are
  concatenated along the first axis and cut back to N. With `context [N, C]`
  (a conditional model's), its rows go along with x's as
  `batch_fn(graphdef, state, x_batch, context=context_batch)`. With
  `pass_offset`, `batch_fn` also gets `offset=`, the index in `x` of the
  batch's first example (an int32 scalar, so one compilation still serves all).
  `progress`: a description for a progress bar over the batches (none by default).
  """
  graphdef, state = nnx.split(model)
  num = len(x)
  if context is not None and len(context) != num:
    raise ValueError(f"context has {len(context)} rows for {num} examples; pass one per example")
  batch_size = max(1, min(batch_size, num))
  padding = (-num) % batch_size

  def pad(array):
    return np.concatenate([array, np.repeat(array[:1], padding, axis=0)]) if padding else array

  padded = pad(x)
  padded_context = None if context is None else pad(np.asarray(context))
  outputs = [batch_fn(graphdef, state, jnp.asarray(padded[i:i + batch_size]),
                      **({} if context is None else {"context": jnp.asarray(padded_context[i:i + batch_size])}),
                      **({"offset": jnp.int32(i)} if pass_offset else {}))
             for i in tqdm.tqdm(range(0, len(padded), batch_size), desc=progress, disable=progress is None)]
  return jax.tree.map(lambda *parts: np.concatenate([np.asarray(p) for p in parts])[:num], *outputs)
