"""Order-agnostic images: locally masked convolutions (Jain, Abbeel & Pathak 2020, "Locally
Masked Convolution for Autoregressive Models").

One network, one set of weights, K orderings of the pixels. A locally masked
convolution masks each output location's k × k input window with a mask of its
own, taken from the ordering: with pos(q) the position of pixel q in the
ordering, the output at pixel p sees the neighbour q of its window iff

    pos(q) <  pos(p)    first layer (it must not see the value it predicts),
    pos(q) <= pos(p)    every later layer,

so the params of pixel p depend only on pixels earlier in the ordering, for
every ordering, through the same weights. The network (a PixelCNN whose masks
move with the ordering):

    u = [x, 1]                                 [B, H, W, C+1] (the ones channel marks the image inside the zero padding)
    h_0 = LMConv_0(u) + z U                    [B, H, W, F]   (k_0 × k_0, strict)
    h_l = h_{l−1} + LMConv_l(g(h_{l−1}))       l = 1..L       (k × k)
    params = W_2 g(W_1 g(h_L) + b_1) + b_2     [B, H, W, C, P] (1 × 1)

with g the activation and z U the projected context of a conditional model.
The paper multiplies im2col patches (`jax.lax.conv_general_dilated_patches`) by
the masks; here a location's mask is one of a few patterns (one for raster-type
orderings, two for S-curves: `mask_patterns`), so the full pass is one plain
convolution per pattern with the 0/1-masked kernel, each location keeping its
own pattern's output (~4x faster on a CPU than the patches' matrix product). A
masked weight is exactly 0, so a masked input has derivative exactly 0.0, as
the Jacobian tests require; the one-pixel step applies the same mask to its window.

The orderings (`PIXEL_ORDERINGS`, all 8 for K = 8): raster, its reversal, its
transpose (column by column), the transpose's reversal, then the same four for
the S-curve (rows alternately left to right and right to left). The first four
put any side of the image first: top (raster), bottom (reversed raster), left
(transposed), right (reversed transpose). The state `mask_index` picks the
ordering and `model.ordering` is that ordering as a flat permutation of the D =
H·W dimensions, so training draws one per step, `arjax.ensemble_log_prob` is
the mixture (1/K) Σ_k p(x | ordering k), and the sampler and likelihood follow
`set_mask(k)`. Only these K orderings are trained; it is not
`order_agnostic` in the sense of any ordering (`set_ordering` is refused).

Inpainting is exact when the observed pixels come first in one of the K
orderings (`arjax.uses.inpaint` selects such a draw): then clamping them in the
sampler is conditioning on them, p(x_rest | x_observed) under that ordering.

Channels (C > 1): a pixel's channels are consecutive positions (dimension p·C + c),
and inside a pixel the masks are PixelCNN's: the F features of a layer form C
groups (`channel_groups`), and at the output's own pixel group g sees the input
groups < g (first layer) or <= g (later layers, and the 1 × 1 output layers);
the window's other pixels are seen by every group when earlier in the ordering.

Cache (exact for every ordering): each conv layer's input map, zero-padded,
`[B, H + 2R, W + 2R, F]`. At step t only pixel p = ordering[t] is computed, each
layer from its k × k window of the layer below: the window's pixels earlier
in the ordering were written at their own steps and are final (they depend only
on pixels before them), p's own entry was just written, and later pixels are
masked. A step costs O(L k² F²) per example instead of a full pass.

Features: g(h_L) averaged over the pixels, `[B, F]`, given the whole image.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arjax import heads as heads_lib
from arjax.models import base

ACTIVATIONS = {"elu": jax.nn.elu, "relu": jax.nn.relu, "tanh": jnp.tanh}

PIXEL_ORDERINGS = ("raster", "reverse_raster", "transposed", "reverse_transposed",
                   "s_curve", "reverse_s_curve", "transposed_s_curve", "reverse_transposed_s_curve")


def pixel_ordering(name: str, height: int, width: int) -> np.ndarray:
  """The flat pixel indices `r·W + c` `[H·W]` in the order `name` (one of PIXEL_ORDERINGS) visits them."""
  if name not in PIXEL_ORDERINGS:
    raise ValueError(f"Unknown pixel ordering {name!r}; choose one of {PIXEL_ORDERINGS}")
  index = np.arange(height * width).reshape(height, width)  # [H, W]
  base_name = name.removeprefix("reverse_")
  if base_name.startswith("transposed"):
    index = index.T  # [W, H]: column by column
  if base_name.endswith("s_curve"):
    index = index.copy()
    index[1::2] = index[1::2, ::-1]  # every other line runs backwards
  order = index.reshape(-1)
  return order[::-1].copy() if name.startswith("reverse_") else order


def local_masks(ordering: np.ndarray, height: int, width: int, kernel_size: int, *,
                strict: bool) -> np.ndarray:
  """`[H, W, k²]` float 0/1: whether output pixel p sees the window tap of its neighbour q,
  pos(q) < pos(p) (`strict`) or <= pos(p); taps outside the image are 0."""
  radius = kernel_size // 2
  position = np.empty(height * width, np.int64)
  position[ordering] = np.arange(height * width)
  position = position.reshape(height, width)
  padded = np.pad(position, radius, constant_values=np.iinfo(np.int64).max)  # outside: never seen
  taps = np.stack([padded[a:a + height, b:b + width]
                   for a in range(kernel_size) for b in range(kernel_size)], -1)  # [H, W, k²]
  seen = taps < position[..., None] if strict else taps <= position[..., None]
  return seen.astype(np.float32)


def mask_patterns(masks: np.ndarray, height: int, width: int, kernel_size: int,
                  num_patterns: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The few distinct masks behind the per-location `masks [H, W, k²]`: patterns `[P, k²]`
  and one-hot selectors `[P, H, W]` with masks[p] equal to the pattern p selects on every tap
  inside the image (taps outside read zero padding, so either value is right there).

  Raster-type orderings need one pattern, S-curves two (the rows that run left and those that
  run right), so the full pass is P plain convolutions with masked kernels instead of an
  im2col matrix product ~3-5x slower on a CPU. `num_patterns` pads with unused (all-zero) ones.
  """
  radius = kernel_size // 2
  inside = np.pad(np.ones((height, width), bool), radius)
  inside = np.stack([inside[a:a + height, b:b + width]
                     for a in range(kernel_size) for b in range(kernel_size)], -1)  # [H, W, k²]
  patterns, selectors = [], []
  # Locations with the most taps inside the image first, so the patterns are interior ones.
  for flat in np.argsort(-inside.reshape(height * width, -1).sum(-1), kind="stable"):
    row, col = divmod(int(flat), width)
    seen, known = masks[row, col] > 0, inside[row, col]
    for index, pattern in enumerate(patterns):
      if np.array_equal(pattern[known], seen[known]):
        selectors[index][row, col] = 1.0
        break
    else:
      patterns.append(np.where(known, seen, False))
      selectors.append(np.zeros((height, width), np.float32))
      selectors[-1][row, col] = 1.0
  num_patterns = num_patterns or len(patterns)
  if len(patterns) > num_patterns:
    raise ValueError(f"mask_patterns: the masks need {len(patterns)} patterns, more than {num_patterns}")
  for _ in range(num_patterns - len(patterns)):
    patterns.append(np.zeros(kernel_size**2, bool))
    selectors.append(np.zeros((height, width), np.float32))
  return np.stack(patterns).astype(np.float32), np.stack(selectors)


