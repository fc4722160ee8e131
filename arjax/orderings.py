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


# ------------------------------------------------------------ MADE masks --

MADE_DEGREE_METHODS = ("random", "even", "quantile")


def made_degrees(ordering: np.ndarray, hidden_sizes: Sequence[int], *, seed: int = 0,
                 method: str = "random", dim_weights: np.ndarray | None = None) -> list[np.ndarray]:
  """Degrees of a MADE's units (Germain et al. 2015), 0-based.

  The input (and output) unit of dimension d has degree `position[d]`, its
  position in `ordering`; output position t may use a hidden unit of degree m
  only if m < t, and a hidden unit of degree m sees the units below it of
  degree <= m. A hidden unit's degree therefore lies in [lowest degree of the
  layer below, D − 2]: higher ones would reach no output.

  Every output at position t >= 1 keeps a path to the inputs because every
  layer holds a unit of degree 0 (the lowest possible): with "random" one unit,
  chosen at random, is pinned there, since i.i.d. draws miss it often (500 units
  over the 783 degrees of MNIST miss degree 0 about half the time, and position
  1 would then be left with its bias only). For D = 1 the hidden units get
  degree 0 and reach no output: the one conditional is its bias.

  Args:
    ordering: `[D]` permutation (`ordering[t]` is generated at position t).
    hidden_sizes: units per hidden layer, any width (narrower than D is fine).
    seed: seed of the "random" draws.
    method: "random" draws each degree uniformly from its range, as in the
      paper; "even" spreads the degrees evenly over the range (deterministic;
      when H >= D − 1 every degree 0..D−2 occurs in every layer, so every
      output sees every earlier input); "quantile" puts unit k of a layer at
      the position where the cumulative `dim_weights` (taken in the ordering,
      over positions 0..D−2) first reach (k + ½)/H of their total, so positions
      that carry more weight (e.g. more marginal entropy) get more units, and
      positions without weight (pixels that are always 0) none; as with
      "random", one unit is pinned to the lowest degree.
    dim_weights: `[D]` nonnegative weight of each dimension (in dimension
      order), for "quantile" only.

  Returns:
    `[input degrees [D], degrees of hidden layer 1 [H_1], ..., [H_L]]`, int32.
  """
  if method not in MADE_DEGREE_METHODS:
    raise ValueError(f"Unknown MADE degree method {method!r}; use one of {MADE_DEGREE_METHODS}")
  ordering = np.asarray(ordering)
  num_dims = len(ordering)
  if (method == "quantile") != (dim_weights is not None):
    raise ValueError('made_degrees: dim_weights [D] goes with method="quantile" (and only with it)')
  if method == "quantile":
    dim_weights = np.asarray(dim_weights, np.float64)
    if dim_weights.shape != (num_dims,) or not np.all(dim_weights >= 0) or not dim_weights.sum() > 0:
      raise ValueError(f"made_degrees: dim_weights must be [{num_dims}] nonnegative numbers, not all 0 "
                       f"(got shape {dim_weights.shape})")
    # A degree is a position 0..D−2 (the last position feeds no output): the quantiles of the
    # weights there; uniform if those are all 0.
    by_position = dim_weights[ordering][:max(num_dims - 1, 1)]
    by_position = by_position if by_position.sum() > 0 else np.ones_like(by_position)
    cumulative = np.cumsum(by_position) / by_position.sum()
  rng = np.random.default_rng(seed)
  degrees = [inverse(ordering).astype(np.int32)]
  for size in hidden_sizes:
    if size < 1:
      raise ValueError(f"MADE hidden layers need at least one unit; got hidden_sizes={tuple(hidden_sizes)}")
    low = int(degrees[-1].min())
    high = max(num_dims - 2, low)
    if method == "even":
      layer = low + (np.arange(size) * (high - low + 1)) // size
    elif method == "quantile":
      layer = np.clip(np.searchsorted(cumulative, (np.arange(size) + 0.5) / size), low, high)
      layer[0] = low
    else:
      layer = rng.integers(low, high + 1, size)
      layer[rng.integers(size)] = low
    degrees.append(layer.astype(np.int32))
  return degrees


def made_masks(degrees):
  """MADE's connectivity masks from the degrees of `made_degrees`.

  Returns `[M_1 [D, H_1], M_2 [H_1, H_2], ..., M_out [H_L, D]]` as float32,
  `M[i, j] = 1` where unit i of one layer feeds unit j of the next:
  hidden M_l[i, j] = (m_l[j] >= m_{l−1}[i]); output M_out[i, d] = (position[d] > m_L[i]).
  The product of the masks is strictly triangular in the ordering: input j
  reaches output d only if j comes before d. `made_masks(degrees[:1])` is the
  single `[D, D]` mask of direct input-to-output connections.

  Works on NumPy and on JAX arrays alike (the model builds its masks from the
  degrees of the current draw inside jit).
  """
  input_degrees = degrees[0]
  masks = [(upper[None, :] >= lower[:, None]).astype(np.float32)
           for lower, upper in zip(degrees[:-1], degrees[1:])]
  masks.append((input_degrees[None, :] > degrees[-1][:, None]).astype(np.float32))
  return masks
