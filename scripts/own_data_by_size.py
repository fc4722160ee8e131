"""The generic `nade` experiment on binary data of several sizes sampled from a known model.

    nice -n 10 python scripts/own_data_by_size.py [--sizes 300 2000 10000 50000] [--dims 100]

The known model is a fully visible sigmoid belief net (FVSBN) over D binary dimensions with
random weights on the 30 previous dimensions, so its exact log-likelihood is a sum of D
logistic terms: its NLL on the test rows (10,000 fresh draws) estimates its entropy, the best
NLL any model can reach in expectation. For each size N the script writes an `.npz` with N
training rows (and N/5 validation rows, at least 100), then runs exactly the command a user
would, `python -m arjax train nade --data FILE.npz --workdir DIR`, and, on the smaller sizes,
the same data under `nade_binarized_mnist` (defaults tuned for 50,000 MNIST rows: a rate
decaying per epoch, validation every epoch) for comparison.
Writes experiments/results/own_data_by_size.json: per size the true model's test NLL, each
run's test NLL, best step, and wall time.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def known_model(num_dims: int, *, band: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(weights `[D, D]` strictly lower-triangular within `band` of the diagonal, biases `[D]`)."""
  rng = np.random.default_rng(seed)
  weights = rng.normal(0.0, 1.0, (num_dims, num_dims))
  rows, columns = np.indices((num_dims, num_dims))
  weights *= (columns < rows) & (columns >= rows - band)
  return weights, rng.normal(0.0, 1.0, num_dims)


def sample(weights, biases, num: int, rng) -> np.ndarray:
  """`num` exact draws `[num, D]` (uint8 0/1), one dimension after the other."""
  x = np.zeros((num, len(biases)))
  for d in range(len(biases)):
    logits = biases[d] + x @ weights[d]  # [num]
    x[:, d] = rng.random(num) < 1.0 / (1.0 + np.exp(-logits))
  return x.astype(np.uint8)


def nll(weights, biases, x: np.ndarray) -> np.ndarray:
  """−log p(x) `[N]` in nats under the known model."""
  x = x.astype(np.float64)
  logits = x @ weights.T + biases  # [N, D]
  return np.sum(np.logaddexp(0.0, logits) - x * logits, axis=1)


def train(experiment: str, data: pathlib.Path, workdir: pathlib.Path) -> dict:
  command = [sys.executable, "-m", "arjax", "train", experiment, "--data", str(data), "--workdir", str(workdir),
             "train.num_samples=0"]
  start = time.time()
  subprocess.run(command, check=True, cwd=ROOT, stdout=open(workdir.with_suffix(".log"), "w"),
                 stderr=subprocess.STDOUT)
  results = json.loads((workdir / "results.json").read_text())
  return {"command": " ".join(["python"] + command[1:]), "test_nll_nats": results["test_nll_nats"],
          "test_nll_stderr": results["test_nll_stderr"], "best_valid_nll_nats": results["best_valid_nll_nats"],
          "best_epoch": results["best_epoch"], "epochs_run": results["epochs_run"],
          "steps": json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])["step"],
          "stopped_early": results["stopped_early"], "wall_seconds": time.time() - start}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", type=int, nargs="+", default=[300, 2000, 10_000, 50_000])
  parser.add_argument("--dims", type=int, default=100)
  parser.add_argument("--compare-up-to", type=int, default=2000,
                      help="also run nade_binarized_mnist's defaults on sizes up to this")
  parser.add_argument("--workdir", type=pathlib.Path, default=ROOT / "runs" / "own_data_by_size")
  parser.add_argument("--out", type=pathlib.Path, default=ROOT / "experiments" / "results" / "own_data_by_size.json")
  args = parser.parse_args()
  args.workdir.mkdir(parents=True, exist_ok=True)
  weights, biases = known_model(args.dims)
  rng = np.random.default_rng(1)
  test = sample(weights, biases, 10_000, rng)
  true_test = nll(weights, biases, test)
  report = {"known_model": f"FVSBN, D={args.dims}, weights N(0, 1) on the 30 previous dimensions, biases N(0, 1)",
            "true_test_nll_nats": float(true_test.mean()),
            "true_test_nll_stderr": float(true_test.std() / np.sqrt(len(true_test))),
            "num_test": len(test), "machine": f"{platform.machine()} CPU, {len(__import__('os').sched_getaffinity(0))} cores",
            "runs": []}
  if args.out.exists():  # sizes run before with the same known model are kept
    previous = json.loads(args.out.read_text())
    if previous.get("known_model") == report["known_model"]:
      report["runs"] = [row for row in previous["runs"] if row["num_train"] not in args.sizes]
  for size in args.sizes:
    train_x = sample(weights, biases, size, rng)
    valid_x = sample(weights, biases, max(size // 5, 100), rng)
    path = args.workdir / f"fvsbn_d{args.dims}_n{size}.npz"
    np.savez(path, train=train_x, valid=valid_x, test=test)
    row = {"num_train": size, "num_valid": len(valid_x),
           "true_train_nll_nats": float(nll(weights, biases, train_x).mean())}
    experiments = ["nade"] + (["nade_binarized_mnist"] if size <= args.compare_up_to else [])
    for experiment in experiments:
      row[experiment] = train(experiment, path, args.workdir / f"{experiment}_n{size}")
      print(json.dumps({"size": size, experiment: row[experiment]}), flush=True)
    report["runs"] = sorted(report["runs"] + [row], key=lambda r: r["num_train"])
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
  main()
