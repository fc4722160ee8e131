#!/usr/bin/env python
"""The three uses of one trained model in one go: OOD detection, a linear probe, inpainting.

    ARJAX_DATA_DIR=../shared/data python scripts/uses_report.py runs/nade --name nade_binarized_mnist \\
        [--background runs/fvsbn] [--results-dir experiments/results] [--docs-dir docs]

Writes RESULTS_DIR/uses_NAME.json and three pictures into DOCS_DIR:
  NAME_ood_histogram.png     NLL histograms, test set (blue) against each OOD set (orange),
                             one panel per set with its AUROC (`arjax.uses.histogram_picture`);
  NAME_inpaint_top_half.png  one column per test image, labelled rows: top half observed (rest
                             grey), 4 completions, the original (`arjax.uses.inpainting_picture`);
  NAME_training_curves.png   train (blue) / valid (orange) NLL per epoch, best valid epoch red
                             (`arjax.plots.training_curves_picture`).
and prints markdown tables (OOD set | AUROC | AUPR | FPR@95, and the probe accuracies) to paste
into a README.

Each part runs the functions behind `python -m arjax ood|probe|inpaint|curves` (arjax.uses,
arjax.plots) on the model loaded once, and records its wall time and the `python -m arjax`
command that gives the same figures on its own (none for a probe on other data than the
training data). OOD sets: fashion_mnist, noise, flip, rotate90 (`--ood` to choose), scored by
NLL and, with `--background DIR`, by NLL_model − NLL_background (Ren et al. 2019). The probe
needs labels: it uses the training data when they have them, else `--probe-data` (default
`mnist`, read with the model's preprocessing, e.g. binarized for a binarized-MNIST model).

A part (or one OOD set) that fails, e.g. for a missing dataset, records its error in the JSON
and the rest still runs; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import sys
import time
import traceback

import imageio.v3 as iio
import jax
import numpy as np

from arjax import data as data_lib
from arjax import checkpoints, marginals, plots, run_info, uses

DEFAULT_OOD = ("fashion_mnist", "noise", "flip", "rotate90")
INPAINT_MASK = "top_half"  # a prefix of raster orderings: exact conditioning
INPAINT_NUM = 8  # test images
INPAINT_COMPLETIONS = 4  # completions per image


def _error(e: BaseException) -> str:
  return f"{type(e).__name__}: {e}"


def _command(*words) -> str:
  return " ".join(shlex.quote(str(word)) for word in words)


def _timed(part, *args) -> dict:
  """`part(*args)` as a dict with its `seconds`, or {"error", "seconds"} if it raised."""
  start = time.time()
  try:
    result = part(*args)
  except Exception as e:  # a report of several parts: record the failure, go on with the next
    if not isinstance(e, (ValueError, FileNotFoundError)):  # not a missing dataset: show where
      traceback.print_exc()
    result = {"error": _error(e)}
  return {**result, "seconds": round(time.time() - start, 3)}


# ----------------------------------------------------------------- parts ---


def curves_part(args, png: pathlib.Path) -> dict:
  records = plots.read_metrics(args.workdir)
  best_epoch, best_valid_nll = plots.best_epoch(records)
  return {"png": str(plots.save_training_curves(args.workdir, png)), "epochs_recorded": len(records),
          "best_epoch": best_epoch, "best_valid_nll": best_valid_nll, "command": _command("python", "-m", "arjax", "curves", args.workdir, "--out", png)}


def ood_part(args, loaded, background, png: pathlib.Path) -> dict:
  model, config, dataset = loaded
  test = dataset.splits["test"]  # [N, D]

  scores_in = uses.ood_scores(model, test, background)
  nll_in = scores_in[0]  # [N]
  table, nll_out = {}, {}
  for name in args.ood:
    try:
      x = uses.ood_inputs(name, test, model=model, data_config=config.data,
                          image_shape=dataset.image_shape, seed=args.seed)
      scores = uses.ood_scores(model, x, background)
      table[name] = uses.ood_set_summary(scores_in, scores)
      nll_out[name] = scores[0]
    except Exception as e:  # one missing dataset must not cost the other sets
      table[name] = {"error": _error(e)}
  result = {
      "in_distribution": {"data": config.data.name, "split": "test", "count": len(test),
                          "mean_nll_nats": float(np.mean(nll_in))},
      "ood": table,
      "note": uses.ood_note(background is not None),
      "command": _command("python", "-m", "arjax", "ood", args.workdir, "--checkpoint", args.checkpoint,
                          *[word for name in nll_out for word in ("--ood", name)],
                          *(("--background", args.background) if background is not None else ()),
                          "--seed", args.seed),
  }
  if nll_out:
    picture, legend = uses.histogram_picture(nll_in, nll_out)
    iio.imwrite(png, picture)
    result["histogram"] = {"png": str(png), "panels": legend,
                           "colors": {"in_distribution": "blue", "ood": "orange"}}
  return result


def _has_labels(dataset: data_lib.Dataset) -> bool:
  return all(dataset.labels.get(split) is not None for split in ("train", "test"))


def probe_part(args, loaded) -> dict:
  model, config, dataset = loaded
  if args.probe_data is None and _has_labels(dataset):
    name, command = config.data.name, _command("python", "-m", "arjax", "probe", args.workdir,
                                               "--checkpoint", args.checkpoint, "--max-train", args.max_train)
  else:
    name, command = args.probe_data or "mnist", None  # `python -m arjax probe` reads the training data only
    dataset = uses.load_data_like(config.data, model, name)
  result = uses.linear_probe(model, dataset, dataset_name=name, max_train=args.max_train)
  return {"data": name, **result, "command": command}


def inpaint_part(args, loaded, png: pathlib.Path) -> dict:
  model, config, dataset = loaded
  if dataset.image_shape is None:
    raise ValueError(f"inpainting needs image data; {config.data.name!r} has examples of shape "
                     f"{dataset.event_shape}")
  x = dataset.splits["test"][uses.spread_indices(len(dataset.splits["test"]), INPAINT_NUM)]  # [N, D]
  observed = uses.observed_mask(INPAINT_MASK, dataset.image_shape, len(x), seed=args.seed)  # [N, D]
  completions = uses.inpaint(model, jax.random.key(args.seed), x, observed,
                             num_completions=INPAINT_COMPLETIONS)  # [C, N, D]
  iio.imwrite(png, uses.inpainting_picture(
      x, observed, completions, dataset.image_shape, num_levels=dataset.num_levels,
      caption=f"{type(model).__name__}: {INPAINT_MASK} observed, {INPAINT_COMPLETIONS} completions"))
  return {"png": str(png), "mask": INPAINT_MASK, "num": len(x), "completions": INPAINT_COMPLETIONS,
          "rows": "observed pixels (rest grey) / completions / original",
          "exact_conditioning": marginals.is_exact(model, observed),
          "command": _command("python", "-m", "arjax", "inpaint", args.workdir, "--checkpoint", args.checkpoint,
                              "--mask", INPAINT_MASK, "--num", INPAINT_NUM, "--completions",
                              INPAINT_COMPLETIONS, "--seed", args.seed, "--out", png)}


# ---------------------------------------------------------------- tables ---


def markdown(report: dict) -> str:
  """The OOD table and the probe accuracies, as markdown."""
  lines = []
  ood = report["ood"]
  if "ood" in ood:
    inside = ood["in_distribution"]
    lines += [f"OOD detection ({report['name']}; in-distribution: {inside['data']} test, "
              f"{inside['count']} examples; score: NLL, higher = more anomalous)", "",
              "| OOD set | AUROC | AUPR | FPR@95 |", "|---|---|---|---|"]
    for name, row in ood["ood"].items():
      if "error" in row:
        lines.append(f"| {name} | — | — | — |")
        continue
      for score, label in (("nll", name), ("likelihood_ratio", f"{name} (likelihood ratio)")):
        if score in row:
          m = row[score]
          lines.append(f"| {label} | {m['auroc']:.3f} | {m['aupr']:.3f} | {m['fpr_at_95_tpr']:.3f} |")
  else:
    lines.append(f"OOD detection failed: {ood['error']}")
  probe = report["probe"]
  lines.append("")
  if "features" in probe:
    lines += [f"Linear probe on {probe['data']} ({probe['num_train']} train / {probe['num_test']} test "
              "examples)", "", "| probe input | train accuracy | test accuracy |", "|---|---|---|"]
    for key, label in (("features", f"model features ({probe['features']['num_features']})"),
                       ("pixels", f"raw pixels ({probe['pixels']['num_features']})")):
      lines.append(f"| {label} | {probe[key]['train_accuracy']:.4f} | {probe[key]['test_accuracy']:.4f} |")
  else:
    lines.append(f"Linear probe failed: {probe['error']}")
  return "\n".join(lines)


def _errors(report: dict) -> list[str]:
  found = [f"{part}: {report[part]['error']}" for part in ("curves", "ood", "probe", "inpaint")
           if "error" in report[part]]
  found += [f"ood {name}: {row['error']}" for name, row in report["ood"].get("ood", {}).items()
            if "error" in row]
  return found + ([f"background: {report['background_error']}"] if "background_error" in report else [])


# ------------------------------------------------------------------ main ---


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("workdir", type=pathlib.Path, help="a training workdir (python -m arjax train ...)")
  parser.add_argument("--name", default=None, help="names the outputs (default: the workdir's name)")
  parser.add_argument("--results-dir", type=pathlib.Path, default=pathlib.Path("experiments/results"))
  parser.add_argument("--docs-dir", type=pathlib.Path, default=pathlib.Path("docs"))
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best")
  parser.add_argument("--ood", action="append", default=None, metavar="SET",
                      help=f"OOD set, repeat for several (default: {', '.join(DEFAULT_OOD)})")
  parser.add_argument("--background", type=pathlib.Path, default=None,
                      help="workdir of a background model, for the likelihood-ratio score")
  parser.add_argument("--probe-data", default=None,
                      help="labelled data for the probe (default: the training data if labelled, else mnist)")
  parser.add_argument("--max-train", type=int, default=10_000, help="training examples the probe fits on")
  parser.add_argument("--seed", type=int, default=0, help="seed of the noise set and of the inpainting")
  args = parser.parse_args(argv)
  args.ood = list(dict.fromkeys(args.ood or DEFAULT_OOD))
  name = args.name or args.workdir.resolve().name
  args.docs_dir.mkdir(parents=True, exist_ok=True)
  start = time.time()

  report = {
      "name": name, "workdir": str(args.workdir), "checkpoint": args.checkpoint,
      "command": _command("python", "scripts/uses_report.py", *(sys.argv[1:] if argv is None else argv)),
      "data_dir": os.environ.get(data_lib.DATA_DIR_ENV), "device": run_info.device_description(),
      "jax_version": jax.__version__, "git_commit": run_info.git_commit(),
  }
  results_path = args.workdir / "results.json"
  if results_path.exists():  # what was trained, for the reader of this file alone
    trained = json.loads(results_path.read_text())
    report["trained"] = {key: trained.get(key) for key in ("experiment", "overrides", "test_nll_nats",
                                                           "best_epoch", "epochs_run", "device")}
  report["curves"] = _timed(curves_part, args, args.docs_dir / f"{name}_training_curves.png")

  load_start = time.time()
  try:
    loaded = uses.load_trained(args.workdir, which=args.checkpoint)
  except Exception as e:
    if not isinstance(e, (ValueError, FileNotFoundError)):
      traceback.print_exc()
    loaded, load_error = None, f"the model could not be loaded: {_error(e)}"
  report["load_seconds"] = round(time.time() - load_start, 3)
  background = None
  if args.background is not None and loaded is not None:
    try:
      background, _, _ = checkpoints.load_trained_model(args.background, which=args.checkpoint)
      if background.event_shape != loaded[0].event_shape:
        raise ValueError(f"the background model takes {background.event_shape}; the model "
                         f"{loaded[0].event_shape}")
    except Exception as e:
      report["background_error"] = _error(e)
      background = None
  report["background"] = str(args.background) if background is not None else None

  parts = (("ood", ood_part, (background, args.docs_dir / f"{name}_ood_histogram.png")),
           ("probe", probe_part, ()),
           ("inpaint", inpaint_part, (args.docs_dir / f"{name}_inpaint_{INPAINT_MASK}.png",)))
  for part_name, part, extra in parts:
    report[part_name] = (_timed(part, args, loaded, *extra) if loaded is not None
                         else {"error": load_error, "seconds": 0.0})
  report["wall_time_s"] = round(time.time() - start, 3)

  out = args.results_dir / f"uses_{name}.json"
  run_info.write_json(out, report)
  print(markdown(report))
  print(f"\n{out}; pictures in {args.docs_dir}")
  errors = _errors(report)
  for error in errors:
    print(f"error: {error}", file=sys.stderr)
  return 1 if errors else 0


if __name__ == "__main__":
  sys.exit(main())
