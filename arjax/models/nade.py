"""NADE: the neural autoregressive distribution estimator (Larochelle & Murray 2011).

With the dimensions taken in the ordering, position d has hidden units

    h_d = σ(c + W[:d]ᵀ x_<d)                      h_d ∈ R^H
    params_d = b_d + h_d V_d                      params_d ∈ R^P

The input-to-hidden weights W [D, H] are shared (tied) across positions, so
a_d = c + Σ_{j<d} x_j W_j is a running sum: all D conditionals cost O(DH),
not O(D²H). `nade_kernel.nade_conditionals` evaluates that sum chunk by chunk
with a hand-written backward pass, which is what makes training fast on CPU;
on GPUs and TPUs the plain cumulative sum over all positions at once (one
[B, D, H] tensor, autodiff backward) is faster, and `kernel="auto"` picks by
the backend. Both give the same numbers.
The same running sum is the sampling cache: `observe` adds x_d W_d, `step`
reads out position d. With a Categorical head this is the categorical NADE
(x_j enters as x_j / (K−1)); with a MixtureOfGaussians head it is RNADE
(Uria, Murray & Larochelle 2013).

Features: the hidden units given the whole input, σ(c + Wᵀ x) [B, H] — the
representation the model would use to predict a dimension after all others.
Conditioning on observed dimensions is exact only for a prefix of the ordering.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from arjax import heads as heads_lib
from arjax.models import base
from arjax.models.nade_kernel import nade_conditionals, nade_conditionals_reference

KERNELS = ("auto", "chunked", "cumsum")


class NADE(base.AutoregressiveModel):
  has_cache = True

  def __init__(self, event_shape, *, num_hidden: int = 500,
               head: heads_lib.Head = heads_lib.Bernoulli(), ordering="raster",
               ordering_seed: int = 0, chunk_size: int = 16, kernel: str = "auto", rngs: nnx.Rngs):
    super().__init__(event_shape, head, ordering, ordering_seed)
    if kernel not in KERNELS:
      raise ValueError(f"NADE: unknown kernel {kernel!r}; choose one of {KERNELS}")
    self.kernel = kernel
    num_dims, num_params = self.num_dims, head.num_params
    self.chunk_size = chunk_size
    # W row t and V[t] belong to the dimension generated at position t.
    self.W = nnx.Param(jax.random.normal(rngs.params(), (num_dims, num_hidden)) / jnp.sqrt(num_dims))
    self.c = nnx.Param(jnp.zeros((num_hidden,)))
    self.V = nnx.Param(
        jax.random.normal(rngs.params(), (num_dims, num_hidden, num_params)) / jnp.sqrt(num_hidden))
    self.b = nnx.Param(jnp.tile(head.init_bias()[None], (num_dims, 1)))  # [D, P]

  def conditionals(self, x, *, context=None):
    self._reject_context(context)
    inputs = self._inputs_in_order(x)  # [B, D]
    kernel = self.kernel
    if kernel == "auto":
      kernel = "chunked" if jax.default_backend() == "cpu" else "cumsum"
    if kernel == "chunked":
      params = nade_conditionals(inputs, self.W[...], self.c[...], self.V[...], self.b[...],
                                 chunk_size=self.chunk_size)  # [B, D, P]
    else:
      params = nade_conditionals_reference(inputs, self.W[...], self.c[...], self.V[...], self.b[...])
    return self._params_to_event(params)

  def features(self, x, *, context=None):
    self._reject_context(context)
    return jax.nn.sigmoid(self.c[...] + self._inputs_in_order(x) @ self.W[...])  # [B, H]

  def init_cache(self, batch_size, *, context=None):
    self._reject_context(context)
    return jnp.broadcast_to(self.c[...], (batch_size, self.c.shape[0]))  # [B, H] activation

  def step(self, cache, t):
    hidden = jax.nn.sigmoid(cache)  # [B, H]
    return self.b[t] + hidden @ self.V[t], cache  # [B, P]

  def observe(self, cache, t, value):
    return cache + self.head.as_input(value)[:, None] * self.W[t]


@dataclasses.dataclass(frozen=True, kw_only=True)
class NADEConfig:
  """Builds a NADE; the fields are the constructor's options."""

  num_hidden: int = 500  # H, hidden units (500 in Larochelle & Murray 2011)
  head: heads_lib.Head = heads_lib.Bernoulli()  # output distribution of one dimension
  ordering: str | tuple[int, ...] = "raster"  # "raster", "reverse", "random" or a permutation
  ordering_seed: int = 0  # seed of the "random" ordering
  chunk_size: int = 16  # positions per chunk of the O(DH) pass (speed only, not the result)
  kernel: str = "auto"  # "chunked" (fast on CPU), "cumsum" (fast on GPU/TPU) or "auto" (by backend)

  def build(self, event_shape, *, rngs: nnx.Rngs) -> NADE:
    return NADE(event_shape, rngs=rngs, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
