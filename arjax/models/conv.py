"""Causal convolutions for image models: each one a small module with a one-line contract.

Events are images `[B, H, W, C]` generated in raster order over (row, column,
channel): pixel (r, c) after every pixel of the rows above and the pixels to its
left, and inside a pixel channel 0 before 1 before 2 (R before G before B).

Masked kernels, cropped to their causal footprint. A kernel covers the rows
above the output and its own row, never the rows below, so it is stored as
`[up + 1, left + 1 + right, in, out]` and the input is zero-padded by `up` rows
on top only: the half of a k × k kernel that a mask would zero out is never
stored or multiplied (a 7 × 7 mask-A kernel is 4 × 7). What remains of the
constraint — the pixels right of the output in its own row, and the channel
order at the output pixel itself — is a 0/1 mask multiplied into the weights
at every call, and the kernel gradient of taps the mask empties entirely is never computed. Masks
rather than shifted convolutions because one weight layout then serves the
full-image pass (`__call__`) and the one-pixel step of cached sampling (`valid` on a window of the cache), and because an exact 0/1 mask
gives exactly zero derivatives through the masked taps: `jax.jacrev` of a
conditional with respect to a later input is 0.0, not ~1e-7.

Channel groups (C > 1): the F features of a layer are split into C contiguous
groups, feature f in group `f * C // F` (`channel_groups`); for the data
(F = C) group c is channel c, and for the output layer (F = C·P) the P params
of channel c are group c. At the output's own pixel a feature of group g sees
the input groups < g (mask A: the first layer, which must not see the value it
predicts) or <= g (mask B: every later layer). Rows above and pixels to the
left are seen by every group.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

#: Nonlinearities by config name. ReLU is the papers' choice; ELU and tanh have no
#: flat regions, so a Jacobian at one point shows every dependence the masks allow
#: (the property tests use them for that reason).
ACTIVATIONS = {"relu": jax.nn.relu, "elu": jax.nn.elu, "tanh": jnp.tanh}


def activation_fn(name: str):
  if name not in ACTIVATIONS:
    raise ValueError(f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


def channel_groups(num_features: int, num_channels: int) -> np.ndarray:
  """`[F]` group of each feature: F features in C contiguous groups, feature f in `f * C // F`."""
  return np.arange(num_features) * num_channels // num_features


def gate(preactivation: jax.Array) -> jax.Array:
  """tanh(a) · σ(b) for features interleaved as a_0, b_0, a_1, b_1, …: `[..., 2F]` -> `[..., F]`.

  Interleaved, not halved, so that a_f and b_f fall in the same channel group
  (`channel_groups` of 2F features gives 2f and 2f + 1 the group of f in F).
  """
  return jnp.tanh(preactivation[..., 0::2]) * jax.nn.sigmoid(preactivation[..., 1::2])


class _CausalConv(nnx.Module):
  """A convolution whose kernel covers `up` rows above the output, its own row, and `left` /
  `right` columns on either side; `_mask` zeroes what the subclass's contract forbids."""

  def __init__(self, in_features: int, out_features: int, *, up: int, left: int, right: int,
               num_channels: int, rngs: nnx.Rngs):
    if in_features < num_channels or out_features < num_channels:
      raise ValueError(
          f"{type(self).__name__}: with {num_channels} channel groups every layer needs at least "
          f"{num_channels} features; got in={in_features}, out={out_features}")
    self.in_features, self.out_features = int(in_features), int(out_features)
    self.up, self.left, self.right = int(up), int(left), int(right)
    self.num_channels = int(num_channels)
    kernel_shape = (self.up + 1, self.left + 1 + self.right, self.in_features, self.out_features)
    fan_in = int(self._mask().sum(axis=(0, 1, 2)).max())
    self.kernel = nnx.Param(
        jax.random.normal(rngs.params(), kernel_shape) / np.sqrt(max(fan_in, 1)))
    self.bias = nnx.Param(jnp.zeros((self.out_features,)))

  @property
  def kernel_size(self) -> tuple[int, int]:
    return self.up + 1, self.left + 1 + self.right

  def _mask(self) -> np.ndarray:
    raise NotImplementedError

  def _center_mask(self, mask_type: str) -> np.ndarray:
    """`[in, out]`: which input features an output feature sees at its own pixel."""
    groups_in = channel_groups(self.in_features, self.num_channels)[:, None]
    groups_out = channel_groups(self.out_features, self.num_channels)[None, :]
    return (groups_in < groups_out) if mask_type == "A" else (groups_in <= groups_out)

  def _masked_kernel(self) -> jax.Array:
    # The mask is rebuilt from static sizes at trace time: a constant, not state.
    return self.kernel[...] * jnp.asarray(self._mask(), self.kernel.dtype)

  def valid(self, x: jax.Array) -> jax.Array:
    """The convolution without padding: `[B, h, w, in]` -> `[B, h − up, w − left − right, out]`.

    On a window of exactly the kernel's size (`[B, up + 1, left + 1 + right, in]`)
    this is the output at one pixel, `[B, 1, 1, out]`: the cached samplers' step.
    """
    kernel = self._masked_kernel()
    if kernel.shape[:2] == (1, 1):
      return x @ kernel[0, 0] + self.bias[...]
    rows, cols = self.kernel_size
    taps = tuple(self._taps())
    if x.shape[1:3] == (rows, cols):  # one output pixel (the cached step): one matrix product
      patches = jnp.concatenate([x[:, dy, dx] for dy, dx in taps], -1)[:, None, None]  # [B, 1, 1, T·in]
      weights = jnp.concatenate([kernel[dy, dx] for dy, dx in taps], 0)  # [T·in, out]
      return patches @ weights + self.bias[...]
    return _valid_conv(x, kernel, taps) + self.bias[...]

  def _taps(self) -> list[tuple[int, int]]:
    """Kernel positions (row, column) where the mask keeps at least one weight."""
    mask = self._mask()
    return [(dy, dx) for dy in range(mask.shape[0]) for dx in range(mask.shape[1]) if mask[dy, dx].any()]

  def __call__(self, x: jax.Array) -> jax.Array:
    """`[B, H, W, in]` -> `[B, H, W, out]`, the input zero-padded where the kernel leaves it."""
    if (self.up, self.left, self.right) == (0, 0, 0):
      return self.valid(x)
    padded = jnp.pad(x, ((0, 0), (self.up, 0), (self.left, self.right), (0, 0)))
    return self.valid(padded)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _valid_conv(x, kernel, taps):
  """`lax.conv_general_dilated` without padding, NHWC × HWIO, whose kernel gradient is taken per
  kernel tap that the mask keeps (`taps`) as one `[in, B·h·w] @ [B·h·w, out]` product each.

  XLA:CPU computes the convolution and its input gradient fast but the kernel gradient of these
  small channel counts slowly (one 3 × 3, 16 → 16 layer at batch 128: 113 ms for XLA's whole
  gradient, 61 ms by im2col): the 16-feature PixelCNN of the README trains at 75 examples/s this
  way, 68 by im2col. The masked kernel's zeros make the input gradient through
  masked taps exactly 0.0; the kernel gradient of an emptied tap is 0 and is never computed.
  """
  return _conv(x, kernel)


