"""A causal Transformer over the sequence of (sub-)pixels, ImageGPT-style (Chen et al. 2020).

Position t generates dimension d_t = ordering[t] (for an image `[H, W, C]`, the
channels of a pixel are consecutive dimensions, so raster order is ImageGPT's
sub-pixel sequence). The input token of position t is the previous value's
embedding, or a learned start token at t = 0, plus an embedding of the
position and, for a conditional model, of the context:

    u_0 = s + p_0 + z U,      u_t = e(x_{d_{t−1}}) + p_t + z U    (t = 1..D−1)    u_t ∈ R^E
    h^0 = u,  h^l = h^{l−1} + Attn_l(LN(h^{l−1})),  h^l ← h^l + MLP_l(LN(h^l))    l = 1..L
    params_t = b + W LN(h^L_t)                                                      params_t ∈ R^P

e(x) = head.as_input(x) w_in + b_in is linear in the network input (x for
Bernoulli, x / (K − 1) for categorical), so one embedding serves every head.
Attention is causal over positions: position t attends to positions <= t,
whose tokens carry the values at positions < t, so params_t depends only on
x_{d_0}, ..., x_{d_{t−1}} and the autoregressive property holds for any ordering.
Masked scores are set to −∞ before the softmax, so their weights (and every
derivative through them) are exactly zero, not ~1e-6.

Position embeddings: "learned" (a table [D, E], the only choice for flat
events `[D]`) or "row_column" for images `[H, W, C]`: p_t = r[row] + c[column]
+ k[channel] of d_t, with H + W + C rows instead of H·W·C, the factorization
that lets nearby pixels share what they learn.

Class-conditional (`context_size` C > 0): the context z [B, C] is projected by
U [C, E] and added to every token; it is not one of the D dimensions.

Cache (the sampling state): the keys and values of every layer at every
position, `[L, B, D, heads, head_dim]` each, plus the embedding of the value
observed last (the start token before any). `step(cache, t)` runs the one
token of position t through the blocks, writing its keys and values at t and
attending to the cached positions <= t, so a step costs O(L (E² + t E)) per
example instead of a full pass over D positions; `observe` embeds the value.
Teacher-forced and cached paths share `_Block.attend` and the embeddings.

Features: the final layer's normalized activations LN(h^L) averaged over the
D positions, `[B, E]`, given the whole input (the last value x_{d_{D−1}} is
read by no position, so it does not enter).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from arjax import heads as heads_lib
from arjax.models import base

POSITION_EMBEDDINGS = ("learned", "row_column")


class _Block(nnx.Module):
  """A pre-norm Transformer block: causal multi-head self-attention, then a GELU MLP."""

  def __init__(self, embed_dim: int, num_heads: int, mlp_ratio: int, *, rngs: nnx.Rngs):
    self.num_heads = num_heads
    self.head_dim = embed_dim // num_heads
    self.attention_norm = nnx.LayerNorm(embed_dim, rngs=rngs)
    self.qkv = nnx.Linear(embed_dim, 3 * embed_dim, rngs=rngs)
    self.attention_out = nnx.Linear(embed_dim, embed_dim, rngs=rngs)
    self.mlp_norm = nnx.LayerNorm(embed_dim, rngs=rngs)
    self.mlp_in = nnx.Linear(embed_dim, mlp_ratio * embed_dim, rngs=rngs)
    self.mlp_out = nnx.Linear(mlp_ratio * embed_dim, embed_dim, rngs=rngs)

  def queries_keys_values(self, h):
    """[B, T, E] -> queries, keys, values, each [B, T, heads, head_dim]."""
    qkv = self.qkv(self.attention_norm(h))  # [B, T, 3E]
    qkv = qkv.reshape(*h.shape[:2], 3, self.num_heads, self.head_dim)  # [B, T, 3, heads, head_dim]
    return qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]

  def attend(self, h, queries, keys, values, allowed):
    """The block's output for tokens `h [B, T, E]` whose queries `[B, T, heads, head_dim]` attend
    to `keys`, `values [B, S, heads, head_dim]` where `allowed [T, S]` is True."""
    scores = jnp.einsum("bthd,bshd->bhts", queries, keys) / jnp.sqrt(self.head_dim)  # [B, heads, T, S]
    # −∞, not a large negative number: the masked weights are exactly 0 and so are their gradients.
    weights = jax.nn.softmax(jnp.where(allowed, scores, -jnp.inf), axis=-1)  # [B, heads, T, S]
    attended = jnp.einsum("bhts,bshd->bthd", weights, values)  # [B, T, heads, head_dim]
    h = h + self.attention_out(attended.reshape(h.shape))  # [B, T, E]
    return h + self.mlp_out(jax.nn.gelu(self.mlp_in(self.mlp_norm(h))))  # [B, T, E]


class Transformer(base.AutoregressiveModel):
  has_cache = True

  def __init__(self, event_shape, *, num_layers: int = 2, num_heads: int = 4, embed_dim: int = 64,
               mlp_ratio: int = 4, position_embedding: str = "learned",
               head: heads_lib.Head = heads_lib.Bernoulli(), ordering="raster",
               ordering_seed: int = 0, context_size: int = 0, rngs: nnx.Rngs):
    super().__init__(event_shape, head, ordering, ordering_seed)
    if num_layers < 1:
      raise ValueError(f"Transformer: num_layers must be >= 1, got {num_layers}")
    if num_heads < 1 or embed_dim % num_heads:
      raise ValueError(f"Transformer: embed_dim ({embed_dim}) must be a positive multiple of "
                       f"num_heads ({num_heads})")
    if position_embedding not in POSITION_EMBEDDINGS:
      raise ValueError(f"Transformer: unknown position_embedding {position_embedding!r}; choose one "
                       f"of {POSITION_EMBEDDINGS}")
    if position_embedding == "row_column" and len(self.event_shape) != 3:
      raise ValueError(f"Transformer: position_embedding='row_column' needs image events: event_shape "
                       f"must be [height, width, channels]; got {self.event_shape} (use 'learned' "
                       "for flat events)")
    self.num_layers, self.num_heads, self.embed_dim = int(num_layers), int(num_heads), int(embed_dim)
    self.position_embedding = position_embedding
    normal = nnx.initializers.normal(0.02)
    self.value_embedding = nnx.Linear(1, embed_dim, rngs=rngs)
    self.start_token = nnx.Param(normal(rngs.params(), (embed_dim,)))
    if position_embedding == "learned":
      self.positions = nnx.Param(normal(rngs.params(), (self.num_dims, embed_dim)))  # [D, E]
    else:
      self.positions = nnx.List([nnx.Param(normal(rngs.params(), (size, embed_dim)))
                                 for size in self.event_shape])  # row, column, channel tables
    self.context_size = int(context_size)
    self.context_embedding = (nnx.Linear(self.context_size, embed_dim, use_bias=False, rngs=rngs)
                              if self.context_size else None)
    self.blocks = nnx.List([_Block(embed_dim, num_heads, mlp_ratio, rngs=rngs)
                            for _ in range(num_layers)])
    self.final_norm = nnx.LayerNorm(embed_dim, rngs=rngs)
    self.output = nnx.Linear(embed_dim, head.num_params, kernel_init=nnx.initializers.zeros,
                             rngs=rngs)
    self.output.bias[...] = head.init_bias()

  # ---------------------------------------------------------- embeddings --

  def _position_embeddings(self, positions):
    """p_t for the positions `positions [T]` (int): `[T, E]`."""
    if self.position_embedding == "learned":
      return jnp.take(self.positions[...], positions, axis=0)
    dims = jnp.take(self.ordering[...], positions)  # [T], the dimension each position generates
    coordinates = jnp.unravel_index(dims, self.event_shape)  # (row, column, channel), each [T]
    return sum(jnp.take(table[...], index, axis=0) for table, index in zip(self.positions, coordinates))

  def _embed_values(self, inputs):
    """e(x) for network inputs `[...]` (head.as_input): `[..., E]`."""
    return self.value_embedding(inputs[..., None])

  def _context_term(self, context):
    """z U `[B, 1, E]`, or 0 for an unconditional model."""
    return 0.0 if context is None else self.context_embedding(context)[:, None]

  # ------------------------------------------------------ teacher-forced --

  def _final_hidden(self, x, context):
    """LN(h^L) `[B, D, E]` in position order for `x [B, *event_shape]`."""
    inputs = self._inputs_in_order(x)  # [B, D]
    batch = inputs.shape[0]
    start = jnp.broadcast_to(self.start_token[...], (batch, 1, self.embed_dim))
    tokens = jnp.concatenate([start, self._embed_values(inputs[:, :-1])], axis=1)  # [B, D, E]
    h = tokens + self._position_embeddings(jnp.arange(self.num_dims)) + self._context_term(context)
    causal = jnp.tril(jnp.ones((self.num_dims, self.num_dims), bool))  # [T, S]: s <= t
    for block in self.blocks:
      queries, keys, values = block.queries_keys_values(h)
      h = block.attend(h, queries, keys, values, causal)  # [B, D, E]
    return self.final_norm(h)

  def conditionals(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    params = self.output(self._final_hidden(x, context))  # [B, D, P], position order
    return self._params_to_event(params)

  def features(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    return self._final_hidden(x, context).mean(axis=1)  # [B, E]

  # ------------------------------------------------------------ sampling --

  def init_cache(self, batch_size, *, context=None):
    context = self._check_context(context, batch_size)
    head_dim = self.embed_dim // self.num_heads
    shape = (self.num_layers, batch_size, self.num_dims, self.num_heads, head_dim)
    cache = {
        "keys": jnp.zeros(shape), "values": jnp.zeros(shape),  # [L, B, D, heads, head_dim]
        "next_token": jnp.broadcast_to(self.start_token[...], (batch_size, self.embed_dim)),  # [B, E]
    }
    if context is not None:
      cache["context"] = context
    return cache

  def step(self, cache, t):
    context = cache.get("context")
    h = cache["next_token"] + self._position_embeddings(jnp.asarray(t)[None])  # [B, E]
    if context is not None:
      h = h + self._context_term(context)[:, 0]
    h = h[:, None]  # [B, 1, E]
    allowed = (jnp.arange(self.num_dims) <= t)[None]  # [1, D]
    all_keys, all_values = cache["keys"], cache["values"]
    for layer, block in enumerate(self.blocks):
      query, key, value = block.queries_keys_values(h)  # [B, 1, heads, head_dim]
      # One in-place write of position t into the [L, B, D, heads, head_dim] buffers, then a read
      # of layer `layer` (writing a whole updated layer back copied it every step).
      all_keys = jax.lax.dynamic_update_slice(all_keys, key[None], (layer, 0, t, 0, 0))
      all_values = jax.lax.dynamic_update_slice(all_values, value[None], (layer, 0, t, 0, 0))
      h = block.attend(h, query, all_keys[layer], all_values[layer], allowed)  # [B, 1, E]
    params = self.output(self.final_norm(h[:, 0]))  # [B, P]
    return params, {**cache, "keys": all_keys, "values": all_values}

  def observe(self, cache, t, value):
    return {**cache, "next_token": self._embed_values(self.head.as_input(value))}  # [B, E]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformerConfig:
  """Builds a Transformer; the fields are the constructor's options."""

  num_layers: int = 2  # L pre-norm blocks
  num_heads: int = 4  # attention heads per block
  embed_dim: int = 64  # E, the width of every token (a multiple of num_heads)
  mlp_ratio: int = 4  # the MLP's hidden width is mlp_ratio · E
  position_embedding: str = "learned"  # "learned" ([D, E] table) or "row_column" (images [H, W, C])
  head: heads_lib.Head = heads_lib.Bernoulli()  # output distribution of one dimension
  ordering: str | tuple[int, ...] = "raster"  # "raster", "reverse", "random" or a permutation
  ordering_seed: int = 0  # seed of a random ordering
  context_size: int = 0  # C > 0: condition on a context [B, C] (e.g. a one-hot label); 0: unconditional

  def build(self, event_shape, *, rngs: nnx.Rngs) -> Transformer:
    return Transformer(event_shape, rngs=rngs,
                       **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
