#!/usr/bin/env python
"""Prints the README's results table from the committed runs in experiments/results/*.json.

    python scripts/results_table.py
"""

import json
import pathlib

RESULTS = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "results"

# Published figures on the same data, for the "paper" column.
PUBLISHED = {
    "fvsbn_binarized_mnist": "97.45 (Larochelle & Murray 2011)",
    "nade_binarized_mnist": "88.86 (Larochelle & Murray 2011); 88.33 (Uria et al. 2014)",
}


def main():
  print("| experiment | test NLL (nats) | bits/dim | paper | best epoch / run | training time | machine | command |")
  print("|---|---|---|---|---|---|---|---|")
  for path in sorted(RESULTS.glob("*.json")):
    r = json.loads(path.read_text())
    if "experiment" not in r:  # other figures (e.g. toy_densities.json), not a training run
      continue
    name = r["experiment"].split(":")[0]
    command = f"`python -m arjax train {r['experiment']} --workdir runs/{path.stem} {' '.join(r['overrides'])}`".replace(" `", "`")
    print(f"| [{path.stem}]({path.relative_to(RESULTS.parent.parent)}) | {r['test_nll_nats']:.2f} ± {r['test_nll_stderr']:.2f} "
          f"| {r['test_bits_per_dim']:.4f} | {PUBLISHED.get(name, '—')} | {r['best_epoch']} / {r['epochs_run']} "
          f"| {r['train_seconds'] / 60:.0f} min | {r['device']} | {command} |")


if __name__ == "__main__":
  main()
