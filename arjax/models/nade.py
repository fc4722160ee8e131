"""NADE: the neural autoregressive distribution estimator (Larochelle & Murray 2011).

With the dimensions taken in the ordering, position d has hidden units

    h_d = σ(c + W[:d]ᵀ x_<d)                      h_d ∈ R^H
    params_d = b_d + h_d V_d                      params_d ∈ R^P

The input-to-hidden weights W [D, H] are shared (tied) across positions, so
a_d = c + Σ_{j<d} x_j W_j is a running sum: all D conditionals cost O(DH),
not O(D²H). Three kernels compute it, with the same numbers:
`nade_native.nade_conditionals_fused` walks each example's running sum in a
C++ XLA custom call with its own backward pass (the fastest on CPU for one
parameter per position, ~3x the next; compiled on first use);
`nade_kernel.nade_conditionals` walks it chunk by chunk in XLA with a
hand-written backward pass; the plain cumulative sum over
all positions at once (one [B, D, H] tensor, autodiff backward) is the fastest
on GPUs and TPUs. `kernel="auto"` takes the fused kernel on CPUs for one
parameter per position (a Bernoulli head, float32; the chunked one, with a
warning, where no C++ compiler can build it), the chunked kernel on CPUs for
heads with several (categorical, mixtures: its batched matrix products are
1.4-4.2x faster there, scripts/nade_kernel_by_params.py), and the cumulative
sum elsewhere.
The same running sum is the sampling cache: `observe` adds x_d W_d, `step`
reads out position d. With a Categorical head this is the categorical NADE
(x_j enters as x_j / (K−1)); with a MixtureOfGaussians head it is RNADE
(Uria, Murray & Larochelle 2013).

Class-conditional (`context_size` C > 0): the context z [B, C] shifts the
hidden bias and the output biases,

    h_d = σ(c + z U + W[:d]ᵀ x_<d),   params_d = b_d + z U_out[:, d] + h_d V_d,

with U [C, H] and U_out [C, D, P] (indexed by position, like b); the running
sum then starts at c + z U, per example, and so does the sampling cache.

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
from arjax import validation
from arjax.models import base, nade_native
from arjax.models.nade_kernel import nade_conditionals, nade_conditionals_reference

KERNELS = ("auto", "fused", "chunked", "cumsum")
RULES = {**base.COMMON_RULES, "num_hidden": validation.integer(minimum=1),
         "chunk_size": validation.integer(minimum=1), "kernel": validation.one_of(*KERNELS)}


class NADE(base.AutoregressiveModel):
  has_cache = True

  def __init__(self, event_shape, *, num_hidden: int = 500,
               head: heads_lib.Head = heads_lib.Bernoulli(), ordering="raster",
               ordering_seed: int = 0, chunk_size: int = 16, kernel: str = "auto",
               context_size: int = 0, rngs: nnx.Rngs):
    validation.check_options("NADE", RULES, num_hidden=num_hidden, head=head, ordering_seed=ordering_seed,
                             chunk_size=chunk_size, kernel=kernel, context_size=context_size)
    super().__init__(event_shape, head, ordering, ordering_seed)
    self.kernel = kernel
    num_dims, num_params = self.num_dims, head.num_params
    self.chunk_size = chunk_size
    # W row t and V[t] belong to the dimension generated at position t.
    self.W = nnx.Param(jax.random.normal(rngs.params(), (num_dims, num_hidden)) / jnp.sqrt(num_dims))
    self.c = nnx.Param(jnp.zeros((num_hidden,)))
    self.V = nnx.Param(
        jax.random.normal(rngs.params(), (num_dims, num_hidden, num_params)) / jnp.sqrt(num_hidden))
    self.b = nnx.Param(jnp.tile(head.init_bias()[None], (num_dims, 1)))  # [D, P]
    self.context_size = int(context_size)
    if self.context_size:
      self.context_to_hidden = nnx.Param(
          jax.random.normal(rngs.params(), (self.context_size, num_hidden)) / jnp.sqrt(self.context_size))
      self.context_to_output = nnx.Param(jnp.zeros((self.context_size, num_dims, num_params)))  # [C, D, P]
    else:
      self.context_to_hidden = self.context_to_output = None

  def _hidden_bias(self, context):
    """c [H] for an unconditional model, c + context U [B, H] for a conditional one."""
    if context is None:
      return self.c[...]
    return self.c[...] + context @ self.context_to_hidden[...]  # [B, H]

  def conditionals(self, x, *, context=None):
    try:
      return self._conditionals(x, context=context)
    except TypeError as error:
      if "custom_vjp" not in str(error):
        raise
      # The fused and chunked kernels carry hand-written backward passes (custom_vjp), which
      # JAX cannot differentiate in forward mode; the cumulative sum is plain autodiff.
      raise TypeError(
          f"NADE: kernel={self.kernel!r} has a hand-written backward pass (custom_vjp; 'auto' takes the "
          "fused or chunked kernel on CPU) and is differentiable in reverse mode only (jax.grad, "
          "jax.vjp, jax.jacrev); for jax.jvp or jax.jacfwd build the NADE with kernel='cumsum'") from error

  def _conditionals(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    inputs = self._inputs_in_order(x)  # [B, D]
    hidden_bias = self._hidden_bias(context)  # [H] or [B, H]
    kernel = self.kernel
    if kernel == "auto":
      kernel = "cumsum"
      if jax.default_backend() == "cpu":
        # The fused kernel walks one parameter per position fastest (Bernoulli); with several
        # (categorical, mixtures) the chunked kernel's batched matrix products win.
        fits = self.head.num_params == 1 and all(
            a.dtype == jnp.float32 for a in (inputs, self.W[...], hidden_bias, self.V[...]))
        kernel = "fused" if fits and nade_native.available() else "chunked"
        if fits and kernel == "chunked":
          nade_native.warn_unavailable()
    if kernel == "fused":
      if jax.default_backend() != "cpu":
        raise ValueError(f"NADE: kernel='fused' runs on the CPU backend only, not {jax.default_backend()!r}; "
                         "use kernel='auto' (the cumulative sum there) or 'cumsum'")
      params = nade_native.nade_conditionals_fused(inputs, self.W[...], hidden_bias, self.V[...],
                                                   self.b[...])  # [B, D, P]
    elif kernel == "chunked":
      params = nade_conditionals(inputs, self.W[...], hidden_bias, self.V[...], self.b[...],
                                 chunk_size=self.chunk_size)  # [B, D, P]
    else:
      params = nade_conditionals_reference(inputs, self.W[...], hidden_bias, self.V[...], self.b[...])
    if context is not None:
      params = params + jnp.einsum("bc,cdp->bdp", context, self.context_to_output[...])
    return self._params_to_event(params)

  def features(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    return jax.nn.sigmoid(self._hidden_bias(context) + self._inputs_in_order(x) @ self.W[...])  # [B, H]

  def init_cache(self, batch_size, *, context=None):
    context = self._check_context(context, batch_size)
    activation = jnp.broadcast_to(self._hidden_bias(context), (batch_size, self.c.shape[0]))  # [B, H]
    # The context stays in the cache for its term of each output bias.
    return activation if context is None else (activation, context)

  def step(self, cache, t):
    activation, context = cache if self.context_size else (cache, None)
    params = self.b[t] + jax.nn.sigmoid(activation) @ self.V[t]  # [B, P]
    if context is not None:
      params = params + context @ self.context_to_output[:, t]
    return params, cache

  def observe(self, cache, t, value):
    if self.context_size:
      activation, context = cache
      return activation + self.head.as_input(value)[:, None] * self.W[t], context
    return cache + self.head.as_input(value)[:, None] * self.W[t]


@dataclasses.dataclass(frozen=True, kw_only=True)
class NADEConfig:
  """Builds a NADE; the fields are the constructor's options."""

  num_hidden: int = 500  # H, hidden units (500 in Larochelle & Murray 2011)
  head: heads_lib.Head = heads_lib.Bernoulli()  # output distribution of one dimension
  ordering: str | tuple[int, ...] = "raster"  # "raster", "reverse", "random" or a permutation
  ordering_seed: int = 0  # seed of the "random" ordering
  chunk_size: int = 16  # positions per chunk of the "chunked" kernel (speed only, not the result)
  kernel: str = "auto"  # "fused" (CPU, Bernoulli heads), "chunked", "cumsum" (GPU/TPU) or "auto" (by backend and head)
  context_size: int = 0  # C > 0: condition on a context [B, C] (e.g. a one-hot label); 0: unconditional

  def __post_init__(self):
    validation.check_fields(self, RULES)

  def build(self, event_shape, *, rngs: nnx.Rngs) -> NADE:
    return NADE(event_shape, rngs=rngs, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
