"""PixelCNN and Gated PixelCNN: convolutional autoregressive models of images `[H, W, C]`.

Both generate the D = H·W·C sub-pixels in raster order over (row, column,
channel) — `ordering="raster"`, the only one their masks implement — and give
each sub-pixel `head.num_params` parameters from one teacher-forced pass. The
causal convolutions are in `arjax.models.conv` (masked, cropped kernels; channel
groups R < G < B inside a pixel for C > 1).

PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural
Networks"), with the residual blocks of pytorch-generative's MNIST model:

    h_0 = A_7×7(x) [+ z U]                                      h ∈ R^{H×W×F}
    h_l = h_{l−1} + B_1×1(g(B_k×k(g(B_1×1(g(h_{l−1}))))))       l = 1..L, inner width F/2
    params = B_1×1(g(B_1×1(g(h_L))))                            head_features wide, then C·P

(A/B: mask A or B; g: ReLU by default.) Its receptive field has the known blind
spot: the pixels up and to the right of the output that a stack of masked
k × k kernels never reaches, however deep (tests/test_images.py shows it).

Gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu
2016, "Conditional Image Generation with PixelCNN Decoders"): a vertical stack
that sees the rows above the output and a horizontal stack that sees its row to
the left, with gated units and no blind spot:

    v_0 = V_first(x),  h_0 = H_A(x)
    v̂ = V_k(v_{l−1}) + z U_v,   v_l = tanh(v̂_a) · σ(v̂_b)
    ĥ = H_B(h_{l−1}) + W_link v̂ + z U_h,   h_l = h_{l−1} + B_1×1(tanh(ĥ_a) · σ(ĥ_b))
    params = B_1×1(g(B_1×1(g(h_L))))

The vertical features at (r, c) depend on image rows < r only (conv.VerticalStackConv),
so v̂ feeds the horizontal stack at the same pixel without the paper's down-shift.

Class-conditional (`context_size` K > 0): z [B, K] (e.g. a one-hot label) adds a learned
bias to the first feature map (PixelCNN) or to every gate of both stacks (Gated
PixelCNN, as in the paper's h = tanh(W∗x + V z) ⊙ σ(…)). z is not one of the D
dimensions, so every feature may see it.

Cached sampling (`has_cache = True`; Ramachandran et al. 2017, "Fast Generation
for Convolutional Autoregressive Models", in a static-shape form). The cache holds
the image and, for every k × k (or 1 × k, k × k vertical) convolution, the
zero-padded map `[B, H + up, W + left + right, F]` of its input. Step t (pixel p,
channel c) recomputes every layer at pixel p only, from the kernel-sized window
of the map below (`conv.window`): positions before p are final, the ones after p
are still zeros and masked out by the kernel anyway, and p's own entry was
written a moment before by the layer below. The Gated PixelCNN's vertical stack
does not depend on row r, so it is advanced once per row, for the whole row, at
the row's first step (`lax.cond`), and the per-pixel step reads its link term
from that row. A step costs O(L·k²·F²) per example, independent of the image size
(the full pass costs H·W times that). For C > 1 a pixel is recomputed at each of
its C channel steps; after its last channel every entry at p depends only on
what is final, as the channel groups require.

Features: the last feature map before the output layers, g(h_L), mean-pooled
over the pixels: `[B, F]`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from arjax import heads as heads_lib
from arjax import validation
from arjax.models import base
from arjax.models import conv

_SHARED_RULES = {
    "head": base.COMMON_RULES["head"], "context_size": base.COMMON_RULES["context_size"],
    "num_features": validation.integer(minimum=1), "head_features": validation.integer(minimum=1),
    "activation": validation.one_of(*conv.ACTIVATIONS), "ordering": validation.one_of("raster"),
}
PIXELCNN_RULES = {**_SHARED_RULES, "num_blocks": validation.integer(minimum=0)}
GATED_PIXELCNN_RULES = {**_SHARED_RULES, "num_layers": validation.integer(minimum=0)}


def _check_image(name: str, event_shape, ordering, num_features: int, *, multiple: bool):
  """Raises ValueError unless the event is an image `[H, W, C]` in raster order and each of the
  F features' channel groups is non-empty (and, for `multiple`, of equal size: gates pair them)."""
  if len(tuple(event_shape)) != 3:
    raise ValueError(
        f"{name} models images: event_shape must be [height, width, channels]; got {tuple(event_shape)}. "
        "Load images with DataConfig(layout='image') (`data.layout=image`).")
  if ordering != "raster":
    raise ValueError(f"{name} generates in raster order (row, column, channel), the order its masks "
                     f"implement; got ordering={ordering!r}. Use ordering='raster'.")
  channels = int(event_shape[2])
  if num_features < channels or (multiple and num_features % channels):
    raise ValueError(f"{name}: num_features must be {'a multiple of' if multiple else 'at least'} the "
                     f"number of channels C={channels} (one group of features per channel); got {num_features}")


