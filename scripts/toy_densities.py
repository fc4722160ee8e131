#!/usr/bin/env python
"""RNADE on the 2-D toy densities: trains, then pictures data, density and samples side by side.

    nice -n 19 python scripts/toy_densities.py            # about a minute on a 2-core CPU

For each toy in `arjax.toy` (two_moons, rings, checkerboard) it trains a NADE
with a MixtureOfGaussians(num_components=8) head through the one training loop
(`arjax.train.train_and_evaluate`, dataset `toy:NAME`) and writes
`docs/toy_NAME.png`, three panels left to right over the same square of the plane:

  1. a 2-D histogram of the 10,000 training points,
  2. the model density exp(log p(x)) on a grid,
  3. a 2-D histogram of 10,000 samples from the model.

Each panel has x₁ / x₂ axes and its own viridis colour bar (counts per bin, or density);
y points up (`arjax.plots.maps_picture`). Test NLLs (with a
full-covariance Gaussian fitted to the training set as a baseline) go to
`experiments/results/toy_densities.json`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import jax
import numpy as np

import arjax
from arjax import config as config_lib
from arjax import data as data_lib
from arjax import checkpoints, evaluation, heads, models, plots, run_info, toy, train

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXTENT = 2.75  # every panel shows [−EXTENT, EXTENT]²; the standardized toys lie within ±2.4
HISTOGRAM_BINS = 75  # bins per axis of the histogram panels
PANEL_PIXELS = 300  # grid points per axis of the density panel
NUM_MODEL_SAMPLES = 10_000

def toy_config(name: str, *, num_epochs: int) -> config_lib.Config:
  return config_lib.Config(
      data=data_lib.DataConfig(name=f"{toy.PREFIX}{name}"),
      model=models.NADEConfig(num_hidden=64, head=heads.MixtureOfGaussians(num_components=8)),
      optim=config_lib.OptimConfig(learning_rate=1e-2, schedule="cosine"),
      train=config_lib.TrainConfig(batch_size=25, num_epochs=num_epochs, patience=None,
                                   eval_batch_size=2000, num_samples=0),
  )


def histogram_image(points: np.ndarray) -> np.ndarray:
  """`[N, 2]` -> `[HISTOGRAM_BINS, HISTOGRAM_BINS]` counts, rows from top (high y) to bottom."""
  counts, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=HISTOGRAM_BINS,
                                range=[[-EXTENT, EXTENT], [-EXTENT, EXTENT]])  # [x bin, y bin]
  return counts.T[::-1]


def density_image(model) -> np.ndarray:
  """exp(log p) at the centres of a `[PANEL_PIXELS, PANEL_PIXELS]` grid, rows from high y to low."""
  edges = np.linspace(-EXTENT, EXTENT, PANEL_PIXELS + 1)
  centres = (edges[:-1] + edges[1:]) / 2
  x, y = np.meshgrid(centres, centres[::-1])  # [P, P] each; row 0 is the top (largest y)
  grid = np.stack([x.ravel(), y.ravel()], axis=1).astype(np.float32)  # [P², 2]
  log_prob = evaluation.dataset_log_prob(model, grid, batch_size=10_000)  # [P²]
  return np.exp(log_prob).reshape(PANEL_PIXELS, PANEL_PIXELS)


def gaussian_test_nll(train_points: np.ndarray, test_points: np.ndarray) -> float:
  """NLL in nats of a full-covariance Gaussian fitted to the training points (a baseline)."""
  mean = train_points.mean(0)
  covariance = np.cov(train_points, rowvar=False)
  centred = test_points - mean
  mahalanobis = np.sum(centred @ np.linalg.inv(covariance) * centred, axis=1)
  return float(np.mean(0.5 * mahalanobis + 0.5 * np.linalg.slogdet(2 * np.pi * covariance)[1]))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num-epochs", type=int, default=15)
  parser.add_argument("--workdir", default=None, help="keep the training runs here (default: a temp dir)")
  parser.add_argument("--figures", default=str(ROOT / "docs"))
  parser.add_argument("--results", default=str(ROOT / "experiments" / "results" / "toy_densities.json"))
  args = parser.parse_args()

  start = time.time()
  figures = pathlib.Path(args.figures)
  figures.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory() as scratch:
    workdir = pathlib.Path(args.workdir or scratch)
    summary = {}
    for name in toy.GENERATORS:
      config = toy_config(name, num_epochs=args.num_epochs)
      results = train.train_and_evaluate(config, workdir / name, experiment=f"toy_densities:{name}")
      model, _, dataset = checkpoints.load_trained_model(workdir / name)
      samples = np.asarray(arjax.sample(model, jax.random.key(0), NUM_MODEL_SAMPLES))  # [N, 2]
      panels = [histogram_image(dataset.splits["train"]), density_image(model), histogram_image(samples)]
      path = plots.save_picture(figures / f"toy_{name}.png", plots.maps_picture(
          panels, ["training data (10,000 points)", "model density p(x)", f"{NUM_MODEL_SAMPLES:,} model samples"],
          extent=EXTENT, colorbar_labels=["points per bin", "density", "samples per bin"],
          title=f"{name}: NADE with a mixture-of-Gaussians head"))
      summary[name] = {
          "test_nll_nats": results["test_nll_nats"],
          "test_nll_stderr": results["test_nll_stderr"],
          "gaussian_baseline_test_nll_nats": gaussian_test_nll(dataset.splits["train"], dataset.splits["test"]),
          "best_valid_nll_nats": results["best_valid_nll_nats"],
          "best_epoch": results["best_epoch"],
          "train_seconds": results["train_seconds"],
          "figure": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
      }
      print(f"{name}: test NLL {results['test_nll_nats']:.3f} nats -> {path}", flush=True)
  output = {
      "script": "scripts/toy_densities.py",
      "num_epochs": args.num_epochs,
      "config": config_lib.to_dict(toy_config("NAME", num_epochs=args.num_epochs)),
      "toys": summary,
      "wall_time_s": time.time() - start,
      "device": run_info.device_description(),
      "jax_version": jax.__version__,
      "git_commit": run_info.git_commit(),
  }
  pathlib.Path(args.results).write_text(json.dumps(output, indent=2) + "\n")
  print(f"wall time {output['wall_time_s']:.0f}s; results in {args.results}")


if __name__ == "__main__":
  main()