class Masks(nnx.Variable):
  """The K orderings and their local masks: saved with the model, never trained."""


class MaskIndex(nnx.Variable):
  """Which of the K orderings the network uses now: an int32 scalar."""


class _MaskSet(nnx.Module):
  """One kernel size's spatial masks (the window's other pixels; the centre tap is the
  convolution's channel mask) under each of the K pixel orderings `draws [K, H·W]`: per location
  (`local_masks`, for the one-pixel steps) and as `mask_patterns` (for the full pass)."""

  def __init__(self, draws: np.ndarray, height: int, width: int, kernel_size: int):
    local = [local_masks(o, height, width, kernel_size, strict=True) for o in draws]
    num_patterns = max(len(mask_patterns(m, height, width, kernel_size)[0]) for m in local)
    patterns, selectors = zip(*[mask_patterns(m, height, width, kernel_size, num_patterns)
                                for m in local])
    self.local = Masks(jnp.asarray(np.stack(local)))  # [K, H, W, k²]
    self.patterns = Masks(jnp.asarray(np.stack(patterns)))  # [K, P, k²]
    self.selectors = Masks(jnp.asarray(np.stack(selectors)))  # [K, P, H, W]

  def take(self, index) -> dict[str, jax.Array]:
    """The masks of ordering `index` (may be traced): local `[H, W, k²]`, patterns `[P, k²]`,
    selectors `[P, H, W]`."""
    return {name: jnp.take(getattr(self, name)[...], index, axis=0)
            for name in ("local", "patterns", "selectors")}


