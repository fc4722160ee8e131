"""MADE: the masked autoencoder for distribution estimation (Germain, Gregor, Murray & Larochelle 2015).

A multilayer perceptron over all D inputs whose weights are multiplied by
binary masks, so that the outputs for dimension d see only the dimensions
that come before d in the ordering:

    h_1 = g(b_1 + x (W_1 ⊙ M_1))                             h_1 ∈ R^{H_1}
    h_l = g(b_l + h_{l−1} (W_l ⊙ M_l))                       l = 2..L
    params = b_out + h_L (V ⊙ M_out) [+ x (A ⊙ M_direct)]    params ∈ R^{D×P}

The masks follow from degrees (`orderings.made_degrees`, `orderings.made_masks`):
input d has degree position[d], a hidden unit a degree m, and a unit feeds a
unit above it of degree >= its own, the output of position t only from degree
< t. Every conditional comes out of one pass, and the head's P params of a
dimension share its output mask. The masks multiply the weights in the forward
pass and are rebuilt there from the stored degrees; the weights themselves are
never overwritten, and the degrees are state that is saved but never trained.
The activation g is ReLU by default; the smooth ones keep every allowed
dependence visible in a Jacobian at any point, where a ReLU unit that is off
at that point hides its paths (the generic tests use tanh for that reason).

Order- and connectivity-agnostic training, as in the paper: with
`num_masks` N > 1 the model holds N draws of (ordering, hidden degrees). Draw
k takes seed `ordering_seed + k`: `ordering="random"` gives each draw its own
random ordering; a fixed ordering ("raster", "reverse", a permutation) is kept
by every draw, which then differ in their hidden degrees only. The state
`mask_index` picks the draw the network uses, and `model.ordering` is always
the ordering of that draw, so the generic sampler and likelihood follow it.
`set_mask(k)` switches draws (k may be traced inside jit); training picks a
draw per step and `arjax.ensemble_log_prob` averages the N models' probabilities.

Hidden degrees: "random" (i.i.d., as in the paper), "even" (spread evenly
over 0..D−2) or "entropy": placed at quantiles of the cumulative marginal
entropy of the training data taken in the ordering (`marginal_entropies`;
the training loop passes them as `degree_weights`), so that every unit covers
an equal share of the data's per-dimension uncertainty and none is spent on
positions that never vary (the border pixels of MNIST, which "even" gives about
a quarter of the units of one 500-unit layer).

Class-conditional (`context_size` C > 0): the context z [B, C] enters the
first hidden layer and the output unmasked,

    h_1 = g(b_1 + x (W_1 ⊙ M_1) + z U),   params = ... + z U_out,

with U [C, H_1] and U_out [C, D, P]: z is not one of the D dimensions, so
every unit may see it and the autoregressive property holds.

Cache: the first hidden layer's pre-activation, [B, H_1], plus the inputs seen
so far. `observe` adds x_d W_1[d] on the hidden units that may see position t,
and `step` recomputes the deeper layers and the one output column of position
t, so a step costs O(Σ_{l≥2} H_{l−1} H_l + H_1 + H_L P) per example (+ D P with
direct connections), not a full pass.

Features: the last hidden layer, g(...) [B, H_L], under the current mask,
given the whole input. A unit of degree m has seen only the inputs at
positions <= m.
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


ACTIVATIONS = {
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "tanh": jnp.tanh,
}


HIDDEN_DEGREES = ("random", "even", "entropy")
RULES = {**base.COMMON_RULES, "hidden_sizes": validation.sizes(), "num_masks": validation.integer(minimum=1),
         "direct_connections": validation.instance(bool, "True or False"),
         "hidden_degrees": validation.one_of(*HIDDEN_DEGREES), "activation": validation.one_of(*ACTIVATIONS)}


def marginal_entropies(x, head: heads_lib.Head) -> np.ndarray:
  """`[D]` entropy in nats of each dimension's marginal over the examples `x [N, *event_shape]`.

  Bernoulli: of the mean (also for values in [0, 1], the probabilities of dynamic
  binarization); categorical: of the histogram of the K values. Continuous heads
  have no such entropy and raise ValueError.
  """
  x = np.asarray(x).reshape(len(x), -1)
  if isinstance(head, heads_lib.Bernoulli):
    mean = x.mean(0, dtype=np.float64)
    probs = np.stack([1 - mean, mean], -1)  # [D, 2]
  elif isinstance(head, heads_lib.Categorical):
    num_dims, num_classes = x.shape[1], head.num_classes
    flat = x.astype(np.int64) + num_classes * np.arange(num_dims)  # value k of dim d -> d K + k
    counts = np.bincount(flat.ravel(), minlength=num_dims * num_classes)
    probs = counts.reshape(num_dims, num_classes) / len(x)  # [D, K]
  else:
    raise ValueError(f"hidden_degrees='entropy' needs a discrete head (Bernoulli, Categorical); "
                     f"got {type(head).__name__}: use 'even' or 'random'")
  return -np.sum(probs * np.log(np.where(probs > 0, probs, 1.0)), axis=-1)


class MaskDraws(nnx.Variable):
  """MADE's N drawn orderings and hidden degrees: saved with the model, never trained."""


