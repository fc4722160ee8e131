"""FVSBN: the fully visible sigmoid belief network (Frey 1998; Neal 1992).

Every conditional is a logistic regression on the dimensions before it:

    params_d = α_d0 + Σ_{j<d} α_dj x_j            (Bernoulli: p(x_d = 1) = σ(params_d))

computed for all d at once as one strictly lower-triangular masked matmul.
The mask multiplies the weights in the forward pass; the weights themselves
are never overwritten. Parameters: D(D−1)/2 weights and D biases per head
parameter, so D(D+1)/2 for Bernoulli, K·D(D+1)/2 for Categorical(K)
(≈ 79M for 784 pixels and K = 256, which is why FVSBN suits binary data).

Cache: the partial sums of every later conditional, [B, D, P]; `observe` adds
x_t α_{:,t}, so sampling all D dimensions costs O(D²P) instead of O(D³P).

Class-conditional (`context_size` C > 0): every logit also gets a learned
linear function of the context, params_d += context U_d with U [C, D, P]
indexed by dimension — a logistic regression on [x_<d, context].

Features: the conditional parameters of every dimension, [B, D·P] — FVSBN
has no hidden units.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from arjax import heads as heads_lib
from arjax import validation
from arjax.models import base


RULES = base.COMMON_RULES


class FVSBN(base.AutoregressiveModel):
  has_cache = True

  def __init__(self, event_shape, *, head: heads_lib.Head = heads_lib.Bernoulli(),
               ordering="raster", ordering_seed: int = 0, context_size: int = 0, rngs: nnx.Rngs):
    validation.check_options("FVSBN", RULES, head=head, ordering_seed=ordering_seed, context_size=context_size)
    super().__init__(event_shape, head, ordering, ordering_seed)
    num_dims, num_params = self.num_dims, head.num_params
    self.context_size = int(context_size)
    # alpha[d, j, p]: weight of the input at position j in the conditional at position d.
    self.alpha = nnx.Param(
        0.01 * jax.random.normal(rngs.params(), (num_dims, num_dims, num_params)))
    self.bias = nnx.Param(jnp.tile(head.init_bias()[None], (num_dims, 1)))  # [D, P]
    # context_to_output[c, d, p]: weight of context entry c in param p of dimension d.
    self.context_to_output = (
        nnx.Param(jnp.zeros((self.context_size, num_dims, num_params))) if self.context_size else None)

  def _masked_alpha(self):
    mask = jnp.tril(jnp.ones((self.num_dims, self.num_dims), jnp.float32), -1)  # j < d
    return self.alpha[...] * mask[:, :, None]  # [D, D, P]

  def _context_params(self, context):
    """context [B, C] -> its term of the params, [B, D, P] in position order (None if unconditional)."""
    if context is None:
      return None
    by_dimension = jnp.einsum("bc,cdp->bdp", context, self.context_to_output[...])  # [B, D, P]
    return by_dimension[:, self.ordering[...]]

  def conditionals(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    inputs = self._inputs_in_order(x)  # [B, D]
    params = jnp.einsum("bj,djp->bdp", inputs, self._masked_alpha()) + self.bias[...]  # [B, D, P]
    if context is not None:
      params = params + self._context_params(context)
    return self._params_to_event(params)

  def features(self, x, *, context=None):
    params = self.conditionals(x, context=context)
    return params.reshape(x.shape[0], -1)  # [B, D·P]

  def init_cache(self, batch_size, *, context=None):
    context = self._check_context(context, batch_size)
    cache = jnp.broadcast_to(self.bias[...], (batch_size, *self.bias.shape))  # [B, D, P]
    return cache if context is None else cache + self._context_params(context)

  def step(self, cache, t):
    return cache[:, t], cache

  def observe(self, cache, t, value):
    later = (jnp.arange(self.num_dims) > t)[:, None]  # [D, 1]: the positions t feeds
    column = self.alpha[:, t] * later  # [D, P]
    return cache + self.head.as_input(value)[:, None, None] * column


@dataclasses.dataclass(frozen=True, kw_only=True)
class FVSBNConfig:
  """Builds an FVSBN; the fields are the constructor's options."""

  head: heads_lib.Head = heads_lib.Bernoulli()  # output distribution of one dimension
  ordering: str | tuple[int, ...] = "raster"  # "raster", "reverse", "random" or a permutation
  ordering_seed: int = 0  # seed of the "random" ordering
  context_size: int = 0  # C > 0: condition on a context [B, C] (e.g. a one-hot label); 0: unconditional

  def __post_init__(self):
    validation.check_fields(self, RULES)

  def build(self, event_shape, *, rngs: nnx.Rngs) -> FVSBN:
    return FVSBN(event_shape, rngs=rngs, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
