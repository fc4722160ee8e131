#!/usr/bin/env python
"""Prints the README's results tables from the committed runs in experiments/results/*.json.

    python scripts/results_table.py

One table for statically binarized MNIST (nats), one for the other data (8-bit,
continuous, class-conditional), each row with its command, machine and wall time.
Where `<run>.ensemble_size_test.json` (scripts/ensemble_size.py) sits beside a run,
its row gives the exact test NLL of the ensembles of 16 and of the most orderings.
"""

import json
import pathlib

RESULTS = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "results"

# Published figures on the same data and in the same units, for the "paper" column.
PUBLISHED = {
    "fvsbn_binarized_mnist": "97.45 (Larochelle & Murray 2011)",
    "nade_binarized_mnist": "88.86 (Larochelle & Murray 2011); 88.33 (Uria et al. 2014)",
    "made_binarized_mnist": "88.40 (Germain et al. 2015, 1 mask)",
    "made_binarized_mnist:ensemble": "86.64 (Germain et al. 2015, 32 masks)",
    "eonade_binarized_mnist": "85.10 (Uria et al. 2014, EoNADE 2 hidden layers)",
    "made_mog_mnist_logit": "1038.5 (MAF paper, Table 2: log-likelihood −1038.5)",
}
BINARIZED = "binarized_mnist"


def _command(r, path):
  overrides = r["overrides"]
  if path.with_suffix(".invocations.json").exists():  # each invocation had its own time budget
    overrides = [o for o in overrides if not o.startswith("train.max_train_minutes=")]
  overrides = " ".join(overrides)
  return f"`python -m arjax train {r['experiment']} --workdir runs/{path.stem}{' ' + overrides if overrides else ''}`"


def _minutes(r, path):
  """Wall time of the whole run: a run resumed over several invocations (each a bounded time on a
  GPU) sums them; `<stem>.invocations.json`, where present, lists each invocation's results."""
  invocations = path.with_suffix(".invocations.json")
  if invocations.exists():
    parts = json.loads(invocations.read_text())
    return f"{sum(p['wall_time_s'] for p in parts) / 60:.1f} min ({len(parts)} invocations)"
  return f"{r.get('wall_time_all_invocations_s', r['wall_time_s']) / 60:.1f} min"


def main():
  runs = []
  for path in sorted(RESULTS.glob("*.json")):
    r = json.loads(path.read_text())
    if "experiment" in r:  # other files (benchmarks, toy densities, uses reports) are not runs
      runs.append((path, r))

  print("Statically binarized MNIST, test NLL (nats):\n")
  print("| experiment | test NLL | one mask / ordering | paper | best epoch / epochs | wall time | machine | command |")
  print("|---|---|---|---|---|---|---|---|")
  for path, r in runs:
    if r["config"]["data"]["name"] != BINARIZED:
      continue
    single = r.get("test_nll_single_mask_nats")
    test = f"{r['test_nll_nats']:.2f} ± {r['test_nll_stderr']:.2f}"
    curve = RESULTS / f"{path.stem}.ensemble_size_test.json"
    if curve.exists():  # an order-agnostic model evaluated with several ensemble sizes
      if r["config"]["model"].get("num_masks", 1) == 1:
        single = r["test_nll_nats"]
      rows = json.loads(curve.read_text())["ensembles"]
      shown = [row for row in rows if row["num_orderings"] in (16, rows[-1]["num_orderings"])]
      test = "; ".join(f"{row['nll_nats']:.2f} ± {row['stderr']:.2f} ({row['num_orderings']} orderings)"
                       for row in reversed(shown))
    stop = " (time budget)" if r.get("stopped_for_time") else ""
    print(f"| [{path.stem}]({path.relative_to(RESULTS.parent.parent)}) | {test} "
          f"| {'—' if single is None else f'{single:.2f}'} | {PUBLISHED.get(r['experiment'], '—')} "
          f"| {r['best_epoch']} / {r['epochs_run']}{stop} | {_minutes(r, path)} | {r['device']} | {_command(r, path)} |")

  print("\nOther data:\n")
  print("| experiment | data | test NLL (nats) | other units | paper | best epoch / epochs | wall time | machine | command |")
  print("|---|---|---|---|---|---|---|---|---|")
  for path, r in runs:
    data = r["config"]["data"]
    if data["name"] == BINARIZED:
      continue
    if data.get("dequantize") == "logit":
      what = "MNIST dequantized, logit space (λ = 1e-6)"
      other = f"{r['test_bits_per_pixel_8bit']:.3f} bits/pixel (8-bit)"
    elif data.get("context") == "label":
      what = "MNIST binarized (seed 0) given its label: −log p(x \\| y)"
      classify = RESULTS / f"{path.stem}.classify_test.json"
      other = (f"generative classifier {json.loads(classify.read_text())['accuracy']:.2%} test accuracy"
               if classify.exists() else "—")
    else:
      what = "MNIST, 8-bit (256 levels)"
      other = f"{r['test_bits_per_dim']:.3f} bits/dim"
    stop = " (time budget)" if r.get("stopped_for_time") else ""
    print(f"| [{path.stem}]({path.relative_to(RESULTS.parent.parent)}) | {what} | {r['test_nll_nats']:.1f} ± {r['test_nll_stderr']:.1f} "
          f"| {other} | {PUBLISHED.get(r['experiment'], '—')} | {r['best_epoch']} / {r['epochs_run']}{stop} "
          f"| {_minutes(r, path)} | {r['device']} | {_command(r, path)} |")


if __name__ == "__main__":
  main()
