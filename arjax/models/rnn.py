"""RNN: a recurrent network (LSTM or GRU) read along the ordering.

Position t generates dimension d_t = ordering[t]. The network reads one input
per position and predicts the dimension of that position:

    u_t = [x_{d_{t−1}}, e_t]        u_t ∈ R^{1+E}   (x_{d_{−1}} := 0)
    h_t = Cell(h_{t−1}, u_t)        h_t ∈ R^H        (h_{−1} = 0; stacked cells for L layers)
    params_t = b + W h_t            params_t ∈ R^P

x enters as `head.as_input(x)`, a scalar. e_t is a learned embedding of the
position, which tells the network which dimension it is asked for next (a
plain RNN would have to count its steps to know where it is in the image).
The ordering is fixed, so position t and dimension d_t are in one-to-one
correspondence and embedding either is the same model up to a permutation of
the table's rows; embedding the position lets the scan read the table in order.
At position 0 there is no previous value: the input is [0, e_0], and e_0 is
the learned start input. h_t depends only on x_{d_0}, …, x_{d_{t−1}}, so the
autoregressive structure holds by construction, for any ordering.

Class-conditional (`context_size` C > 0): the context z [B, C] is appended
to every step's input, u_t = [x_{d_{t−1}}, e_t, z], so the first cell's input
projection adds a learned linear function of z at every position.

`conditionals` is one teacher-forced `lax.scan` over the D positions. The
sampling cache is the cells' carry plus the pending value x_{d_{t−1}}: `step`
runs the cells on it, `observe` stores the value drawn at position t. Both
paths call the same `_advance`, so they compute the same params.

Features: the top layer's hidden state after reading the whole input, [B, H]
— one step past the last position, with input [x_{d_{D−1}}, 0] (no position
comes next, so that step's position embedding is zero rather than an extra,
never-trained row).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from arjax import heads as heads_lib
from arjax import validation
from arjax.models import base

#: The recurrent cells by the name used in configs.
CELLS = {"lstm": nnx.LSTMCell, "gru": nnx.GRUCell}
RULES = {**base.COMMON_RULES, "cell": validation.one_of(*CELLS), "num_hidden": validation.integer(minimum=1),
         "num_layers": validation.integer(minimum=1), "num_position_features": validation.integer(minimum=1)}


class RNN(base.AutoregressiveModel):
  has_cache = True

  def __init__(self, event_shape, *, cell: str = "lstm", num_hidden: int = 256,
               num_layers: int = 1, num_position_features: int = 16,
               head: heads_lib.Head = heads_lib.Bernoulli(), ordering="raster",
               ordering_seed: int = 0, context_size: int = 0, rngs: nnx.Rngs):
    validation.check_options("RNN", RULES, cell=cell, num_hidden=num_hidden, num_layers=num_layers,
                             num_position_features=num_position_features, head=head,
                             ordering_seed=ordering_seed, context_size=context_size)
    if cell not in CELLS:
      raise ValueError(f"Unknown RNN cell {cell!r}; choose one of {sorted(CELLS)}")
    if num_layers < 1:
      raise ValueError(f"RNN: num_layers must be >= 1, got {num_layers}")
    super().__init__(event_shape, head, ordering, ordering_seed)
    self.context_size = int(context_size)
    # Row t belongs to position t (see the module docstring).
    self.position_embedding = nnx.Param(
        jax.random.normal(rngs.params(), (self.num_dims, num_position_features)))  # [D, E]
    self.cells = nnx.List([
        CELLS[cell](1 + num_position_features + self.context_size if layer == 0 else num_hidden,
                    num_hidden, rngs=rngs)
        for layer in range(num_layers)])
    self.output = nnx.Linear(
        num_hidden, head.num_params, rngs=rngs,
        bias_init=lambda key, shape, dtype: head.init_bias().astype(dtype))

  def _initial_carry(self, batch_size):
    """Zero state of every layer: (c, h) for an LSTM, h for a GRU."""
    carry = []
    for cell in self.cells:
      zeros = jnp.zeros((batch_size, cell.hidden_features))  # [B, H]
      carry.append((zeros, zeros) if isinstance(cell, nnx.LSTMCell) else zeros)
    return tuple(carry)

  def _advance(self, carry, value, position_features, context=None):
    """One step of the stacked cells on input [value [B], position_features [E](, context [B, C])]."""
    inputs = jnp.concatenate(
        [value[:, None], jnp.broadcast_to(position_features, (value.shape[0], position_features.shape[-1]))]
        + ([] if context is None else [context]), axis=-1)  # [B, 1+E(+C)]
    new_carry = []
    for cell, layer_carry in zip(self.cells, carry):
      layer_carry, inputs = cell(layer_carry, inputs)  # inputs: [B, H]
      new_carry.append(layer_carry)
    return tuple(new_carry), inputs

  def _read(self, values, position_features, context=None):
    """Runs the cells over values [B, T] with embeddings [T, E] (and context [B, C] at every
    step); top hidden states [B, T, H]."""
    _, hidden = jax.lax.scan(lambda carry, inputs: self._advance(carry, *inputs, context),
                             self._initial_carry(values.shape[0]),
                             (values.T, position_features))  # hidden: [T, B, H]
    return hidden.transpose(1, 0, 2)  # [B, T, H]

  def conditionals(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    inputs = self._inputs_in_order(x)  # [B, D]
    previous = jnp.pad(inputs[:, :-1], ((0, 0), (1, 0)))  # [B, D]: x_{d_{t−1}}, 0 at t = 0
    hidden = self._read(previous, self.position_embedding[...], context)  # [B, D, H]
    return self._params_to_event(self.output(hidden))  # [B, *event_shape, P]

  def features(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    inputs = jnp.pad(self._inputs_in_order(x), ((0, 0), (1, 0)))  # [B, D+1]
    position_features = jnp.pad(self.position_embedding[...], ((0, 1), (0, 0)))  # [D+1, E]
    return self._read(inputs, position_features, context)[:, -1]  # [B, H]

  def init_cache(self, batch_size, *, context=None):
    context = self._check_context(context, batch_size)
    carry, pending = self._initial_carry(batch_size), jnp.zeros((batch_size,))  # pending value [B]
    return (carry, pending) if context is None else (carry, pending, context)

  def step(self, cache, t):
    carry, pending, *context = cache
    carry, hidden = self._advance(carry, pending, self.position_embedding[t], *context)  # hidden: [B, H]
    return self.output(hidden), (carry, pending, *context)  # [B, P]

  def observe(self, cache, t, value):
    carry, _, *context = cache
    return carry, self.head.as_input(value), *context


@dataclasses.dataclass(frozen=True, kw_only=True)
class RNNConfig:
  """Builds an RNN; the fields are the constructor's options."""

  cell: str = "lstm"  # recurrent cell: "lstm" or "gru" (flax.nnx's LSTMCell / GRUCell)
  num_hidden: int = 256  # H, hidden units of every layer
  num_layers: int = 1  # L, stacked cells; layer l > 0 reads layer l−1's hidden state
  num_position_features: int = 16  # E, size of the learned position embedding e_t
  head: heads_lib.Head = heads_lib.Bernoulli()  # output distribution of one dimension
  ordering: str | tuple[int, ...] = "raster"  # "raster", "reverse", "random" or a permutation
  ordering_seed: int = 0  # seed of the "random" ordering
  context_size: int = 0  # C > 0: condition on a context [B, C] (e.g. a one-hot label); 0: unconditional

  def __post_init__(self):
    validation.check_fields(self, RULES)

  def build(self, event_shape, *, rngs: nnx.Rngs) -> RNN:
    return RNN(event_shape, rngs=rngs, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
