"""Exact marginals and conditionals for any set of observed dimensions.

An autoregressive model gives p(x_S) and p(x_rest | x_S) exactly when the
observed set S comes first in its ordering: then log p(x_S) is the sum of the
first |S| conditionals, and the sampler completes x_rest from x_S. For a
fixed-order model (FVSBN, NADE, RNN, MADE with one ordering) that holds only
when S is a prefix of its ordering; these functions check it and say so.
Order-agnostic models (`model.order_agnostic`: deep order-agnostic NADE, MADE
trained over random orderings) take any ordering (`set_ordering`), so here
every example gets its own ordering: its observed dimensions first, then the
rest, each group in the model's ordering.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arjax import heads as heads_lib
from arjax import likelihood
from arjax import sampling, validation
from arjax.models.base import AutoregressiveModel


def observed_first(observed: jax.Array, ordering: jax.Array) -> jax.Array:
  """The ordering `[D]` that takes the dimensions where `observed [D]` is True first, then the
  others, each group in the order of `ordering [D]` (traceable)."""
  observed_in_order = observed[ordering]  # [D], by position
  return ordering[jnp.argsort(~observed_in_order, stable=True)]


def is_prefix(observed: np.ndarray, ordering: np.ndarray) -> bool:
  """Whether, in every row of `observed [N, D]`, the observed dimensions come first in `ordering [D]`
  — the case where clamping them in the sampler is exact conditioning."""
  in_order = np.asarray(observed)[:, np.asarray(ordering)]  # [N, D], position order
  return bool(np.all(in_order[:, :-1] >= in_order[:, 1:]))


def is_exact(model: AutoregressiveModel, observed: np.ndarray) -> bool:
  """Whether `model` conditions exactly on the observed sets `observed [N, D]`: always for an
  order-agnostic model, else only when every set is a prefix of its ordering."""
  return bool(model.order_agnostic) or is_prefix(observed, model.ordering[...])


def _check(model: AutoregressiveModel, observed, batch: int) -> jax.Array:
  """`observed` as bool `[B, D]`; for a fixed-order model, checks that it is a prefix."""
  observed = jnp.asarray(observed, bool)
  if observed.ndim == 1:
    observed = jnp.broadcast_to(observed, (batch, observed.shape[0]))
  else:
    observed = observed.reshape(observed.shape[0], -1)
  if observed.shape != (batch, model.num_dims):
    raise ValueError(f"observed must be [D] or [B, D] (or [B, *event_shape]) with D = "
                     f"{model.num_dims}, B = {batch}; got {observed.shape}")
  if heads_lib.is_concrete(observed) and not is_exact(model, observed):
    raise ValueError(
        f"{type(model).__name__} models one fixed ordering, so the observed dimensions must "
        "be a prefix of model.ordering for an exact marginal or conditional. Use an "
        "order-agnostic model (DeepNADE, or MADE with ordering='random' and num_masks > 1), "
        "or `arjax.sample(..., given=, given_mask=)` for approximate (prefix) completion.")
  return observed


def _with_ordering(graphdef, state, observed_row):
  model = nnx.merge(graphdef, state)
  if model.order_agnostic:
    model.set_ordering(observed_first(observed_row, model.ordering[...]))
  return model


def _per_dim_observed_first(model, x, observed, context):
  """log p(x_d | x before d) `[B, D]` with each row's observed dimensions first in its ordering,
  and that `observed` as bool `[B, D]`."""
  likelihood.check_input(model, x)
  observed = _check(model, observed, x.shape[0])
  graphdef, state = nnx.split(model)

  def one(x_row, observed_row, context_row):
    row_model = _with_ordering(graphdef, state, observed_row)
    row_context = None if context_row is None else context_row[None]
    return likelihood.log_prob_per_dim(row_model, x_row[None], context=row_context).reshape(-1)

  return jax.vmap(one)(x, observed, context), observed


def marginal_log_prob(model: AutoregressiveModel, x: jax.Array, observed, *,
                      context: jax.Array | None = None) -> jax.Array:
  """log p(x_S) `[B]` nats: the marginal of the dimensions where `observed` is True.

  `observed` is bool `[D]` (one set for the batch) or `[B, D]` (a set per
  example); the values of `x` outside it are ignored. Exact for order-agnostic
  models under any set, for the others when the set is a prefix of the
  ordering (else a ValueError). An order-agnostic model that is not perfectly
  trained defines one joint per ordering; this is the marginal of the joint of
  the ordering that puts the set first. An ensemble (num_masks > 1) is
  evaluated under its current draw's network.
  """
  per_dim, observed = _per_dim_observed_first(model, x, observed, context)
  return jnp.sum(jnp.where(observed, per_dim, 0.0), axis=-1)


def conditional_log_prob(model: AutoregressiveModel, x: jax.Array, observed, *,
                         context: jax.Array | None = None) -> jax.Array:
  """log p(x_rest | x_S) `[B]` = log p(x) − log p(x_S), under the same ordering per example."""
  per_dim, observed = _per_dim_observed_first(model, x, observed, context)
  return jnp.sum(jnp.where(observed, 0.0, per_dim), axis=-1)


def sample_given(model: AutoregressiveModel, key: jax.Array, x: jax.Array, observed, *,
                 temperature: float = 1.0, context: jax.Array | None = None) -> jax.Array:
  """One exact draw of the unobserved dimensions of every row of `x [B, *event_shape]` given its
  observed ones (`observed` bool `[D]` or `[B, D]`): samples `[B, *event_shape]` whose observed
  dimensions equal `x`'s. Row b uses key `fold_in(key, b)`; for several completions of one
  image, repeat the row. Exact for order-agnostic models under any set, for the others when
  the set is a prefix of the ordering (else a ValueError).
  """
  likelihood.check_input(model, x)
  key = sampling.as_key(key)
  validation.check_temperature(temperature)
  batch = x.shape[0]
  observed = _check(model, observed, batch)
  graphdef, state = nnx.split(model)
  event_shape = model.event_shape

  def one(index, x_row, observed_row, context_row):
    row_model = _with_ordering(graphdef, state, observed_row)
    row_graphdef, row_state = nnx.split(row_model)
    row_context = None if context_row is None else context_row[None]
    samples, _ = sampling._sample(  # pylint: disable=protected-access
        row_graphdef, row_state, jax.random.fold_in(key, index), jnp.float32(temperature),
        x_row[None], observed_row.reshape(1, *event_shape), row_context,
        use_cache=model.has_cache)
    return samples[0]

  return jax.vmap(one)(jnp.arange(batch), jnp.asarray(x, model.head.value_dtype), observed, context)
