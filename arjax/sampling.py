"""The one sampler: a jitted `lax.scan` over the D positions of the ordering.

At position t the model gives the parameters of dimension d = ordering[t]
(from its cache in O(1) passes where it has one, else from a full teacher-
forced pass over the partial sample), the head draws x_d with the key
`fold_in(key, t)`, and clamped dimensions keep their given value. Because the
key depends only on (key, t), the cached and the full-pass sampler draw the
same numbers: with the same key they return the same samples.

Clamping (`given`, `given_mask`) is exact conditioning only when the clamped
dimensions come first in the ordering; elsewhere later dimensions see the
clamped values but earlier ones do not (prefix completion for fixed-order models).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arjax import heads as heads_lib
from arjax import validation
from arjax.likelihood import check_empty_context
from arjax.models.base import AutoregressiveModel


def as_key(key, where: str = "key") -> jax.Array:
  """A typed PRNG key from `key`: a `jax.random.key` (or a legacy uint32 `PRNGKey`) as it is,
  an int seed through `jax.random.key(seed)`; anything else is a ValueError saying so."""
  if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
    return jax.random.key(int(key))
  if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key
  if isinstance(key, (jax.Array, np.ndarray)) and key.dtype == np.uint32 and key.shape == (2,):
    return jnp.asarray(key)  # a legacy jax.random.PRNGKey
  raise ValueError(f"{where} must be a PRNG key from jax.random.key(seed) (or an int seed); "
                   f"got {type(key).__name__} {getattr(key, 'dtype', '')} of shape {np.shape(key)}")


def sample(model: AutoregressiveModel, key: jax.Array, num_samples: int, *,
           temperature: float = 1.0, given: jax.Array | None = None,
           given_mask: jax.Array | None = None, context: jax.Array | None = None,
           use_cache: bool | None = None, return_conditionals: bool = False):
  """Draws `num_samples` samples `[N, *event_shape]`.

  Args:
    model: any AutoregressiveModel.
    key: a `jax.random.key` (an int is taken as the seed of `jax.random.key(seed)`).
    num_samples: N >= 0 (0 gives empty arrays `[0, *event_shape]`).
    temperature: a finite number > 0 that divides logits / multiplies scales at every
      dimension (1 = the model).
    given: `[N, *event_shape]` (or `[*event_shape]`) values to clamp.
    given_mask: bool, same shape as `given`; True where the value is clamped.
    context: `[N, C]` context of a conditional model (`context_size` C), e.g. one-hot labels
      (`per_class_context` gives a grid of every class).
    use_cache: use the model's incremental step (default: when it has one).
    return_conditionals: also return the params `[N, *event_shape, P]` used at each draw.
  """
  event_shape = model.event_shape
  key = as_key(key)
  if not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool) or num_samples < 0:
    raise validation.FieldError("num_samples", "an int >= 0", num_samples)
  validation.check_temperature(temperature)
  if (given is None) != (given_mask is None):
    raise ValueError("Pass `given` and `given_mask` together (the values and where they apply).")
  if given is None:
    given = jnp.zeros((num_samples, *event_shape), model.head.value_dtype)
    given_mask = jnp.zeros((num_samples, *event_shape), bool)
  for name, array in (("given", given), ("given_mask", given_mask)):
    if tuple(np.shape(array))[-len(event_shape):] != event_shape:
      raise ValueError(f"{name} must end in the event shape {event_shape}; got {np.shape(array)}")
  if heads_lib.is_concrete(given) and heads_lib.is_concrete(given_mask):
    # The values as given, before the cast to the head's dtype (which would truncate 3.5 to 3).
    clamped = np.broadcast_to(np.asarray(given_mask, bool), np.broadcast_shapes(np.shape(given), np.shape(given_mask)))
    model.head.validate(np.broadcast_to(np.asarray(given), clamped.shape)[clamped])
  given = jnp.broadcast_to(jnp.asarray(given, model.head.value_dtype), (num_samples, *event_shape))
  given_mask = jnp.broadcast_to(jnp.asarray(given_mask, bool), (num_samples, *event_shape))
  if use_cache is None:
    use_cache = model.has_cache
  elif use_cache and not model.has_cache:
    raise ValueError(f"{type(model).__name__} has no incremental step; use use_cache=False")
  if num_samples == 0:
    check_empty_context(model, context)
    samples = jnp.zeros((0, *event_shape), model.head.value_dtype)
    return (samples, jnp.zeros((0, *event_shape, model.head.num_params))) if return_conditionals else samples
  graphdef, state = nnx.split(model)
  samples, params = _sample(graphdef, state, key, jnp.float32(temperature), given,
                            given_mask, context, use_cache=use_cache)
  return (samples, params) if return_conditionals else samples


def per_class_context(num_classes: int, num_per_class: int) -> jax.Array:
  """One-hot contexts `[K·n, K]` for a class-conditional model: n rows of class 0, then of
  class 1, …, so that samples drawn with it fill a grid with one row per class."""
  return jax.nn.one_hot(jnp.repeat(jnp.arange(num_classes), num_per_class), num_classes)


@functools.partial(jax.jit, static_argnames=("graphdef", "use_cache"))
def _sample(graphdef, state, key, temperature, given, given_mask, context, *, use_cache):
  model = nnx.merge(graphdef, state)
  num_samples = given.shape[0]
  ordering = model.ordering[...]  # [D]
  flat_given = given.reshape(num_samples, model.num_dims)  # [N, D]
  flat_mask = given_mask.reshape(num_samples, model.num_dims)  # [N, D]

  def draw(t, params):
    """The value at position t: sampled, or the clamped one."""
    dim = ordering[t]
    value = model.head.sample(jax.random.fold_in(key, t), params, temperature)  # [N]
    return jnp.where(flat_mask[:, dim], flat_given[:, dim], value)

  params_shape = (num_samples, model.num_dims, model.head.num_params)

  if use_cache:
    def body(carry, t):
      cache, x, all_params = carry
      params, cache = model.step(cache, t)  # [N, P]
      value = draw(t, params)
      cache = model.observe(cache, t, value)
      dim = ordering[t]
      return (cache, x.at[:, dim].set(value), all_params.at[:, dim].set(params)), None
    init = (model.init_cache(num_samples, context=context), flat_given, jnp.zeros(params_shape))
    (_, x, all_params), _ = jax.lax.scan(body, init, jnp.arange(model.num_dims))
  else:
    def body(carry, t):
      x, all_params = carry
      event = x.reshape(num_samples, *model.event_shape)
      params = model.conditionals(event, context=context).reshape(params_shape)
      dim = ordering[t]
      value = draw(t, params[:, dim])
      return (x.at[:, dim].set(value), all_params.at[:, dim].set(params[:, dim])), None
    (x, all_params), _ = jax.lax.scan(body, (flat_given, jnp.zeros(params_shape)),
                                      jnp.arange(model.num_dims))
  return (x.reshape(given.shape),
          all_params.reshape(*given.shape, model.head.num_params))