def channel_mask(in_groups: np.ndarray, out_groups: np.ndarray, *, strict: bool) -> np.ndarray:
  """`[F_in, F_out]` 0/1: at the output's own pixel, output feature o sees input feature i iff its
  channel group is earlier (`strict`: the first layer, which must not see the value it predicts)
  or the same or earlier (every later layer). Groups from `channel_groups`."""
  seen = in_groups[:, None] < out_groups[None] if strict else in_groups[:, None] <= out_groups[None]
  return seen.astype(np.float32)


def channel_groups(num_features: int, num_channels: int) -> np.ndarray:
  """`[F]` channel group of each feature: F features in C contiguous groups, f in `f · C // F`."""
  return np.arange(num_features) * num_channels // num_features


class LocallyMaskedConv(nnx.Module):
  """A k × k convolution where each output location masks its input window with its own mask
  (the pixels of the window) and, at its own pixel, the channel mask (`channel_mask`)."""

  def __init__(self, in_groups: np.ndarray, out_groups: np.ndarray, kernel_size: int, *,
               strict: bool, rngs: nnx.Rngs):
    if kernel_size < 1 or kernel_size % 2 == 0:
      raise ValueError(f"LocallyMaskedConv: kernel_size must be odd and >= 1, got {kernel_size}")
    self.kernel_size = int(kernel_size)
    in_features, out_features = len(in_groups), len(out_groups)
    fan_in = in_features * kernel_size**2
    self.kernel = nnx.Param(jax.random.normal(
        rngs.params(), (kernel_size, kernel_size, in_features, out_features)) / math.sqrt(fan_in / 2))
    self.bias = nnx.Param(jnp.zeros((out_features,)))
    self.centre_mask = Masks(jnp.asarray(channel_mask(in_groups, out_groups, strict=strict)))

  def _masked_kernel(self, spatial):
    """The kernel `[k, k, F_in, F_out]` under the window mask `spatial [k²]` (0 at the centre)
    and the channel mask at the centre: masked weights are exactly 0, and so is the derivative
    of the output with respect to a masked input."""
    k = self.kernel_size
    centre = np.zeros((k, k, 1, 1), np.float32)
    centre[k // 2, k // 2] = 1.0
    mask = spatial.reshape(k, k, 1, 1) + centre * self.centre_mask[...]  # [k, k, F_in, F_out]
    return self.kernel[...] * mask

  def __call__(self, x, patterns, selectors):
    """`x [B, H, W, F_in]` -> `[B, H, W, F_out]` (zero padding) under the masks that
    `mask_patterns` gave as `patterns [P, k²]` and `selectors [P, H, W]`.

    One plain convolution per pattern with the masked kernel; each location keeps its own
    pattern's output (a 0/1 selector, so the others contribute exactly 0, derivatives included).
    """
    output = self.bias[...]
    for pattern, selector in zip(patterns, selectors):
      convolved = jax.lax.conv_general_dilated(
          x, self._masked_kernel(pattern), (1, 1), "SAME",
          dimension_numbers=("NHWC", "HWIO", "NHWC"))  # [B, H, W, F_out]
      output = output + convolved * selector[:, :, None]
    return output

  def at(self, window, mask):
    """The output at one pixel from its window `[B, k, k, F_in]` and mask `[k²]`: `[B, F_out]`."""
    return jnp.einsum("bijf,ijfo->bo", window, self._masked_kernel(mask)) + self.bias[...]


class _GroupedDense(nnx.Module):
  """A 1 × 1 layer in which output group g reads the input groups <= g (channel autoregression
  inside a pixel; a plain dense layer for one channel)."""

  def __init__(self, in_groups: np.ndarray, out_groups: np.ndarray, *, zero_init: bool = False,
               rngs: nnx.Rngs):
    shape = (len(in_groups), len(out_groups))
    self.kernel = nnx.Param(jnp.zeros(shape) if zero_init else
                            jax.random.normal(rngs.params(), shape) / math.sqrt(shape[0] / 2))
    self.bias = nnx.Param(jnp.zeros((shape[1],)))
    self.mask = Masks(jnp.asarray(channel_mask(in_groups, out_groups, strict=False)))

  def __call__(self, x):
    return x @ (self.kernel[...] * self.mask[...]) + self.bias[...]


class LMConv(base.AutoregressiveModel):
  has_cache = True

  def __init__(self, event_shape, *, num_features: int = 64, num_layers: int = 4,
               kernel_size: int = 3, first_kernel_size: int = 5, num_output_features: int | None = None,
               num_orderings: int = 8, activation: str = "elu",
               head: heads_lib.Head = heads_lib.Bernoulli(), context_size: int = 0, rngs: nnx.Rngs):
    event_shape = tuple(int(n) for n in event_shape)
    if len(event_shape) != 3:
      raise ValueError(f"LMConv models images: event_shape must be [height, width, channels]; got "
                       f"{event_shape} (load images with data.layout='image')")
    height, width, channels = event_shape
    num_output_features = num_output_features or num_features
    if min(num_features, num_output_features) < channels:
      raise ValueError(f"LMConv: num_features must be >= C = {channels} (and num_output_features too), "
                       f"at least {channels} features: one group per channel; got num_features="
                       f"{num_features}, num_output_features={num_output_features}")
    if not 1 <= num_orderings <= len(PIXEL_ORDERINGS):
      raise ValueError(f"LMConv: num_orderings must lie in [1, {len(PIXEL_ORDERINGS)}], got {num_orderings}")
    if num_layers < 0:
      raise ValueError(f"LMConv: num_layers must be >= 0, got {num_layers}")
    if activation not in ACTIVATIONS:
      raise ValueError(f"LMConv: unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    pixel_draws = np.stack([pixel_ordering(name, height, width) for name in PIXEL_ORDERINGS[:num_orderings]])
    # Dimension (pixel, channel) is p·C + c; a pixel's channels are consecutive positions.
    draws = (pixel_draws[:, :, None] * channels + np.arange(channels)).reshape(num_orderings, -1)  # [K, D]
    super().__init__(event_shape, head, tuple(draws[0].tolist()))
    self.num_masks = int(num_orderings)
    self.activation = activation
    self.num_layers = int(num_layers)
    self.draw_orderings = Masks(jnp.asarray(draws, jnp.int32))  # [K, D]
    self.first_masks = _MaskSet(pixel_draws, height, width, first_kernel_size)
    self.masks = _MaskSet(pixel_draws, height, width, kernel_size)
    self.mask_index = MaskIndex(jnp.zeros((), jnp.int32))
    self.radius = max(first_kernel_size, kernel_size) // 2

    # Inputs: the C values, then the ones channel, whose group C puts it after every channel: seen
    # at every other pixel of the window, never at the centre (a constant there is a bias).
    input_groups = np.append(np.arange(channels), channels)
    hidden_groups = channel_groups(num_features, channels)
    output_groups = channel_groups(num_output_features, channels)
    self.first_conv = LocallyMaskedConv(input_groups, hidden_groups, first_kernel_size, strict=True,
                                        rngs=rngs)
    self.convs = nnx.List([LocallyMaskedConv(hidden_groups, hidden_groups, kernel_size, strict=False,
                                             rngs=rngs) for _ in range(num_layers)])
    self.hidden_out = _GroupedDense(hidden_groups, output_groups, rngs=rngs)
    self.params_out = _GroupedDense(output_groups, np.repeat(np.arange(channels), head.num_params),
                                    zero_init=True, rngs=rngs)
    self.params_out.bias[...] = jnp.tile(head.init_bias(), channels)  # [C·P]
    self.context_size = int(context_size)
    self.context_embedding = (nnx.Linear(self.context_size, num_features, use_bias=False, rngs=rngs)
                              if self.context_size else None)

  # ---------------------------------------------------------- orderings --

  def set_mask(self, index) -> None:
    """Makes ordering `index` (an int, or an int32 scalar traced inside jit) the current one.

    Replaces `mask_index` and `ordering` rather than writing them in place, so
    this works on a model merged inside jit (as MADE's `set_mask`).
    """
    if not isinstance(index, jax.core.Tracer) and not 0 <= int(index) < self.num_masks:
      raise ValueError(f"LMConv.set_mask: index must lie in [0, {self.num_masks}), got {index}")
    index = jnp.asarray(index, jnp.int32)
    self.mask_index = MaskIndex(index)
    self.ordering = base.Ordering(jnp.take(self.draw_orderings[...], index, axis=0))

  def _current_masks(self):
    """The current ordering's `_MaskSet.take`: for the first layer, and for the later ones."""
    index = self.mask_index[...]
    return self.first_masks.take(index), self.masks.take(index)

  # ------------------------------------------------------ teacher-forced --

  def _activate(self, h):
    return ACTIVATIONS[self.activation](h)

  def _inputs(self, values):
    """Values `[..., C]` -> the first layer's input features `[..., C + 1]`: the network inputs
    and 1."""
    inputs = self.head.as_input(values)
    return jnp.concatenate([inputs, jnp.ones_like(inputs[..., :1])], -1)

  def _context_term(self, context):
    """z U `[B, F]`, or 0 for an unconditional model."""
    return 0.0 if context is None else self.context_embedding(context)

  def _output(self, h):
    """The last residual stream `[..., F]` -> params `[..., C, P]`."""
    params = self.params_out(self._activate(self.hidden_out(self._activate(h))))  # [..., C·P]
    return params.reshape(*h.shape[:-1], self.event_shape[-1], self.head.num_params)

  def _last_hidden(self, x, context):
    """h_L `[B, H, W, F]` for images `x [B, H, W, C]`."""
    first_masks, masks = self._current_masks()
    h = self.first_conv(self._inputs(x), first_masks["patterns"], first_masks["selectors"])
    if context is not None:
      h = h + self._context_term(context)[:, None, None]  # [B, H, W, F]
    for conv in self.convs:
      h = h + conv(self._activate(h), masks["patterns"], masks["selectors"])  # [B, H, W, F]
    return h

  def conditionals(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    return self._output(self._last_hidden(x, context))  # [B, H, W, C, P]

  def features(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    return self._activate(self._last_hidden(x, context)).mean(axis=(1, 2))  # [B, F]

  # ------------------------------------------------------------ sampling --

  def init_cache(self, batch_size, *, context=None):
    context = self._check_context(context, batch_size)
    height, width, channels = self.event_shape
    r = self.radius
    # Nothing observed yet: values 0 (masked until observed), the ones channel 1.
    inputs = jnp.zeros((batch_size, height, width, channels + 1)).at[..., -1].set(1.0)
    num_features = self.first_conv.kernel.shape[-1]
    maps = [jnp.zeros((batch_size, height + 2 * r, width + 2 * r, num_features))
            for _ in self.convs]  # g(h_{l−1}), the input of conv l
    cache = {"inputs": jnp.pad(inputs, ((0, 0), (r, r), (r, r), (0, 0))), "maps": maps}
    if context is not None:
      cache["context"] = context
    return cache

  def _window(self, padded, row, col, kernel_size):
    """The k × k window centred on pixel (row, col) of a map padded by `self.radius`: `[B, k, k, F]`."""
    start = self.radius - kernel_size // 2
    return jax.lax.dynamic_slice(
        padded, (0, row + start, col + start, 0),
        (padded.shape[0], kernel_size, kernel_size, padded.shape[3]))

  def _write(self, padded, row, col, value):
    """The padded map with pixel (row, col) set to `value [B, F]`."""
    r = self.radius
    return jax.lax.dynamic_update_slice(padded, value[:, None, None], (0, row + r, col + r, 0))

  def _where(self, t):
    """(row, column, channel) of the dimension generated at position t."""
    _, width, channels = self.event_shape
    pixel, channel = jnp.divmod(self.ordering[t], channels)
    return pixel // width, pixel % width, channel

  def step(self, cache, t):
    # The layers at the pixel are recomputed for each of its channels: features of the groups
    # up to this channel are then final; those of later groups, computed from values not yet
    # observed, are read only by later channels' params and overwritten at their steps.
    row, col, channel = self._where(t)
    first_masks, masks = self._current_masks()
    window = self._window(cache["inputs"], row, col, self.first_conv.kernel_size)
    h = self.first_conv.at(window, first_masks["local"][row, col])  # [B, F]
    if "context" in cache:
      h = h + self._context_term(cache["context"])
    maps = list(cache["maps"])
    for layer, conv in enumerate(self.convs):
      maps[layer] = self._write(maps[layer], row, col, self._activate(h))
      h = h + conv.at(self._window(maps[layer], row, col, conv.kernel_size), masks["local"][row, col])
    params = jnp.take(self._output(h), channel, axis=1)  # [B, P]
    return params, {**cache, "maps": maps}

  def observe(self, cache, t, value):
    row, col, channel = self._where(t)
    r = self.radius
    inputs = cache["inputs"].at[:, row + r, col + r, channel].set(self.head.as_input(value))
    return {**cache, "inputs": inputs}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LMConvConfig:
  """Builds an LMConv; the fields are the constructor's options."""

  num_features: int = 64  # F, the width of every masked convolution
  num_layers: int = 4  # L residual k × k layers after the first
  kernel_size: int = 3  # k of the residual layers (odd)
  first_kernel_size: int = 5  # k_0 of the first, strictly masked layer (odd)
  num_output_features: int | None = None  # width of the 1 × 1 output layer (default F)
  num_orderings: int = 8  # K orderings of PIXEL_ORDERINGS trained (and ensembled) by one network
  activation: str = "elu"  # "elu", "relu" or "tanh"
  head: heads_lib.Head = heads_lib.Bernoulli()  # output distribution of one pixel
  context_size: int = 0  # C > 0: condition on a context [B, C] (e.g. a one-hot label); 0: unconditional

  def build(self, event_shape, *, rngs: nnx.Rngs) -> LMConv:
    return LMConv(event_shape, rngs=rngs, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
