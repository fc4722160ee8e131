"""Writes the summary table (README.md) of every study folder under experiments/results/sweeps/.

    python scripts/sweep_tables.py

One row per training result in the folder (`*.json` with a `test_nll_nats`), sorted by best
validation NLL, which is how a run would be chosen: the run's name (the file's stem after the
study prefix), its overrides, test and best validation NLL (nats), best epoch / epochs run,
minutes and device. Other files (metrics, ensemble curves, logs) are listed below the table.
"""

from __future__ import annotations

import json
import pathlib

SWEEPS = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "results" / "sweeps"


def _row(path: pathlib.Path, study: str) -> tuple[float, str] | None:
  try:
    result = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError):
    return None
  if not isinstance(result, dict) or "test_nll_nats" not in result:
    return None
  name = path.stem.removeprefix(f"{study}__")
  overrides = " ".join(f"`{o}`" for o in result.get("overrides", [])) or "—"
  valid = result.get("best_valid_nll_nats", result.get("valid_nll_nats"))
  minutes = result.get("wall_time_all_invocations_s", result.get("wall_time_s"))
  epochs = (f"{result['best_epoch']} / {result['epochs_run']}" if "best_epoch" in result else "—")
  device = str(result.get("device", "—")).replace("|", "/")
  cells = [name, overrides, f"{result['test_nll_nats']:.2f}", "—" if valid is None else f"{valid:.2f}", epochs,
           "—" if minutes is None else f"{minutes / 60:.1f}", device]
  return (valid if valid is not None else float("inf")), "| " + " | ".join(cells) + " |"


def write_table(folder: pathlib.Path) -> pathlib.Path:
  study = folder.name
  rows, others = [], []
  for path in sorted(folder.iterdir()):
    if path.name == "README.md":
      continue
    row = _row(path, study) if path.suffix == ".json" else None
    (rows.append(row) if row else others.append(path.name))
  lines = [f"# {study}: tuning runs", "",
           "Each row is one training (its results.json), sorted by best validation NLL (nats); the headline "
           "result is the top-level file of the same experiment in `experiments/results/`. Written by "
           "`python scripts/sweep_tables.py`.", ""]
  if rows:
    lines += ["| run | overrides | test NLL | best valid NLL | best epoch / epochs | minutes | device |",
              "|---|---|---|---|---|---|---|"]
    lines += [line for _, line in sorted(rows, key=lambda r: r[0])]
  if others:
    lines += ["", "Other files: " + ", ".join(f"`{name}`" for name in others) + "."]
  out = folder / "README.md"
  out.write_text("\n".join(lines) + "\n")
  return out


def main():
  for folder in sorted(p for p in SWEEPS.iterdir() if p.is_dir()):
    print(write_table(folder))


if __name__ == "__main__":
  main()
