#!/usr/bin/env python
"""An FVSBN whose regularization is chosen on validation per conditional, from trained FVSBNs.

    ARJAX_DATA_DIR=../shared/data python scripts/fvsbn_select_per_dim.py RUN [RUN ...] \\
        [--out experiments/results/sweeps/fvsbn_binarized_mnist/fvsbn_binarized_mnist__per_dim_l1_l2.json]

An FVSBN's D conditionals are separate logistic regressions: conditional d has
its own weights alpha[d] and bias[d] and no parameter is shared. So a model
selection per conditional is as legitimate as one per model: given FVSBNs
trained with different regularization (L2 or L1 strengths) (RUN workdirs, same data and ordering),
take for each position d the (alpha[d], bias[d]) of the run whose conditional d
has the lowest validation NLL. The result is again an FVSBN; its test NLL is
reported next to each input run's, with which run each position came from.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

import jax
import numpy as np
from flax import nnx

from arjax import checkpoints

from arjax import run_info

from arjax import uses


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("runs", nargs="+", type=pathlib.Path, help="training workdirs of FVSBNs")
  parser.add_argument("--out", type=pathlib.Path,
                      default=pathlib.Path("experiments/results/sweeps/fvsbn_binarized_mnist/fvsbn_binarized_mnist__per_dim_l1_l2.json"))
  args = parser.parse_args(argv)
  start = time.time()
  models, configs, dataset = [], [], None
  for run in args.runs:
    model, config, data = checkpoints.load_trained_model(run)
    if type(model).__name__ != "FVSBN" or model.context_size:
      raise ValueError(f"{run} is not an unconditional FVSBN")
    models.append(model)
    configs.append(config)
    dataset = dataset or data
  orderings = {tuple(np.asarray(m.ordering[...]).tolist()) for m in models}
  if len(orderings) != 1 or len({c.data for c in configs}) != 1:
    raise ValueError("the runs must share their data config and ordering")

  valid = np.stack([-uses.nll_scores(m, dataset.splits["valid"])["per_dim_nll"].mean(0)
                    for m in models])  # [R, D], log-likelihood per dimension
  best = np.argmax(valid, axis=0)  # [D], by dimension
  chosen_at_position = best[np.asarray(models[0].ordering[...])]  # [D], by position
  alpha = np.stack([np.asarray(models[k].alpha[...])[t] for t, k in enumerate(chosen_at_position)])
  bias = np.stack([np.asarray(models[k].bias[...])[t] for t, k in enumerate(chosen_at_position)])
  composite = nnx.clone(models[0])
  composite.alpha = nnx.Param(jax.numpy.asarray(alpha))  # [D, D, P]
  composite.bias = nnx.Param(jax.numpy.asarray(bias))  # [D, P]

  def nll(model, split):
    log_prob = -uses.nll_scores(model, dataset.splits[split])["nll_nats"]  # [N]
    return -float(np.mean(log_prob)), float(np.std(log_prob) / math.sqrt(len(log_prob)))

  test_nll, test_stderr = nll(composite, "test")
  valid_nll, _ = nll(composite, "valid")
  result = {
      "what": "FVSBN with each conditional taken from the run with the lowest validation NLL for it",
      "command": " ".join(["python", "scripts/fvsbn_select_per_dim.py", *map(str, args.runs)]),
      "runs": [{"workdir": str(run), "overrides": json.loads((run / "config.json").read_text())["overrides"],
                "l2": config.optim.l2, "l1": config.optim.l1, "valid_nll_nats": -float(v.sum()), "test_nll_nats": nll(m, "test")[0],
                "positions_chosen": int(np.sum(best == k))}
               for k, (run, config, m, v) in enumerate(zip(args.runs, configs, models, valid))],
      "valid_nll_nats": valid_nll,
      "test_nll_nats": test_nll,
      "test_nll_stderr": test_stderr,
      "num_test_examples": len(dataset.splits["test"]),
      "wall_time_s": time.time() - start,
      "device": run_info.device_description(),
      "git_commit": run_info.git_commit(),  # pylint: disable=protected-access
  }
  run_info.write_json(args.out, result)
  print(json.dumps({k: result[k] for k in ("valid_nll_nats", "test_nll_nats", "test_nll_stderr")}))
  for r in result["runs"]:
    print(f"  {r['workdir']}: l2 {r['l2']}, l1 {r['l1']}, valid {r['valid_nll_nats']:.3f}, test {r['test_nll_nats']:.3f}, "
          f"chosen for {r['positions_chosen']} positions")
  return 0


if __name__ == "__main__":
  sys.exit(main())
