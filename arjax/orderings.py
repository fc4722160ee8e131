"""Orderings of the D dimensions: `ordering[t]` is the dimension generated at position t."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ORDERINGS = ("raster", "reverse", "random")


def make_ordering(kind: str | Sequence[int], num_dims: int, *, seed: int = 0) -> np.ndarray:
  """Returns an int32 permutation `[D]`.

  Args:
    kind: "raster" (0, 1, ..., D−1), "reverse", "random" (a permutation drawn
      from `seed`), or an explicit permutation of range(D).
    num_dims: D.
    seed: seed of the "random" ordering.
  """
  if isinstance(kind, str):
    if kind == "raster":
      return np.arange(num_dims, dtype=np.int32)
    if kind == "reverse":
      return np.arange(num_dims, dtype=np.int32)[::-1].copy()
    if kind == "random":
      return np.random.default_rng(seed).permutation(num_dims).astype(np.int32)
    raise ValueError(f"Unknown ordering {kind!r}; use one of {ORDERINGS} or a permutation of range({num_dims})")
  ordering = np.asarray(kind)
  if ordering.shape != (num_dims,) or not np.array_equal(np.sort(ordering), np.arange(num_dims)):
    raise ValueError(f"An explicit ordering must be a permutation of range({num_dims}); got shape {ordering.shape}")
  return ordering.astype(np.int32)


def inverse(ordering: np.ndarray) -> np.ndarray:
  """`position[d]`: the position at which dimension d is generated."""
  position = np.empty_like(ordering)
  position[ordering] = np.arange(len(ordering), dtype=ordering.dtype)
  return position
