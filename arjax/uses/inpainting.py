"""Completions of partly observed images: the observed pixels clamped in the sampler (exact for
order-agnostic models under any mask, and for the others when the observed pixels come first)."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from arjax import images
from arjax import likelihood
from arjax import marginals
from arjax import sampling


#: Which pixels are observed (clamped); the model fills in the rest.
MASKS = ("top_half", "bottom_half", "left_half", "random")


def observed_mask(kind: str, image_shape, num: int, *, seed: int = 0) -> np.ndarray:
  """bool `[num, H·W·C]`, True where a pixel is observed: the named half of every image, or
  (`random`) each pixel independently with probability ½."""
  if kind not in MASKS:
    raise ValueError(f"Unknown mask {kind!r}; choose one of {', '.join(MASKS)}")
  height, width, channels = image_shape
  if kind == "random":
    return np.random.default_rng(seed).random((num, height * width * channels)) < 0.5
  rows = np.arange(height)[:, None, None]
  columns = np.arange(width)[None, :, None]
  observed = {"top_half": rows < height // 2, "bottom_half": rows >= height // 2,
              "left_half": columns < width // 2}[kind]
  observed = np.broadcast_to(observed, image_shape).reshape(-1)  # [D]
  return np.broadcast_to(observed, (num, observed.size)).copy()


is_prefix = marginals.is_prefix  # the observed pixels come first in the ordering


def exact_draw(model, observed: np.ndarray) -> int | None:
  """The first of the model's mask draws (orderings, `set_mask`) in which the observed dimensions
  of every row of `observed [N, D]` come first, or None if no draw has them first.

  For a family trained over a few fixed orderings (LMConv: raster, its reversal, transposes)
  this finds the ordering under which clamping is exact: e.g. `bottom_half` -> reversed raster.
  """
  observed = np.asarray(observed, bool).reshape(len(observed), -1)
  graphdef, state = nnx.split(model)
  for index in range(model.num_masks):
    draw = nnx.merge(graphdef, state)  # a copy: the caller's model keeps its draw
    draw.set_mask(index)
    if is_prefix(observed, np.asarray(draw.ordering[...])):
      return index
  return None


def inpaint(model, key: jax.Array, x: np.ndarray, observed: np.ndarray, *,
            num_completions: int = 4, temperature: float = 1.0,
            context: np.ndarray | None = None) -> np.ndarray:
  """Completions of `x [N, D]` with the pixels where `observed [N, D]` is True kept as given
  (and, for a conditional model, its `context [N, C]`, e.g. the one-hot labels of `x`).

  Order-agnostic models (`model.order_agnostic`) complete every image exactly, under any mask:
  `arjax.sample_given` puts its observed pixels first in the ordering. For the others every
  completion comes from one `arjax.sample` call with `given=x`, `given_mask=observed`, which is
  exact conditioning only when the observed pixels form a prefix of the model's ordering
  (`is_prefix`, e.g. `top_half` with raster order); otherwise dimensions before an observed one
  in the ordering are drawn without seeing it. Models with several trained orderings
  (`num_masks` > 1, e.g. LMConv) sample under the first ordering that puts the observed pixels
  first (`exact_draw`), which makes every side of an image (`top_half`, `bottom_half`,
  `left_half`, a right half) exact for LMConv; without one they keep their current ordering.
  Image models take `x [N, H, W, C]` (and `observed` of that shape or `[N, D]`).
  Returns: `[num_completions, N, *x.shape[1:]]`.
  """
  likelihood.check_input(model, x)
  num = len(x)
  x = np.asarray(x)
  observed = np.asarray(observed, bool).reshape(x.shape)
  repeat = (num_completions,) + (1,) * (x.ndim - 1)
  given = np.tile(x, repeat)  # [C·N, *event_shape]
  given_mask = np.tile(observed, repeat)  # [C·N, *event_shape]
  if context is not None:
    context = np.tile(np.asarray(context), (num_completions, 1))  # [C·N, K]
  if not model.order_agnostic and model.num_masks > 1:
    index = exact_draw(model, observed)
    if index is not None:
      graphdef, state = nnx.split(model)
      model = nnx.merge(graphdef, state)  # a copy: the caller's model keeps its draw
      model.set_mask(index)
  if model.order_agnostic:
    samples = marginals.sample_given(model, key, given, given_mask, temperature=temperature,
                                     context=context)
  else:
    samples = sampling.sample(model, key, num_completions * num, temperature=temperature,
                              given=given, given_mask=given_mask, context=context)
  return np.asarray(samples).reshape(num_completions, num, *x.shape[1:])


def spread_indices(num_total: int, num: int) -> np.ndarray:
  """`num` indices spread evenly over `range(num_total)`: test sets are often sorted by class,
  so the first few examples would all show one class."""
  return np.linspace(0, num_total - 1, min(num, num_total)).round().astype(int)


def inpainting_picture(x: np.ndarray, observed: np.ndarray, completions: np.ndarray, image_shape, *,
                       num_levels: int | None, caption: str | None = None) -> np.ndarray:
  """A uint8 RGB grid with one column per example and labelled rows: the observed pixels (the
  rest grey), each of the `completions [C, N, D]`, and the original `x [N, D]`."""
  from arjax import plots

  # One conversion for all rows, so real-valued data share one grey scale.
  rows = images.to_uint8(np.concatenate([x[None], completions, x[None]]), num_levels)  # [C+2, N, D]
  rows[0] = np.where(observed, rows[0], np.uint8(128))
  labels = ["observed"] + [f"completion {k + 1}" for k in range(len(completions))] + ["original"]
  return plots.labelled_grid_picture(rows.reshape(*rows.shape[:2], *image_shape), row_labels=labels,
                                     caption=caption)