def _conv(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _valid_conv_fwd(x, kernel, taps):
  return _conv(x, kernel), (x, kernel)


def _valid_conv_bwd(taps, residuals, g):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda u: _conv(u, kernel), x)
  (dx,) = input_vjp(g)
  height, width = g.shape[1:3]
  flat_g = g.reshape(-1, g.shape[-1])  # [B·h·w, out]
  dkernel = jnp.zeros_like(kernel)
  for dy, dx_ in taps:
    window = x[:, dy:dy + height, dx_:dx_ + width].reshape(-1, x.shape[-1])  # [B·h·w, in]
    dkernel = dkernel.at[dy, dx_].set(window.T @ flat_g)
  return dx, dkernel


_valid_conv.defvjp(_valid_conv_fwd, _valid_conv_bwd)


def _check_mask_options(name: str, mask_type: str, kernel_size: int) -> None:
  """Raises ValueError unless mask_type is 'A' or 'B' and kernel_size is odd and >= 1."""
  if mask_type not in ("A", "B"):
    raise ValueError(f"{name}: mask_type must be 'A' or 'B'; got {mask_type!r}")
  if kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(f"{name}: kernel_size must be odd and >= 1; got {kernel_size}")


class MaskedConv2D(_CausalConv):
  """PixelCNN's k × k masked convolution: output (r, c) sees the rows above (within k // 2), the
  pixels left of c in row r, and at (r, c) the earlier channel groups (mask A) or also its own
  (mask B). `kernel_size=1` with mask B is the channel-grouped 1 × 1 convolution."""

  def __init__(self, in_features: int, out_features: int, *, kernel_size: int, mask_type: str,
               num_channels: int = 1, rngs: nnx.Rngs):
    _check_mask_options("MaskedConv2D", mask_type, kernel_size)
    self.mask_type = mask_type
    half = kernel_size // 2
    super().__init__(in_features, out_features, up=half, left=half, right=half,
                     num_channels=num_channels, rngs=rngs)

  def _mask(self):
    rows, cols = self.kernel_size
    mask = np.ones((rows, cols, self.in_features, self.out_features), bool)
    mask[-1, self.left + 1:] = False  # right of the output in its own row
    mask[-1, self.left] = self._center_mask(self.mask_type)
    return mask