def _where(t, event_shape):
  """Position t -> (row, column, channel) of raster order over `[H, W, C]`."""
  _, width, channels = event_shape
  pixel, channel = t // channels, t % channels
  return pixel // width, pixel % width, channel


class _ImageHead(nnx.Module):
  """The 1 × 1 output layers: g(h) -> head_features -> C·P params per pixel (mask B)."""

  def __init__(self, num_features, head_features, head: heads_lib.Head, channels, activation, *, rngs):
    self.activation = activation
    self.hidden = conv.MaskedConv2D(num_features, head_features, kernel_size=1, mask_type="B",
                                    num_channels=channels, rngs=rngs)
    self.out = conv.MaskedConv2D(head_features, channels * head.num_params, kernel_size=1,
                                 mask_type="B", num_channels=channels, rngs=rngs)
    self.out.bias = nnx.Param(jnp.tile(head.init_bias(), channels))  # [C·P]

  def __call__(self, h):
    """`[..., F]` -> `[..., C·P]` (any leading shape: a map or one pixel)."""
    act = conv.activation_fn(self.activation)
    return self.out.valid(act(self.hidden.valid(act(h))))


class _ImageModel(base.AutoregressiveModel):
  """What PixelCNN and Gated PixelCNN share: the output layers, context and reshapes."""

  has_cache = True

  def _init_common(self, event_shape, head, ordering, num_features, head_features, activation,
                   context_size, *, multiple, rngs):
    _check_image(type(self).__name__, event_shape, ordering, num_features, multiple=multiple)
    conv.activation_fn(activation)
    base.AutoregressiveModel.__init__(self, event_shape, head, ordering)
    self.activation = activation
    self.context_size = int(context_size)
    self.output_layers = _ImageHead(num_features, head_features, head, self.num_channels, activation,
                                    rngs=rngs)

  @property
  def num_channels(self) -> int:
    return self.event_shape[2]

  def _hidden(self, x, context):
    """The last feature map `[B, H, W, F]` of the full pass (each subclass's network)."""
    raise NotImplementedError

  def conditionals(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    return self._params(self._hidden(x, context))  # [B, H, W, C, P]

  def features(self, x, *, context=None):
    context = self._check_context(context, x.shape[0])
    return self._pooled(self._hidden(x, context))

  def _inputs(self, x):
    return self.head.as_input(x).astype(jnp.float32)  # [B, H, W, C]

  def _params(self, h):
    """Last feature map `[B, H, W, F]` -> params `[B, H, W, C, P]`."""
    out = self.output_layers(h)  # [B, H, W, C·P]
    return out.reshape(*out.shape[:3], self.num_channels, self.head.num_params)

  def _params_at(self, h, channel):
    """One pixel's features `[B, F]` -> the params `[B, P]` of its channel `channel`."""
    out = self.output_layers(h).reshape(h.shape[0], self.num_channels, self.head.num_params)
    return jax.lax.dynamic_index_in_dim(out, channel, axis=1, keepdims=False)  # [B, P]

  def _pooled(self, h):
    return jnp.mean(conv.activation_fn(self.activation)(h), axis=(1, 2))  # [B, F]

  def observe(self, cache, t, value):
    row, col, channel = _where(t, self.event_shape)
    x_map = cache["x"]
    pad = self._x_padding
    x_map = jax.lax.dynamic_update_slice(
        x_map, self.head.as_input(value).astype(x_map.dtype)[:, None, None, None],
        (0, row + pad, col + pad, channel))
    return {**cache, "x": x_map}

  def _empty_x_map(self, batch_size):
    height, width, channels = self.event_shape
    pad = self._x_padding
    return jnp.zeros((batch_size, height + pad, width + 2 * pad, channels))


# ------------------------------------------------------------ PixelCNN --


class ResidualBlock(nnx.Module):
  """h + B_1×1(g(B_k×k(g(B_1×1(g(h)))))): `[..., F]` -> `[..., F]`, inner width F/2."""

  def __init__(self, num_features, kernel_size, channels, activation, *, rngs):
    inner = max(num_features // 2, channels)
    self.activation = activation
    self.reduce = conv.MaskedConv2D(num_features, inner, kernel_size=1, mask_type="B",
                                    num_channels=channels, rngs=rngs)
    self.conv = conv.MaskedConv2D(inner, inner, kernel_size=kernel_size, mask_type="B",
                                  num_channels=channels, rngs=rngs)
    self.expand = conv.MaskedConv2D(inner, num_features, kernel_size=1, mask_type="B",
                                    num_channels=channels, rngs=rngs)

  def _act(self, h):
    return conv.activation_fn(self.activation)(h)

  def __call__(self, h):
    """Full map `[B, H, W, F]`."""
    inner = self._act(self.reduce.valid(self._act(h)))  # [B, H, W, F/2]
    return h + self.expand.valid(self._act(self.conv(inner)))

  def step(self, h, inner_map, row, col):
    """One pixel `h [B, F]` with the padded map of the k × k conv's input: (h', map')."""
    inner = self._act(self.reduce.valid(self._act(h)))  # [B, F/2]
    inner_map = conv.write_pixel(inner_map, row, col, inner, up=self.conv.up, left=self.conv.left)
    window = conv.window(inner_map, row, col, self.conv, up=self.conv.up, left=self.conv.left)
    middle = self.conv.valid(window)[:, 0, 0]  # [B, F/2]
    return h + self.expand.valid(self._act(middle)), inner_map


class PixelCNN(_ImageModel):
  """PixelCNN with residual mask-B blocks; see the module docstring."""

  def __init__(self, event_shape, *, num_blocks: int = 15, num_features: int = 32,
               head_features: int = 32, input_kernel_size: int = 7, kernel_size: int = 3,
               activation: str = "relu", head: heads_lib.Head = heads_lib.Bernoulli(),
               ordering="raster", context_size: int = 0, rngs: nnx.Rngs):
    validation.check_options("PixelCNN", PIXELCNN_RULES, num_blocks=num_blocks, num_features=num_features,
                             head_features=head_features, activation=activation, head=head,
                             context_size=context_size)
    self._init_common(event_shape, head, ordering, num_features, head_features, activation,
                      context_size, multiple=False, rngs=rngs)
    channels = self.num_channels
    self.input_conv = conv.MaskedConv2D(channels, num_features, kernel_size=input_kernel_size,
                                        mask_type="A", num_channels=channels, rngs=rngs)
    self.blocks = nnx.List([ResidualBlock(num_features, kernel_size, channels, activation, rngs=rngs)
                            for _ in range(num_blocks)])
    self.context_weights = (nnx.Param(jnp.zeros((self.context_size, num_features)))
                            if self.context_size else None)  # [K, F]
    self._x_padding = input_kernel_size // 2

  def _hidden(self, x, context):
    h = self.input_conv(self._inputs(x))  # [B, H, W, F]
    if context is not None:
      h = h + (context @ self.context_weights[...])[:, None, None, :]
    for block in self.blocks:
      h = block(h)
    return h

  def init_cache(self, batch_size, *, context=None):
    context = self._check_context(context, batch_size)
    height, width, _ = self.event_shape
    inner_maps = tuple(
        jnp.zeros((batch_size, height + b.conv.up, width + b.conv.left + b.conv.right, b.conv.in_features))
        for b in self.blocks)
    cache = {"x": self._empty_x_map(batch_size), "inner": inner_maps}
    return cache if context is None else {**cache, "context": context}

  def step(self, cache, t):
    row, col, channel = _where(t, self.event_shape)
    pad = self._x_padding
    window = conv.window(cache["x"], row, col, self.input_conv, up=pad, left=pad)
    h = self.input_conv.valid(window)[:, 0, 0]  # [B, F]
    if "context" in cache:
      h = h + cache["context"] @ self.context_weights[...]
    inner_maps = []
    for block, inner_map in zip(self.blocks, cache["inner"]):
      h, inner_map = block.step(h, inner_map, row, col)
      inner_maps.append(inner_map)
    return self._params_at(h, channel), {**cache, "inner": tuple(inner_maps)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PixelCNNConfig:
  """Builds a PixelCNN; the fields are the constructor's options.

  The defaults are pytorch-generative's MNIST PixelCNN (n_residual=15,
  residual_channels=16 — a residual stream of 2·16 = 32 features, 16 inside a
  block — head_channels=32).
  """

  num_blocks: int = 15  # L residual blocks of mask-B convolutions
  num_features: int = 32  # F, width of the residual stream (F/2 inside a block)
  head_features: int = 32  # width of the hidden 1 × 1 output layer
  input_kernel_size: int = 7  # k of the first, mask-A convolution
  kernel_size: int = 3  # k of the blocks' mask-B convolutions
  activation: str = "relu"  # "relu", "elu" or "tanh"
  head: heads_lib.Head = heads_lib.Bernoulli()  # output distribution of one sub-pixel
  ordering: str = "raster"  # the only order the masks implement
  context_size: int = 0  # K > 0: condition on a context [B, K] (e.g. a one-hot label)

  def __post_init__(self):
    validation.check_fields(self, PIXELCNN_RULES)

  def build(self, event_shape, *, rngs: nnx.Rngs) -> PixelCNN:
    return PixelCNN(event_shape, rngs=rngs, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


# ------------------------------------------------------ Gated PixelCNN --


class GatedBlock(nnx.Module):
  """One gated layer of both stacks: (v [..., F], h [..., F]) -> (v', h'); see the module docstring."""

  def __init__(self, num_features, kernel_size, channels, context_size, *, rngs):
    double = 2 * num_features
    self.vertical = conv.VerticalStackConv(num_features, double, kernel_size=kernel_size, first=False,
                                           rngs=rngs)
    self.horizontal = conv.HorizontalStackConv(num_features, double, kernel_size=kernel_size,
                                               mask_type="B", num_channels=channels, rngs=rngs)
    # The vertical features never see the output's row, so the link needs no channel groups.
    self.link = conv.MaskedConv2D(double, double, kernel_size=1, mask_type="B", rngs=rngs)
    self.out = conv.MaskedConv2D(num_features, num_features, kernel_size=1, mask_type="B",
                                 num_channels=channels, rngs=rngs)
    if context_size:
      self.context_vertical = nnx.Param(jnp.zeros((context_size, double)))  # [K, 2F]
      self.context_horizontal = nnx.Param(jnp.zeros((context_size, double)))  # [K, 2F]
    else:
      self.context_vertical = self.context_horizontal = None

  def _context_bias(self, weights, context, ndim):
    if context is None:
      return 0.0
    bias = context @ weights[...]  # [B, 2F]
    return bias.reshape(bias.shape[0], *([1] * (ndim - 2)), bias.shape[-1])

  def vertical_pre(self, v_strip, context):
    """v̂ from the vertical input (`valid` over a padded map or strip): `[B, h, w, 2F]`."""
    return self.vertical.valid(v_strip) + self._context_bias(self.context_vertical, context, 4)

  def horizontal_out(self, h, h_pre_conv, link, context):
    """h' = h + B_1×1(gate(ĥ)) given H_B(h) and W_link v̂ at the same pixels."""
    pre = h_pre_conv + link + self._context_bias(self.context_horizontal, context, h.ndim)
    return h + self.out.valid(conv.gate(pre))

  def __call__(self, v, h, context):
    """Full maps `[B, H, W, F]`."""
    up, side = self.vertical.up, self.vertical.left
    v_pre = self.vertical_pre(jnp.pad(v, ((0, 0), (up, 0), (side, side), (0, 0))), context)
    return conv.gate(v_pre), self.horizontal_out(h, self.horizontal(h), self.link.valid(v_pre), context)


class GatedPixelCNN(_ImageModel):
  """Gated PixelCNN (vertical + horizontal stacks, no blind spot); see the module docstring."""

  def __init__(self, event_shape, *, num_layers: int = 8, num_features: int = 32,
               head_features: int = 64, input_kernel_size: int = 7, kernel_size: int = 3,
               activation: str = "relu", head: heads_lib.Head = heads_lib.Bernoulli(),
               ordering="raster", context_size: int = 0, rngs: nnx.Rngs):
    validation.check_options("GatedPixelCNN", GATED_PIXELCNN_RULES, num_layers=num_layers,
                             num_features=num_features, head_features=head_features,
                             activation=activation, head=head, context_size=context_size)
    self._init_common(event_shape, head, ordering, num_features, head_features, activation,
                      context_size, multiple=True, rngs=rngs)
    channels = self.num_channels
    self.vertical_input = conv.VerticalStackConv(channels, num_features, kernel_size=input_kernel_size,
                                                 first=True, rngs=rngs)
    self.horizontal_input = conv.HorizontalStackConv(channels, num_features,
                                                     kernel_size=input_kernel_size, mask_type="A",
                                                     num_channels=channels, rngs=rngs)
    self.layers = nnx.List([GatedBlock(num_features, kernel_size, channels, self.context_size, rngs=rngs)
                            for _ in range(num_layers)])
    self._x_padding = input_kernel_size // 2

  def _hidden(self, x, context):
    inputs = self._inputs(x)  # [B, H, W, C]
    v, h = self.vertical_input(inputs), self.horizontal_input(inputs)  # [B, H, W, F] each
    for layer in self.layers:
      v, h = layer(v, h, context)
    return h

  def init_cache(self, batch_size, *, context=None):
    context = self._check_context(context, batch_size)
    height, width, _ = self.event_shape
    features = self.vertical_input.out_features

    def vertical_map(layer):
      return jnp.zeros((batch_size, height + layer.vertical.up,
                        width + layer.vertical.left + layer.vertical.right, features))

    cache = {
        "x": self._empty_x_map(batch_size),
        "vertical": tuple(vertical_map(layer) for layer in self.layers),  # inputs of the vertical convs
        "horizontal": tuple(jnp.zeros((batch_size, height, width + layer.horizontal.left, features))
                            for layer in self.layers),  # inputs of the horizontal convs
        "link": tuple(jnp.zeros((batch_size, width, 2 * features)) for _ in self.layers),  # W_link v̂, row r
    }
    return cache if context is None else {**cache, "context": context}

  def _advance_rows(self, cache, row):
    """The vertical stack at every pixel of row `row` (from the rows above): new maps and links."""
    context = cache.get("context")
    pad, first = self._x_padding, self.vertical_input
    x_map = cache["x"]
    strip = jax.lax.dynamic_slice(x_map, (0, row + pad - first.up, 0, 0),
                                  (x_map.shape[0], first.up + 1, x_map.shape[2], x_map.shape[3]))
    strip = strip[:, :, pad - first.left:x_map.shape[2] - pad + first.right]
    v = first.valid(strip)  # [B, 1, W, F]
    maps, links = [], []
    for layer, v_map in zip(self.layers, cache["vertical"]):
      up, side = layer.vertical.up, layer.vertical.left
      v_map = jax.lax.dynamic_update_slice(v_map, v, (0, row + up, side, 0))
      strip = jax.lax.dynamic_slice(v_map, (0, row, 0, 0), (v_map.shape[0], up + 1, *v_map.shape[2:]))
      v_pre = layer.vertical_pre(strip, context)  # [B, 1, W, 2F]
      links.append(layer.link.valid(v_pre)[:, 0])  # [B, W, 2F]
      maps.append(v_map)
      v = conv.gate(v_pre)
    return {**cache, "vertical": tuple(maps), "link": tuple(links)}

  def step(self, cache, t):
    row, col, channel = _where(t, self.event_shape)
    cache = jax.lax.cond((col == 0) & (channel == 0), self._advance_rows, lambda c, r: c, cache, row)
    context = cache.get("context")
    pad = self._x_padding
    window = conv.window(cache["x"], row, col, self.horizontal_input, up=pad, left=pad)
    h = self.horizontal_input.valid(window)[:, 0, 0]  # [B, F]
    maps = []
    for layer, h_map, link in zip(self.layers, cache["horizontal"], cache["link"]):
      left = layer.horizontal.left
      h_map = conv.write_pixel(h_map, row, col, h, up=0, left=left)
      pre = layer.horizontal.valid(conv.window(h_map, row, col, layer.horizontal, up=0, left=left))[:, 0, 0]
      link_here = jax.lax.dynamic_index_in_dim(link, col, axis=1, keepdims=False)  # [B, 2F]
      h = layer.horizontal_out(h, pre, link_here, context)
      maps.append(h_map)
    return self._params_at(h, channel), {**cache, "horizontal": tuple(maps)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatedPixelCNNConfig:
  """Builds a Gated PixelCNN; the fields are the constructor's options."""

  num_layers: int = 8  # L gated layers of both stacks
  num_features: int = 32  # F, features of each stack (a multiple of the channels C)
  head_features: int = 64  # width of the hidden 1 × 1 output layer
  input_kernel_size: int = 7  # k of the first vertical / horizontal convolutions
  kernel_size: int = 3  # k of the gated layers' convolutions
  activation: str = "relu"  # of the output layers: "relu", "elu" or "tanh"
  head: heads_lib.Head = heads_lib.Bernoulli()  # output distribution of one sub-pixel
  ordering: str = "raster"  # the only order the masks implement
  context_size: int = 0  # K > 0: condition every gate on a context [B, K] (e.g. a one-hot label)

  def __post_init__(self):
    validation.check_fields(self, GATED_PIXELCNN_RULES)

  def build(self, event_shape, *, rngs: nnx.Rngs) -> GatedPixelCNN:
    return GatedPixelCNN(event_shape, rngs=rngs,
                         **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
