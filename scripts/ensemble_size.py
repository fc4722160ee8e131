#!/usr/bin/env python
"""Test NLL of a deep order-agnostic NADE ensemble as a function of its number of orderings.

    ARJAX_DATA_DIR=../shared/data python scripts/ensemble_size.py runs/eonade \\
        [--num-masks 128] [--reference 16] [--examples 2000] [--seed 0] [--split test] [--out FILE.json]

Evaluates log p(x | o_k) for the orderings k = 0..N-1 (seeds ordering_seed + k, so
the first ones are the trained config's ensemble) on the split, or on a seeded random
subset of `--examples` of its examples, then reports for K = 1, 2, 4, ..., N the NLL
of the ensemble of the first K orderings, log (1/K) Σ_k p(x | o_k), with its standard
error, and its difference from the ensemble of `--reference` orderings (default: the trained
config's ensemble size) on the same examples (a paired difference, so its standard error is far
smaller than either NLL's).
Published ensembles differ in size (Uria et al. 2014 list EoNADE with 2 to 128
orderings), so this is the curve to compare along. Exact likelihoods cost D passes
per ordering: the 10,000 test digits × 128 orderings take 78 min on a 2-core CPU
(experiments/results/sweeps/eonade_binarized_mnist/eonade_binarized_mnist__cpu_stage5.ensemble_size_test.json).

Writes the JSON (default: print only) with the command, machine, wall time and commit.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import pathlib
import shlex
import sys
import time

import jax
import numpy as np
from flax import nnx

from arjax import checkpoints, likelihood, run_info


@functools.partial(jax.jit, static_argnames=("graphdef",))  # as evaluation._batch_log_prob
def _draw_log_probs(graphdef, state, x):
  return likelihood.mask_log_probs(nnx.merge(graphdef, state), x).T  # [B, N]


def ensemble_curve(log_probs: np.ndarray, reference: int) -> list[dict]:
  """Rows {num_orderings, nll_nats, stderr, minus_reference_nats, minus_reference_stderr} from
  per-ordering log-likelihoods `[examples, N]`, for K = 1, 2, 4, ..., N (and N itself)."""
  num = log_probs.shape[1]
  sizes = sorted({2 ** i for i in range(num.bit_length()) if 2 ** i <= num} | {num, reference})

  def ensemble_nll(k):  # [examples]
    return -(jax.nn.logsumexp(log_probs[:, :k], axis=1) - math.log(k))

  base = np.asarray(ensemble_nll(reference))
  rows = []
  for k in sizes:
    nll = np.asarray(ensemble_nll(k))
    diff = nll - base
    rows.append({"num_orderings": k, "nll_nats": float(nll.mean()),
                 "stderr": float(nll.std() / math.sqrt(len(nll))),
                 "minus_reference_nats": float(diff.mean()),
                 "minus_reference_stderr": float(diff.std() / math.sqrt(len(diff)))})
  return rows


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("workdir", type=pathlib.Path)
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best")
  parser.add_argument("--num-masks", type=int, default=128, help="largest ensemble (orderings 0..N-1)")
  parser.add_argument("--reference", type=int, default=None,
                      help="ensemble size the differences are taken from (default: the trained config's)")
  parser.add_argument("--examples", type=int, default=0, help="seeded random subset of the split (0: all)")
  parser.add_argument("--seed", type=int, default=0, help="seed of the subset")
  parser.add_argument("--split", choices=("train", "valid", "test"), default="test")
  parser.add_argument("--batch-size", type=int, default=500)
  parser.add_argument("--out", type=pathlib.Path, default=None, help="write the JSON here too")
  args = parser.parse_args(argv)

  start, commit = time.time(), run_info.git_commit()  # the code that runs, not what is checked out at the end
  model, config, dataset = checkpoints.load_trained_model(args.workdir, which=args.checkpoint,
                                                    num_masks=args.num_masks)
  if model.context_size:
    raise ValueError(f"{args.workdir}: a conditional model; this script takes unconditional ones")
  trained = json.loads((args.workdir / "config.json").read_text())["config"]["model"]["num_masks"]
  if args.reference is not None and args.reference < 1:
    raise ValueError(f"--reference must be >= 1, got {args.reference}")
  reference = min(trained if args.reference is None else args.reference, args.num_masks)
  x = dataset.splits[args.split]
  if args.examples and args.examples < len(x):
    x = x[np.sort(np.random.default_rng(args.seed).choice(len(x), args.examples, replace=False))]
  with jax.default_matmul_precision("highest"):  # as `evaluation.dataset_log_prob`: full float32
    log_probs = likelihood.map_batches(_draw_log_probs, model, x, args.batch_size,
                                       progress=f"{args.num_masks} orderings")  # [examples, N]
  single = -log_probs.mean(0)  # each ordering's own NLL, [N]
  result = {
      "workdir": str(args.workdir), "checkpoint": args.checkpoint, "split": args.split,
      "num_examples": len(x), "subset_seed": args.seed if len(x) < len(dataset.splits[args.split]) else None,
      "trained_num_orderings": trained,
      "single_ordering_nll_mean": float(single.mean()), "single_ordering_nll_std_over_orderings": float(single.std()),
      "reference_num_orderings": reference,
      "ensembles": ensemble_curve(log_probs, reference),
      "command": " ".join(shlex.quote(w) for w in ["python", "scripts/ensemble_size.py",
                                                     *(sys.argv[1:] if argv is None else argv)]),
      "wall_time_s": time.time() - start, "device": run_info.device_description(),
      "jax_version": jax.__version__, "git_commit": commit,
  }
  text = json.dumps(result, indent=1)
  print(text)
  if args.out:
    args.out.write_text(text + "\n")


if __name__ == "__main__":
  main()
