"""Deep order-agnostic NADE (Uria, Murray & Larochelle 2014), and its ensemble EoNADE.

One network predicts every dimension from any observed subset. Its input is
the observed values and the mask of which dimensions are observed:

    h_1 = g(b_1 + [x ⊙ m, m] W_1)                 m ∈ {0, 1}^D, h_1 ∈ R^{H_1}
    h_l = g(b_l + h_{l−1} W_l)                    l = 2..L
    params = b_out + h_L V                        params ∈ R^{D×P}

and params[d] is the conditional of x_d given the observed x (used only for
d with m_d = 0). In an ordering o, the conditional of position t is the
network's output for o_t with m = [o_1 .. o_{t−1} observed], so the exact
log p(x | o) costs D passes. `conditionals` evaluates them in chunks of
positions and advances the first layer's pre-activation as a prefix sum over
the ordering (as NADE does), so each position costs the deeper layers and one
output column; sampling costs one pass per dimension.

Training (`training_objective`) is the paper's order-agnostic estimator: per
example, a uniformly random ordering and split d ∈ {0..D−1}; the first d
dimensions of the ordering are observed and the loss is

    D / (D − d) · Σ_{j unobserved} −log p(x_j | x_observed),

an unbiased estimate of E_o[−log p(x | o)], the average NLL over orderings
(an upper bound on the ensemble's NLL). One pass per example. It is drawn
without sorting: the dimensions whose uniform key falls below a uniform
threshold are observed, which makes d uniform on {0..D} and, given d, the
observed set the first d of a uniform random ordering; d = D gets weight 0
and the others (D + 1)/(D − d), which has the same expectation.

Ensemble (EoNADE): with `num_masks` N > 1 the model holds N orderings (draw k
from seed `ordering_seed + k`; use `ordering="random"`), `set_mask(k)` picks
one, and `arjax.ensemble_log_prob` gives log (1/N) Σ_k p(x | o_k).

Exact conditionals for any observed set: one pass gives p(x_j | x_S) for
every j ∉ S (`conditionals_given`), and `set_ordering` accepts any
permutation, so `arjax.marginal_log_prob` and exact inpainting put the
observed dimensions first.

Class-conditional (`context_size` C > 0): the first hidden layer also gets
z U for a context z [B, C] and U [C, H_1], in every pass (teacher-forced,
training estimate, sampling step).

Features: the last hidden layer given the whole input (m = 1), [B, H_L].
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arjax import heads as heads_lib
from arjax import orderings, validation
from arjax.models import base
from arjax.models.made import ACTIVATIONS, MaskDraws, MaskIndex


RULES = {**base.COMMON_RULES, "hidden_sizes": validation.sizes(), "num_masks": validation.integer(minimum=1),
         "activation": validation.one_of(*ACTIVATIONS), "positions_per_pass": validation.integer(minimum=1)}


class DeepNADE(base.AutoregressiveModel):
  has_cache = True
  has_training_objective = True
  order_agnostic = True
  every_ordering_trained = True

  def __init__(self, event_shape, *, hidden_sizes: tuple[int, ...] = (500, 500),
               head: heads_lib.Head = heads_lib.Bernoulli(), ordering="random",
               ordering_seed: int = 0, num_masks: int = 1, activation: str = "relu",
               positions_per_pass: int = 16, context_size: int = 0, rngs: nnx.Rngs):
    validation.check_options("DeepNADE", RULES, hidden_sizes=hidden_sizes, head=head, ordering_seed=ordering_seed,
                             num_masks=num_masks, activation=activation, positions_per_pass=positions_per_pass,
                             context_size=context_size)
    super().__init__(event_shape, head, ordering, ordering_seed)
    self.hidden_sizes = tuple(int(size) for size in hidden_sizes)
    if not self.hidden_sizes:
      raise ValueError("DeepNADE needs at least one hidden layer")
    if num_masks < 1:
      raise ValueError(f"DeepNADE: num_masks (orderings in the ensemble) must be >= 1, got {num_masks}")
    if activation not in ACTIVATIONS:
      raise ValueError(f"DeepNADE: unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    self.activation = activation
    self.positions_per_pass = int(positions_per_pass)
    self.num_masks = int(num_masks)
    self.draw_orderings = MaskDraws(jnp.asarray(np.stack([
        orderings.make_ordering(ordering, self.num_dims, seed=ordering_seed + k)
        for k in range(self.num_masks)])))  # [N, D]
    self.mask_index = MaskIndex(jnp.zeros((), jnp.int32))
    self.ordering = base.Ordering(self.draw_orderings[0])

    num_dims, num_params = self.num_dims, head.num_params
    sizes = (2 * num_dims, *self.hidden_sizes)
    self.hidden_weights = nnx.List([
        nnx.Param(jax.random.normal(rngs.params(), (fan_in, fan_out)) * jnp.sqrt(2.0 / fan_in))
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:])])
    self.hidden_biases = nnx.List([nnx.Param(jnp.zeros((size,))) for size in self.hidden_sizes])
    last = self.hidden_sizes[-1]
    self.output_weights = nnx.Param(
        jax.random.normal(rngs.params(), (last, num_dims * num_params)) / jnp.sqrt(last))
    self.output_bias = nnx.Param(jnp.tile(head.init_bias()[None], (num_dims, 1)))  # [D, P]
    self.context_size = int(context_size)
    self.context_to_hidden = (nnx.Param(
        jax.random.normal(rngs.params(), (self.context_size, self.hidden_sizes[0]))
        * jnp.sqrt(2.0 / self.context_size)) if self.context_size else None)  # [C, H_1]

  # ----------------------------------------------------------- orderings --

  def set_mask(self, index) -> None:
    """Makes ordering `index` of the ensemble the current one (int, or traced int32 scalar)."""
    if not isinstance(index, jax.core.Tracer) and not 0 <= int(index) < self.num_masks:
      raise ValueError(f"DeepNADE.set_mask: index must lie in [0, {self.num_masks}), got {index}")
    index = jnp.asarray(index, jnp.int32)
    self.mask_index = MaskIndex(index)
    self.ordering = base.Ordering(jnp.take(self.draw_orderings[...], index, axis=0))

  def set_ordering(self, ordering) -> None:
    """Uses any permutation `ordering [D]` (may be traced): the network is the same for all."""
    self.ordering = base.Ordering(jnp.asarray(ordering, jnp.int32))

  # ------------------------------------------------------------- network --

  def _hidden(self, network_inputs, context):
    """`[B, 2D]` network inputs [x ⊙ m, m] (and `[B, C]` context) -> `[B, H_L]`."""
    preactivation = network_inputs @ self.hidden_weights[0][...] + self.hidden_biases[0][...]  # [B, H_1]
    if context is not None:
      preactivation = preactivation + context @ self.context_to_hidden[...]
    return self._deeper(ACTIVATIONS[self.activation](preactivation))

  def _deeper(self, hidden):
    """The layers after the first: first-layer activations `[..., H_1]` -> `[..., H_L]`."""
    for weight, bias in zip(self.hidden_weights[1:], self.hidden_biases[1:]):
      hidden = ACTIVATIONS[self.activation](hidden @ weight[...] + bias[...])  # [..., H_l]
    return hidden

  def conditionals_given(self, inputs, observed, *, context=None):
    """Params of every dimension given the observed ones: `[B, D]` inputs (`head.as_input`
    values, dimension order) and `[B, D]` 0/1 mask (and `[B, C]` context for a conditional
    model) -> `[B, D, P]` params, dimension order.

    Row d is p(x_d | x_observed) for the d not observed; the inputs of the
    unobserved dimensions are ignored.
    """
    context = self._check_context(context, inputs.shape[0])
    params = self._hidden_given(inputs, observed, context) @ self.output_weights[...]  # [B, D·P]
    return params.reshape(-1, self.num_dims, self.head.num_params) + self.output_bias[...]

  def _hidden_given(self, inputs, observed, context):
    """Last hidden layer `[B, H_L]` of the network reading [inputs ⊙ observed, observed]."""
    observed = observed.astype(inputs.dtype)
    return self._hidden(jnp.concatenate([inputs * observed, observed], axis=-1), context)

  def _params_of(self, inputs, observed, dim, context):
    """Params `[B, P]` of dimension `dim` alone given the observed ones: `conditionals_given`
    without the output columns of the other D − 1 dimensions (a quarter of a pass at H = 500)."""
    hidden = self._hidden_given(inputs, observed, context)  # [B, H_L]
    last, num_params = hidden.shape[-1], self.head.num_params
    weights = self.output_weights[...].reshape(last, self.num_dims, num_params)[:, dim]  # [H_L, P]
    return hidden @ weights + self.output_bias[dim]

  def _flat_inputs(self, x):
    return self.head.as_input(x).reshape(x.shape[0], self.num_dims)  # [B, D]

  def conditionals(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    inputs = self._flat_inputs(x)  # [B, D]
    batch, num_dims = inputs.shape
    ordering = self.ordering[...]
    # Position t observes the positions before it, so its first-layer pre-activation is a
    # prefix sum over positions of (value row · x + mask row), advanced chunk by chunk as in
    # NADE: a position costs the deeper layers and its own output column, not a full pass
    # (the first layer reads 2D inputs; ~4x fewer FLOPs at D = 784, H = 500).
    first = self.hidden_weights[0][...]  # [2D, H_1]: the rows of the values, then of the mask
    value_rows, mask_rows = first[:num_dims][ordering], first[num_dims:][ordering]  # [D, H_1]
    mask_prefix = jnp.cumsum(mask_rows, axis=0) - mask_rows  # [D, H_1]: Σ_{s<t} mask rows
    bias = self.hidden_biases[0][...]
    if context is not None:
      bias = bias + context @ self.context_to_hidden[...]  # [B, H_1]
    bias = jnp.broadcast_to(bias, (batch, bias.shape[-1]))[:, None]  # [B, 1, H_1]
    output_weights = self.output_weights[...].reshape(-1, num_dims, self.head.num_params)

    size = self.positions_per_pass  # C positions per scan step
    pad = -num_dims % size  # padded positions: zero value, rows and columns, sliced off
    num_chunks = (num_dims + pad) // size

    def chunks(array, axis):  # position axis `axis` of `array` -> leading [K, ..., C, ...]
      array = jnp.pad(array, [(0, pad) if a == axis else (0, 0) for a in range(array.ndim)])
      array = array.reshape(*array.shape[:axis], num_chunks, size, *array.shape[axis + 1:])
      return jnp.moveaxis(array, axis, 0)

    lower = jnp.tril(jnp.ones((size, size), inputs.dtype), k=-1)  # [t, s] = [s < t]

    def step(carry, chunk):  # carry: Σ over the earlier chunks of value rows · x, [B, H_1]
      values, rows, prefix, columns, output_bias = chunk  # [B, C], [C, H_1], [C, H_1], [H_L, C, P], [C, P]
      within = ((values[:, None, :] * lower).reshape(-1, size) @ rows).reshape(batch, size, -1)
      first = ACTIVATIONS[self.activation](bias + carry[:, None] + within + prefix)  # [B, C, H_1]
      params = jnp.einsum("nch,hcp->ncp", self._deeper(first), columns) + output_bias  # [B, C, P]
      return carry + values @ rows, params

    carry = jnp.zeros((batch, first.shape[-1]), inputs.dtype)
    _, by_chunk = jax.lax.scan(step, carry, (
        chunks(jnp.take(inputs, ordering, axis=1), 1), chunks(value_rows, 0), chunks(mask_prefix, 0),
        chunks(output_weights[:, ordering], 1), chunks(self.output_bias[...][ordering], 0)))
    by_position = jnp.moveaxis(by_chunk, 0, 1).reshape(batch, num_chunks * size, -1)[:, :num_dims]
    return self._params_to_event(by_position)  # [B, *event_shape, P]

  def training_objective(self, x, key, *, context=None):
    """The order-agnostic estimate of −log p(x) `[B]` (one random ordering and split per example)."""
    inputs = self._flat_inputs(x)  # [B, D]
    batch, num_dims = inputs.shape
    split_key, order_key = jax.random.split(key)
    # A random ordering (by u) split at a uniform threshold q: the dimensions with u < q
    # come first. Their number d is uniform on {0, ..., D} (binomial with a uniform
    # probability), and given d they are a uniform random d-subset, i.e. the first d
    # dimensions of a uniform random ordering; no sort is needed (two argsorts of [B, D]
    # took ~80% of a CPU training step).
    u = jax.random.uniform(order_key, (batch, num_dims))
    observed = u < jax.random.uniform(split_key, (batch, 1))  # [B, D]
    num_observed = observed.sum(-1)  # [B]
    params = self.conditionals_given(inputs, observed, context=context)
    log_probs = self.head.log_prob(params, x.reshape(batch, num_dims))  # [B, D]
    unobserved_nll = -jnp.sum(jnp.where(observed, 0.0, log_probs), axis=-1)
    # The paper draws d uniformly from {0, ..., D−1} and weights by D/(D−d). Here d = D
    # (probability 1/(D+1)) leaves nothing to predict and gets weight 0, and the others get
    # (D+1)/(D−d): the same expectation.
    remaining = num_dims - num_observed
    return jnp.where(remaining > 0, (num_dims + 1) / jnp.maximum(remaining, 1), 0.0) * unobserved_nll

  def features(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    network_inputs = jnp.concatenate([self._flat_inputs(x), jnp.ones((x.shape[0], self.num_dims))], axis=-1)
    return self._hidden(network_inputs, context)  # [B, H_L]

  # ------------------------------------------------------------ sampling --

  def init_cache(self, batch_size, *, context=None):
    context = self._check_context(context, batch_size)
    zeros = jnp.zeros((batch_size, self.num_dims))
    # (inputs, observed) in dimension order, and the context of a conditional model.
    return (zeros, zeros) if context is None else (zeros, zeros, context)

  def step(self, cache, t):
    inputs, observed, *context = cache
    return self._params_of(inputs, observed, self.ordering[t], context[0] if context else None), cache

  def observe(self, cache, t, value):
    inputs, observed, *context = cache
    dim = self.ordering[t]
    return (inputs.at[:, dim].set(self.head.as_input(value)), observed.at[:, dim].set(1.0), *context)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeepNADEConfig:
  """Builds a DeepNADE; the fields are the constructor's options."""

  hidden_sizes: tuple[int, ...] = (500, 500)  # units per hidden layer (2 × 500 in Uria et al. 2014)
  head: heads_lib.Head = heads_lib.Bernoulli()  # output distribution of one dimension
  ordering: str | tuple[int, ...] = "random"  # the ensemble's orderings: "random" draws one per mask
  ordering_seed: int = 0  # ordering k of the ensemble uses ordering_seed + k
  num_masks: int = 1  # orderings in the test-time ensemble (EoNADE); training uses all orderings
  activation: str = "relu"  # hidden nonlinearity: "relu", "sigmoid", "softplus" or "tanh"
  positions_per_pass: int = 16  # positions evaluated together by `conditionals` (memory/speed only)
  context_size: int = 0  # C > 0: condition on a context [B, C] (e.g. a one-hot label); 0: unconditional

  def __post_init__(self):
    validation.check_fields(self, RULES)

  def build(self, event_shape, *, rngs: nnx.Rngs) -> DeepNADE:
    return DeepNADE(event_shape, rngs=rngs, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