class VerticalStackConv(_CausalConv):
  """Gated PixelCNN's vertical stack: output (r, c) sees rows r − k // 2 … r of its input (`first`:
  rows r − k // 2 … r − 1 of the image), every column within k // 2 of c — so, by induction, it
  depends on image rows above r only, and feeds the horizontal stack at the same pixel."""

  def __init__(self, in_features: int, out_features: int, *, kernel_size: int, first: bool,
               rngs: nnx.Rngs):
    if kernel_size < 3 or kernel_size % 2 == 0:
      raise ValueError(f"VerticalStackConv: kernel_size must be odd and >= 3; got {kernel_size}")
    self.first = bool(first)
    half = kernel_size // 2
    # No channel groups: the stack never sees its output's own row of the image.
    super().__init__(in_features, out_features, up=half, left=half, right=half, num_channels=1,
                     rngs=rngs)

  def _mask(self):
    rows, cols = self.kernel_size
    mask = np.ones((rows, cols, self.in_features, self.out_features), bool)
    if self.first:
      mask[-1] = False  # the image's own row r is the horizontal stack's
    return mask


class HorizontalStackConv(_CausalConv):
  """Gated PixelCNN's horizontal stack: output (r, c) sees row r, columns c − k // 2 … c − 1, and at
  (r, c) the earlier channel groups (mask A, on the image) or also its own (mask B)."""

  def __init__(self, in_features: int, out_features: int, *, kernel_size: int, mask_type: str,
               num_channels: int = 1, rngs: nnx.Rngs):
    _check_mask_options("HorizontalStackConv", mask_type, kernel_size)
    self.mask_type = mask_type
    super().__init__(in_features, out_features, up=0, left=kernel_size // 2, right=0,
                     num_channels=num_channels, rngs=rngs)

  def _mask(self):
    mask = np.ones((1, self.left + 1, self.in_features, self.out_features), bool)
    mask[0, self.left] = self._center_mask(self.mask_type)
    return mask


# ------------------------------------------------- padded maps of the cache --


def pad_map(x: jax.Array, *, up: int, left: int, right: int) -> jax.Array:
  """`[B, H, W, F]` -> `[B, up + H, left + W + right, F]`, zeros around (the cache's layout)."""
  return jnp.pad(x, ((0, 0), (up, 0), (left, right), (0, 0)))


def window(padded: jax.Array, row, col, conv: _CausalConv, *, up: int, left: int) -> jax.Array:
  """The input window `[B, up_k + 1, left_k + 1 + right_k, F]` that `conv` reads for output pixel
  (row, col), from a map padded by (`up`, `left`) (at least the conv's own footprint)."""
  rows, cols = conv.kernel_size
  start = (0, row + up - conv.up, col + left - conv.left, 0)
  return jax.lax.dynamic_slice(padded, start, (padded.shape[0], rows, cols, padded.shape[-1]))


def write_pixel(padded: jax.Array, row, col, value: jax.Array, *, up: int, left: int) -> jax.Array:
  """The map with `value [B, F]` written at pixel (row, col) of a map padded by (`up`, `left`)."""
  return jax.lax.dynamic_update_slice(padded, value[:, None, None, :].astype(padded.dtype),
                                      (0, row + up, col + left, 0))
