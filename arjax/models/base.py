"""The contract every autoregressive family implements.

A model is a Flax NNX module over D = prod(event_shape) scalar dimensions,
generated in `ordering` (position t generates flat dimension `ordering[t]`),
with an output `head` giving the distribution of one dimension from P params.

Required:
  conditionals(x [B, *event_shape], context) -> params [B, *event_shape, P]
      Teacher-forced: params of dimension d depend only on the dimensions
      that come before d in the ordering.
  features(x, context) -> [B, F]
      The model's representation of x (documented per family).

Optional, for O(1)-per-dimension sampling (`has_cache = True`):
  init_cache(batch_size, context) -> cache pytree
  step(cache, t) -> (params [B, P] of dimension ordering[t], cache)
      May read only the values already passed to `observe`.
  observe(cache, t, value [B]) -> cache
      Feeds the value drawn (or clamped) at position t.

Optional, for families trained on something other than the exact NLL
(`has_training_objective = True`, e.g. deep order-agnostic NADE):
  training_objective(x, key, context) -> [B] an estimate of −log p(x) that training
      minimizes (and validation reports while training).

Order-agnostic families (`order_agnostic = True`) model every ordering with
one set of weights and take any permutation through `set_ordering`, which
makes exact conditionals for any observed set possible
(`arjax.marginal_log_prob`, exact inpainting).

Families that condition on something (a class label, any context vector)
take it as `context [B, ...]`; the others reject a context. Every flat family
built with `context_size` C > 0 takes `context [B, C]` (floats, e.g. a one-hot
label: a class-conditional model p(x | y)) and then requires it; with C = 0
(the default) it is unconditional and has no context parameters.
Generic code (`arjax.log_prob`, `arjax.sample`, training) uses only this.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from arjax import heads as heads_lib
from arjax import orderings, validation


#: Rules of the options every family takes (`arjax.validation`); each family adds its own.
COMMON_RULES = {
    "head": validation.instance(heads_lib.Head, "an arjax.heads.Head, e.g. heads.Bernoulli()"),
    "ordering_seed": validation.integer(),
    "context_size": validation.integer(minimum=0),  # 0: unconditional
}


class Ordering(nnx.Variable):
  """A fixed permutation: module state that is saved but never trained."""


class AutoregressiveModel(nnx.Module):
  """Base class: stores event shape, head and ordering; subclasses add the network."""

  has_cache: bool = False
  #: Draws of (ordering, connectivity) the model is trained over; order-agnostic
  #: families set it > 1 and implement `set_mask`. Training picks a draw per step,
  #: evaluation uses the ensemble (`arjax.ensemble_log_prob`).
  num_masks: int = 1
  has_training_objective: bool = False
  order_agnostic: bool = False
  #: True when training covers every ordering (deep order-agnostic NADE's objective
  #: averages over all D! of them), so an ensemble of any size is a trained model and
  #: evaluation may use more orderings than `num_masks` (`checkpoints.load_trained_model`).
  every_ordering_trained: bool = False
  #: C, the size of the context vector the model conditions on (0: unconditional).
  context_size: int = 0

  def __init__(self, event_shape: tuple[int, ...], head: heads_lib.Head,
               ordering: str | tuple[int, ...] = "raster", ordering_seed: int = 0):
    self.event_shape = tuple(int(n) for n in event_shape)
    self.head = head
    self.ordering = Ordering(jnp.asarray(
        orderings.make_ordering(ordering, self.num_dims, seed=ordering_seed)))

  @property
  def num_dims(self) -> int:
    return math.prod(self.event_shape)

  def conditionals(self, x: jax.Array, *, context: jax.Array | None = None) -> jax.Array:
    raise NotImplementedError

  def set_mask(self, index) -> None:
    """Selects draw `index` of the model's orderings/masks (only draw 0 exists here)."""
    if not isinstance(index, jax.core.Tracer) and int(index) != 0:
      raise ValueError(f"{type(self).__name__} has a single ordering; set_mask({index}) is invalid")

  def features(self, x: jax.Array, *, context: jax.Array | None = None) -> jax.Array:
    raise NotImplementedError

  def training_objective(self, x: jax.Array, key: jax.Array, *,
                         context: jax.Array | None = None) -> jax.Array:
    raise NotImplementedError(f"{type(self).__name__} trains on the exact NLL")

  def set_ordering(self, ordering) -> None:
    raise NotImplementedError(
        f"{type(self).__name__} models one fixed ordering; only order-agnostic families "
        "(order_agnostic = True) take another one after training")

  def init_cache(self, batch_size: int, *, context: jax.Array | None = None):
    raise NotImplementedError(f"{type(self).__name__} has no incremental sampler")

  def step(self, cache, t):
    raise NotImplementedError(f"{type(self).__name__} has no incremental sampler")

  def observe(self, cache, t, value):
    raise NotImplementedError(f"{type(self).__name__} has no incremental sampler")

  # Helpers shared by the flat (vector) families.

  def _inputs_in_order(self, x: jax.Array) -> jax.Array:
    """[B, *event_shape] values -> [B, D] network inputs, in ordering (position) order."""
    inputs = self.head.as_input(x).reshape(x.shape[0], self.num_dims)  # [B, D]
    # jnp.take, not inputs[:, ordering]: NumPy inputs cannot be indexed by a traced ordering
    # (one chosen inside lax.map or vmap, as in ensembles and marginals).
    return jnp.take(inputs, self.ordering[...], axis=1)

  def _params_to_event(self, params_by_position: jax.Array) -> jax.Array:
    """[B, D, P] in position order -> [B, *event_shape, P] in dimension order."""
    position_of = jnp.argsort(self.ordering[...])
    params = params_by_position[:, position_of]  # [B, D, P]
    return params.reshape(params.shape[0], *self.event_shape, params.shape[-1])

  @staticmethod
  def _reject_context(context):
    if context is not None:
      raise ValueError("This model is unconditional; build it with a context size to pass a context.")

  def _check_context(self, context, batch_size: int) -> jax.Array | None:
    """The context as float `[B, C]`, or None for an unconditional model.

    Raises ValueError for a context passed to an unconditional model, a
    missing context of a conditional one, or a shape other than `[B, C]`.
    """
    if self.context_size == 0:
      self._reject_context(context)
      return None
    name = type(self).__name__
    if context is None:
      raise ValueError(
          f"This {name} is conditional (context_size={self.context_size}): pass "
          f"context=[batch, {self.context_size}] (e.g. jax.nn.one_hot(labels, {self.context_size})).")
    shape = tuple(jnp.shape(context))
    if shape != (batch_size, self.context_size):
      raise ValueError(
          f"context must have shape [batch, context_size] = [{batch_size}, {self.context_size}] for "
          f"this {name} (one row per example); got {shape}.")
    return jnp.asarray(context, jnp.float32)
