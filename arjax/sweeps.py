"""Sweeps declared in experiment files: one workdir per point, resumable, gathered into one table.

An experiment file declares its sweeps next to `get_config`:

    SWEEPS = {
        "hidden": sweeps.Grid({"model.num_hidden": [100, 250, 500]}),
        "lr": sweeps.OverrideSets([{"optim.learning_rate": 1e-3},
                                   {"optim.learning_rate": 3e-4, "optim.decay_rate": 0.99}]),
    }

A `Grid` is the product of its fields' values (the first field varies slowest); `OverrideSets`
is a list of points, each a mapping of field -> value. Both start from `get_config(variant)`
and add `overrides` (shared by every point) before the point's own. Then

    python -m arjax sweep nade_binarized_mnist:hidden --root runs/sweeps/nade_hidden
    python -m arjax sweep nade_binarized_mnist:hidden --root DIR --index $SLURM_ARRAY_TASK_ID --count 3
    python -m arjax sweep nade_binarized_mnist:hidden --root DIR --report

trains every point in `DIR/<point name>` (the name is made from the point's overrides), resumes
an interrupted point like `train` does, skips points whose `results.json` exists, and with
`--index I --count N` runs only the points I, I + N, I + 2N, ... (one array task each). Overrides
given on the command line (e.g. `train.max_train_minutes=20`) apply to every point and are not
part of its name. `--report` gathers the finished points into `DIR/sweep_report.{csv,md,json}`,
sorted by validation NLL, and names the best one.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import itertools
import json
import pathlib
import re
from typing import Any, Mapping, Sequence

from arjax import config as config_lib


def _format_value(value) -> str:
  """A value as the override parser reads it back (`1e-3`, `(100, 100)`, `bernoulli`)."""
  if isinstance(value, (list, tuple)):
    return "(" + ", ".join(_format_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
  return str(value)


def _as_overrides(point: Mapping[str, Any] | Sequence[str]) -> tuple[str, ...]:
  if isinstance(point, Mapping):
    return tuple(f"{field}={_format_value(value)}" for field, value in point.items())
  items = tuple(point)
  for item in items:
    if not isinstance(item, str) or "=" not in item:
      raise ValueError(f"A sweep point's override must look like field.path=value; got {item!r}")
  return items


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Sweep:
  variant: str = ""  # the experiment variant every point starts from
  overrides: tuple[str, ...] = ()  # applied to every point before its own overrides

  def points(self) -> list[tuple[str, ...]]:
    raise NotImplementedError


@dataclasses.dataclass(frozen=True, kw_only=True)
class Grid(_Sweep):
  """The product of `fields`' values: {field.path: [values]}; the first field varies slowest."""

  fields: Mapping[str, Sequence[Any]]

  def __init__(self, fields: Mapping[str, Sequence[Any]], *, variant: str = "",
               overrides: Sequence[str] = ()):
    if not fields or any(isinstance(v, str) or not len(v) for v in fields.values()):
      raise ValueError("Grid takes {field.path: [value, ...]} with at least one value per field; "
                       f"got {dict(fields)!r}")
    object.__setattr__(self, "fields", dict(fields))
    object.__setattr__(self, "variant", variant)
    object.__setattr__(self, "overrides", _as_overrides(overrides))

  def points(self) -> list[tuple[str, ...]]:
    names = list(self.fields)
    return [_as_overrides(dict(zip(names, values)))
            for values in itertools.product(*self.fields.values())]


@dataclasses.dataclass(frozen=True, kw_only=True)
class OverrideSets(_Sweep):
  """A list of points, each {field.path: value} (or a sequence of "field.path=value")."""

  sets: tuple[tuple[str, ...], ...]

  def __init__(self, sets: Sequence[Mapping[str, Any] | Sequence[str]], *, variant: str = "",
               overrides: Sequence[str] = ()):
    if not sets:
      raise ValueError("OverrideSets takes at least one point")
    object.__setattr__(self, "sets", tuple(_as_overrides(point) for point in sets))
    object.__setattr__(self, "variant", variant)
    object.__setattr__(self, "overrides", _as_overrides(overrides))

  def points(self) -> list[tuple[str, ...]]:
    return list(self.sets)


def point_name(overrides: Sequence[str]) -> str:
  """The workdir name of a point: its overrides joined by `,`, a tuple's items by `-`, other
  characters that do not belong in a file name replaced by `_`
  (`model.num_hidden=100,optim.learning_rate=0.001`, `model.hidden_sizes=8-8`)."""
  if not overrides:
    return "base"
  parts = []
  for item in overrides:
    field, _, value = item.partition("=")
    value = re.sub(r"\s*,\s*", "-", value.strip().strip("()[]").strip(", "))
    parts.append(re.sub(r"[^A-Za-z0-9._=+-]", "_", f"{field}={value}"))
  return ",".join(parts)[:200]


