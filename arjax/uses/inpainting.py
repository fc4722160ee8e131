"""Completions of partly observed images: the observed pixels clamped in the sampler (exact for
order-agnostic models under any mask, and for the others when the observed pixels come first)."""

from __future__ import annotations

import jax
import numpy as np

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
  in the ordering are drawn without seeing it.
  Returns: `[num_completions, N, D]`.
  """
  likelihood.check_input(model, x)
  num = len(x)
  given = np.tile(x, (num_completions, 1))  # [C·N, D]
  given_mask = np.tile(np.asarray(observed, bool), (num_completions, 1))  # [C·N, D]
  if context is not None:
    context = np.tile(np.asarray(context), (num_completions, 1))  # [C·N, K]
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
                       num_levels: int | None) -> np.ndarray:
  """A uint8 grid with one column per example: the observed pixels (the rest grey), each of the
  `completions [C, N, D]`, and the original `x [N, D]`."""
  # One conversion for all rows, so real-valued data share one grey scale.
  rows = images.to_uint8(np.concatenate([x[None], completions, x[None]]), num_levels)  # [C+2, N, D]
  rows[0] = np.where(observed, rows[0], np.uint8(128))
  return images.grid(rows.reshape(-1, rows.shape[-1]), image_shape, num_columns=len(x))
