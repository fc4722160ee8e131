"""Image grids as PNG files (samples, inpaintings, per-pixel NLL maps).

`grid` lays images out pixel for pixel; `save_grid` writes one, with a caption (the model and
the temperature, say) drawn above an enlarged copy when one is given (`arjax.plots`).
"""

from __future__ import annotations

import math
import pathlib

import imageio.v3 as iio
import numpy as np


def to_uint8(images: np.ndarray, num_levels: int | None) -> np.ndarray:
  """Maps model values to 0..255: binary ×255, 8-bit as is, reals min-max scaled."""
  images = np.asarray(images, np.float32)
  if num_levels == 2:
    images = images * 255.0
  elif num_levels is None:
    low, high = images.min(), images.max()
    images = 255.0 * (images - low) / max(high - low, 1e-8)
  return np.clip(np.round(images), 0, 255).astype(np.uint8)


def grid(images: np.ndarray, image_shape: tuple[int, int, int], *, num_columns: int | None = None,
         padding: int = 1) -> np.ndarray:
  """`[N, D]` uint8 -> one `[rows·(H+p), cols·(W+p)(, C)]` picture."""
  height, width, channels = image_shape
  images = images.reshape(-1, height, width, channels)
  count = len(images)
  num_columns = num_columns or math.ceil(math.sqrt(count))
  num_rows = math.ceil(count / num_columns)
  canvas = np.full((num_rows * (height + padding) + padding, num_columns * (width + padding) + padding,
                    channels), 128, np.uint8)
  for i, image in enumerate(images):
    row, column = divmod(i, num_columns)
    top, left = padding + row * (height + padding), padding + column * (width + padding)
    canvas[top:top + height, left:left + width] = image
  return canvas[..., 0] if channels == 1 else canvas


def save_grid(path, images, image_shape, *, num_levels: int | None, num_columns: int | None = None,
              caption: str | None = None):
  """Writes `images [N, D]` as a PNG grid, under `caption` when one is given; returns the path."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  picture = grid(to_uint8(images, num_levels), image_shape, num_columns=num_columns)
  if caption:
    from arjax import plots

    picture = plots.captioned_picture(picture, caption)
  iio.imwrite(path, picture)
  return path