def load_sweep(spec: str) -> tuple[str, _Sweep]:
  """`EXPERIMENT:SWEEP` -> (experiment path or name, the sweep its file declares in SWEEPS)."""
  target, sep, sweep_name = spec.partition(":")
  if not sep or not sweep_name:
    raise ValueError(f"A sweep is EXPERIMENT:SWEEP (e.g. nade_binarized_mnist:hidden); got {spec!r}")
  path = pathlib.Path(target)
  if path.suffix != ".py":
    path = config_lib.EXPERIMENTS_DIR / f"{target}.py"
  if not path.is_file():
    raise ValueError(f"Unknown experiment {target!r} (no {path})")
  module_spec = importlib.util.spec_from_file_location(f"arjax_sweep_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  declared = getattr(module, "SWEEPS", {})
  if sweep_name not in declared:
    raise ValueError(f"{path} declares no sweep {sweep_name!r}; its sweeps: {sorted(declared)} "
                     "(declare them in a module-level SWEEPS = {name: Grid(...) | OverrideSets(...)})")
  return target, declared[sweep_name]


def planned_points(spec: str, *, index: int = 0, count: int = 1) -> list[dict]:
  """The points this task runs (every `count`-th from `index`): [{"name", "overrides", "spec"}]."""
  if count < 1 or not 0 <= index < count:
    raise ValueError(f"--index must lie in [0, --count) and --count be >= 1; got index={index}, "
                     f"count={count}")
  target, sweep = load_sweep(spec)
  experiment = f"{target}:{sweep.variant}" if sweep.variant else target
  points = sweep.points()
  names = [point_name(p) for p in points]
  if len(set(names)) != len(names):
    raise ValueError(f"Sweep {spec!r} has two points with the same overrides: {names}")
  return [{"name": name, "overrides": sweep.overrides + point, "point": point, "experiment": experiment}
          for i, (name, point) in enumerate(zip(names, points)) if i % count == index]


def run_sweep(spec: str, root, *, index: int = 0, count: int = 1,
              extra_overrides: Sequence[str] = ()) -> list[dict]:
  """Trains the points of `spec` this task owns in `root/<point name>`; skips finished ones.

  Returns one {"name", "workdir", "status": "trained" | "skipped"} per point. Every point's config
  is built (and its overrides checked) before the first one trains, so a typo fails at once.
  """
  from arjax import train  # the sweep's declarations import without the training stack

  root = pathlib.Path(root)
  planned = planned_points(spec, index=index, count=count)
  configs = []
  for point in planned:
    experiment, config = config_lib.load_experiment(point["experiment"])
    overrides = tuple(point["overrides"]) + tuple(extra_overrides)
    configs.append((experiment, config_lib.apply_overrides(config, list(overrides)), overrides))
  done = []
  for point, (experiment, config, overrides) in zip(planned, configs):
    workdir = root / point["name"]
    if (workdir / "results.json").exists():
      print(f"sweep: {point['name']} is finished; skipped", flush=True)
      done.append({"name": point["name"], "workdir": str(workdir), "status": "skipped"})
      continue
    print(f"sweep: training {point['name']} in {workdir}", flush=True)
    train.train_and_evaluate(config, workdir, experiment=experiment, overrides=overrides)
    done.append({"name": point["name"], "workdir": str(workdir), "status": "trained"})
  return done


REPORT_COLUMNS = ("rank", "point", "valid_nll_nats", "test_nll_nats", "test_nll_stderr",
                  "test_bits_per_dim", "best_epoch", "epochs_run", "stopped_for_time",
                  "wall_time_s", "num_params", "overrides")


def report(spec: str, root) -> dict:
  """Gathers the finished points of `spec` under `root` into `sweep_report.{csv,md,json}`.

  Rows are sorted by validation NLL (of the best epoch); points without `results.json` are listed
  as pending. Returns {"rows", "pending", "best", "files"}.
  """
  root = pathlib.Path(root)
  rows, pending = [], []
  for point in planned_points(spec):
    results_path = root / point["name"] / "results.json"
    if not results_path.exists():
      pending.append(point["name"])
      continue
    results = json.loads(results_path.read_text())
    rows.append({
        "point": point["name"],
        "valid_nll_nats": results["best_valid_nll_nats"],
        "test_nll_nats": results["test_nll_nats"],
        "test_nll_stderr": results["test_nll_stderr"],
        "test_bits_per_dim": results["test_bits_per_dim"],
        "best_epoch": results["best_epoch"],
        "epochs_run": results["epochs_run"],
        "stopped_for_time": results.get("stopped_for_time", False),
        "wall_time_s": results.get("wall_time_all_invocations_s", results.get("wall_time_s")),
        "num_params": results.get("num_params"),
        "overrides": " ".join(results["overrides"]),
        "device": results.get("device"),
        "git_commit": results.get("git_commit"),
    })
  rows.sort(key=lambda row: row["valid_nll_nats"])
  for rank, row in enumerate(rows, 1):
    row["rank"] = rank
  best = rows[0]["point"] if rows else None

  csv_text = io.StringIO()
  writer = csv.DictWriter(csv_text, fieldnames=REPORT_COLUMNS, extrasaction="ignore")
  writer.writeheader()
  writer.writerows(rows)
  lines = [f"# Sweep `{spec}` ({root})", "",
           "| " + " | ".join(REPORT_COLUMNS) + " |", "|" + "---|" * len(REPORT_COLUMNS)]
  for row in rows:
    cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else f"`{row[c]}`" if c == "overrides"
             else str(row[c]) for c in REPORT_COLUMNS]
    lines.append("| " + " | ".join(cells) + " |")
  lines.append("")
  lines.append(f"Best point (lowest validation NLL): `{best}`" if best else "No point has finished.")
  if pending:
    lines.append(f"Pending (no results.json yet): {', '.join(f'`{p}`' for p in pending)}")
  if rows:
    lines.append(f"Device: {rows[0]['device']}; code: {rows[0]['git_commit']}")
  files = {"csv": root / "sweep_report.csv", "md": root / "sweep_report.md",
           "json": root / "sweep_report.json"}
  root.mkdir(parents=True, exist_ok=True)
  files["csv"].write_text(csv_text.getvalue())
  files["md"].write_text("\n".join(lines) + "\n")
  summary = {"sweep": spec, "root": str(root), "best": best, "rows": rows, "pending": pending}
  files["json"].write_text(json.dumps(summary, indent=2) + "\n")
  return {**summary, "files": {k: str(v) for k, v in files.items()}}