class MaskIndex(nnx.Variable):
  """Which draw of the masks the network uses now: an int32 scalar."""


class MADE(base.AutoregressiveModel):
  has_cache = True

  def __init__(self, event_shape, *, hidden_sizes: tuple[int, ...] = (500,),
               head: heads_lib.Head = heads_lib.Bernoulli(), ordering="raster",
               ordering_seed: int = 0, num_masks: int = 1, direct_connections: bool = False,
               hidden_degrees: str = "random", activation: str = "relu", context_size: int = 0,
               degree_weights=None, rngs: nnx.Rngs):
    validation.check_options("MADE", RULES, hidden_sizes=hidden_sizes, head=head, ordering_seed=ordering_seed,
                             num_masks=num_masks, direct_connections=direct_connections,
                             hidden_degrees=hidden_degrees, activation=activation, context_size=context_size)
    super().__init__(event_shape, head, ordering, ordering_seed)
    self.hidden_sizes = tuple(int(size) for size in hidden_sizes)
    if not self.hidden_sizes:
      raise ValueError("MADE needs at least one hidden layer; an FVSBN is the model without one.")
    if num_masks < 1:
      raise ValueError(f"MADE: num_masks must be >= 1, got {num_masks}")
    if activation not in ACTIVATIONS:
      raise ValueError(f"MADE: unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    self.activation = activation
    num_dims, num_params = self.num_dims, head.num_params
    self.num_masks = int(num_masks)
    # Trained over many random orderings, the network models any ordering (arjax.marginals).
    self.order_agnostic = ordering == "random" and self.num_masks > 1

    if hidden_degrees not in HIDDEN_DEGREES:
      raise ValueError(f"MADE: unknown hidden_degrees {hidden_degrees!r}; choose one of {HIDDEN_DEGREES}")
    if (hidden_degrees == "entropy") != (degree_weights is not None):
      raise ValueError("MADE: hidden_degrees='entropy' needs degree_weights [D] (e.g. "
                       "made.marginal_entropies(train_x, head); the training loop passes them), and "
                       "degree_weights are used by 'entropy' alone")
    method = "quantile" if hidden_degrees == "entropy" else hidden_degrees
    draw_orderings, draw_hidden_degrees = [], []
    for k in range(self.num_masks):
      draw_ordering = orderings.make_ordering(ordering, num_dims, seed=ordering_seed + k)
      degrees = orderings.made_degrees(draw_ordering, self.hidden_sizes, seed=ordering_seed + k,
                                       method=method, dim_weights=degree_weights)
      draw_orderings.append(draw_ordering)
      draw_hidden_degrees.append(np.concatenate(degrees[1:]))
    self.draw_orderings = MaskDraws(jnp.asarray(np.stack(draw_orderings)))  # [N, D]
    self.draw_hidden_degrees = MaskDraws(jnp.asarray(np.stack(draw_hidden_degrees)))  # [N, ΣH]
    self.mask_index = MaskIndex(jnp.zeros((), jnp.int32))

    # Weights are indexed by dimension, not position, so that every draw of the
    # masks (every ordering) shares them.
    sizes = (num_dims, *self.hidden_sizes)
    self.hidden_weights = nnx.List([
        nnx.Param(jax.random.normal(rngs.params(), (fan_in, fan_out)) / jnp.sqrt(fan_in))
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:])])
    self.hidden_biases = nnx.List([nnx.Param(jnp.zeros((size,))) for size in self.hidden_sizes])
    last = self.hidden_sizes[-1]
    self.output_weights = nnx.Param(
        jax.random.normal(rngs.params(), (last, num_dims, num_params)) / jnp.sqrt(last))
    self.output_bias = nnx.Param(jnp.tile(head.init_bias()[None], (num_dims, 1)))  # [D, P]
    # direct_weights[j, d, p]: weight of input j in param p of dimension d.
    self.direct_weights = (
        nnx.Param(0.01 * jax.random.normal(rngs.params(), (num_dims, num_dims, num_params)))
        if direct_connections else None)
    self.context_size = int(context_size)
    if self.context_size:
      self.context_to_hidden = nnx.Param(jax.random.normal(
          rngs.params(), (self.context_size, self.hidden_sizes[0])) / jnp.sqrt(self.context_size))
      self.context_to_output = nnx.Param(jnp.zeros((self.context_size, num_dims, num_params)))  # [C, D, P]
    else:
      self.context_to_hidden = self.context_to_output = None

  # ------------------------------------------------------------- masks --

  def set_mask(self, index) -> None:
    """Makes draw `index` (an int, or an int32 scalar traced inside jit) the current one.

    Updates `mask_index` and `ordering` together. The Variables are replaced
    rather than written in place, so this also works on a model merged inside
    jit from state the jitted function closes over (NNX refuses in-place
    writes to Variables of an outer trace).
    """
    if not isinstance(index, jax.core.Tracer) and not 0 <= int(index) < self.num_masks:
      raise ValueError(f"MADE.set_mask: index must lie in [0, {self.num_masks}), got {index}")
    index = jnp.asarray(index, jnp.int32)
    self.mask_index = MaskIndex(index)
    self.ordering = base.Ordering(jnp.take(self.draw_orderings[...], index, axis=0))

  def _hidden_degrees(self, index) -> list[jax.Array]:
    """Degrees of the hidden units under draw `index`: `[H_1], ..., [H_L]`."""
    degrees = jnp.take(self.draw_hidden_degrees[...], index, axis=0)  # [ΣH]
    return jnp.split(degrees, np.cumsum(self.hidden_sizes)[:-1].tolist())

  def _degrees(self, index) -> list[jax.Array]:
    """`made_degrees` under the current ordering and the hidden degrees of draw `index`: input
    degrees (positions) `[D]`, then the hidden ones. (`set_mask` makes the current ordering
    that of the draw; `set_ordering` replaces it.)"""
    return [jnp.argsort(self.ordering[...]).astype(jnp.int32), *self._hidden_degrees(index)]

  def set_ordering(self, ordering) -> None:
    """Uses the permutation `ordering [D]` (may be traced) with the current draw's hidden degrees.

    Degrees are positions, so any draw's hidden degrees wire up any ordering
    into a valid autoregressive network; it is a good model of that ordering
    only if training saw many orderings (`order_agnostic`).
    """
    self.ordering = base.Ordering(jnp.asarray(ordering, jnp.int32))

  # ------------------------------------------------------ teacher-forced --

  def _activate(self, preactivation):
    return ACTIVATIONS[self.activation](preactivation)

  def _first_layer_bias(self, context):
    """b_1 [H_1], or b_1 + context U [B, H_1] for a conditional model."""
    bias = self.hidden_biases[0][...]
    return bias if context is None else bias + context @ self.context_to_hidden[...]

  def _hidden(self, inputs, masks, context=None):
    """[B, D] inputs (and [B, C] context) -> [B, H_L], the last hidden layer."""
    hidden = inputs
    biases = [self._first_layer_bias(context)] + [bias[...] for bias in self.hidden_biases[1:]]
    for weight, bias, mask in zip(self.hidden_weights, biases, masks[:-1]):
      hidden = self._activate(hidden @ (weight[...] * mask) + bias)  # [B, H_l]
    return hidden

  def _output(self, hidden, inputs, degrees, masks, context=None):
    """[B, H_L] last hidden layer (and [B, D] inputs, [B, C] context) -> [B, D, P] params in
    dimension order."""
    last, num_dims, num_params = self.output_weights.shape
    output_weights = self.output_weights[...] * masks[-1][:, :, None]  # [H_L, D, P]
    params = hidden @ output_weights.reshape(last, num_dims * num_params)  # [B, D·P]
    if self.direct_weights is not None:
      direct_mask = orderings.made_masks(degrees[:1])[0]  # [D, D]
      direct = self.direct_weights[...] * direct_mask[:, :, None]  # [D, D, P]
      params = params + inputs @ direct.reshape(num_dims, num_dims * num_params)
    if context is not None:
      params = params + context @ self.context_to_output[...].reshape(self.context_size, -1)
    return params.reshape(-1, num_dims, num_params) + self.output_bias[...]  # [B, D, P]

  def _conditionals_under(self, x, index, context=None):
    """`conditionals` under draw `index` of the masks (traceable, so it can be vmapped);
    `context` is the checked `[B, C]` context or None."""
    inputs = self.head.as_input(x).reshape(x.shape[0], self.num_dims)  # [B, D]
    degrees = self._degrees(index)
    masks = orderings.made_masks(degrees)
    hidden = self._hidden(inputs, masks, context)  # [B, H_L]
    params = self._output(hidden, inputs, degrees, masks, context)  # [B, D, P]
    return params.reshape(x.shape[0], *self.event_shape, self.head.num_params)

  def conditionals(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    return self._conditionals_under(x, self.mask_index[...], context)

  def features(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    inputs = self.head.as_input(x).reshape(x.shape[0], self.num_dims)  # [B, D]
    masks = orderings.made_masks(self._degrees(self.mask_index[...]))
    return self._hidden(inputs, masks, context)  # [B, H_L]

  # ------------------------------------------------------------ sampling --

  def init_cache(self, batch_size, *, context=None):
    context = self._check_context(context, batch_size)
    first_layer = jnp.broadcast_to(self._first_layer_bias(context), (batch_size, self.hidden_sizes[0]))
    inputs = jnp.zeros((batch_size, self.num_dims))  # filled in position by position
    # A conditional model keeps the context for its term of each output.
    return (first_layer, inputs) if context is None else (first_layer, inputs, context)

  def step(self, cache, t):
    first_layer, inputs, *context = cache
    index = self.mask_index[...]
    # Only the deeper masks are used; the input degrees they would need are dead code.
    masks = orderings.made_masks(self._degrees(index))
    hidden = self._activate(first_layer)  # [B, H_1]
    for weight, bias, mask in zip(self.hidden_weights[1:], self.hidden_biases[1:], masks[1:-1]):
      hidden = self._activate(hidden @ (weight[...] * mask) + bias[...])  # [B, H_l]
    dim = self.ordering[t]
    sees = (self._hidden_degrees(index)[-1] < t)[:, None]  # [H_L, 1]: the output mask of dim
    params = self.output_bias[dim] + hidden @ (self.output_weights[:, dim] * sees)  # [B, P]
    if self.direct_weights is not None:
      # Only the positions before t have been observed; the others are still 0.
      params = params + inputs @ self.direct_weights[:, dim]
    if context:
      params = params + context[0] @ self.context_to_output[:, dim]
    return params, cache

  def observe(self, cache, t, value):
    first_layer, inputs, *context = cache
    dim = self.ordering[t]
    value = self.head.as_input(value)  # [B]
    sees = self._hidden_degrees(self.mask_index[...])[0] >= t  # [H_1]: the units that see position t
    first_layer = first_layer + value[:, None] * (self.hidden_weights[0][dim] * sees)
    return first_layer, inputs.at[:, dim].set(value), *context


@dataclasses.dataclass(frozen=True, kw_only=True)
class MADEConfig:
  """Builds a MADE; the fields are the constructor's options."""

  hidden_sizes: tuple[int, ...] = (500,)  # units per hidden layer (one layer of 500 on MNIST in the paper)
  head: heads_lib.Head = heads_lib.Bernoulli()  # output distribution of one dimension
  ordering: str | tuple[int, ...] = "raster"  # "raster", "reverse", "random" or a permutation
  ordering_seed: int = 0  # seed of draw 0; draw k of the masks uses ordering_seed + k
  num_masks: int = 1  # N draws of (ordering, hidden degrees); > 1 for order/connectivity-agnostic training
  direct_connections: bool = False  # add masked input -> output weights
  # "random" (i.i.d., as in the paper), "even" (deterministic) or "entropy" (at quantiles of the
  # training data's cumulative marginal entropy; `build` then needs `degree_weights`)
  hidden_degrees: str = "random"
  activation: str = "relu"  # hidden nonlinearity: "relu", "sigmoid", "softplus" or "tanh"
  context_size: int = 0  # C > 0: condition on a context [B, C] (e.g. a one-hot label); 0: unconditional

  def __post_init__(self):
    validation.check_fields(self, RULES)

  def build(self, event_shape, *, rngs: nnx.Rngs, degree_weights=None) -> MADE:
    return MADE(event_shape, rngs=rngs, degree_weights=degree_weights,
                **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

  def data_kwargs(self, train_x) -> dict:
    """What `build` needs from the training data: the marginal entropies for "entropy"."""
    if self.hidden_degrees != "entropy":
      return {}
    return {"degree_weights": marginal_entropies(train_x, self.head)}
