"""2-D toy densities for looking at what a continuous head learns.

Each generator is `name(num_examples, *, seed) -> float32 [N, 2]`, drawn with
`np.random.default_rng(seed)` and scaled by fixed constants (not by the
sample's own statistics, so every split and every seed share one density) to
roughly zero mean and unit standard deviation per axis.

As datasets: `DataConfig(name="toy:two_moons")` loads 10,000 / 2,000 / 2,000
examples (train / valid / test, seeds 0 / 1 / 2) through `arjax.data.load_dataset`.
"""

from __future__ import annotations

import math

import numpy as np

PREFIX = "toy:"  # DataConfig.name prefix that selects a toy density
SPLIT_SIZES = {"train": 10_000, "valid": 2_000, "test": 2_000}


def two_moons(num_examples: int, *, seed: int, noise: float = 0.1) -> np.ndarray:
  """Two interleaved half circles (as in scikit-learn's make_moons) plus N(0, noise²) jitter."""
  rng = np.random.default_rng(seed)
  angle = rng.uniform(0.0, math.pi, num_examples)  # [N]
  inner = rng.random(num_examples) < 0.5  # [N] which moon
  x = np.where(inner, 1.0 - np.cos(angle), np.cos(angle))
  y = np.where(inner, 0.5 - np.sin(angle), np.sin(angle))
  points = np.stack([x, y], axis=1) + noise * rng.normal(size=(num_examples, 2))  # [N, 2]
  # The exact mean and variance of this mixture per axis (E[cos t] = 0, E[sin t] = 2/π, E[sin² t] = ½).
  mean = np.array([0.5, 0.25])
  std = np.sqrt([0.75 + noise**2, 0.5625 - 1 / math.pi + noise**2])
  return ((points - mean) / std).astype(np.float32)


def rings(num_examples: int, *, seed: int, radii: tuple[float, ...] = (0.6, 1.2, 1.8),
          noise: float = 0.06) -> np.ndarray:
  """Concentric rings; a ring's share of points grows with its radius (uniform along the arcs)."""
  rng = np.random.default_rng(seed)
  radii = np.asarray(radii)
  ring = rng.choice(len(radii), size=num_examples, p=radii / radii.sum())  # [N]
  angle = rng.uniform(0.0, 2 * math.pi, num_examples)  # [N]
  radius = radii[ring] + noise * rng.normal(size=num_examples)  # [N]
  return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32)


def checkerboard(num_examples: int, *, seed: int) -> np.ndarray:
  """Uniform on the 8 dark squares of a 4 × 4 board over [−2, 2]² (as in FFJORD), scaled to unit std."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(-2.0, 2.0, num_examples)  # [N]
  # y is uniform on the two unit squares of x's column whose floor(x) + floor(y) is even.
  y = rng.random(num_examples) - 2.0 * rng.integers(0, 2, num_examples) + np.floor(x) % 2
  return (np.stack([x, y], axis=1) / (4 / math.sqrt(12))).astype(np.float32)  # U[−2, 2] has std 4/√12


GENERATORS = {"two_moons": two_moons, "rings": rings, "checkerboard": checkerboard}


def load_splits(name: str) -> tuple[dict[str, np.ndarray], dict[str, None]]:
  """The train/valid/test splits of toy density `name` (fixed seeds) and their (absent) labels."""
  if name not in GENERATORS:
    raise ValueError(f"Unknown toy density {name!r}; choose one of "
                     f"{[PREFIX + known for known in GENERATORS]}")
  splits = {split: GENERATORS[name](size, seed=seed)
            for seed, (split, size) in enumerate(SPLIT_SIZES.items())}
  return splits, dict.fromkeys(splits)
