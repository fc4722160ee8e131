"""Speed-up of training K seeds in one vmapped program over training them one after another.

    ARJAX_DATA_DIR=../shared/data python scripts/vmapped_seeds.py \
        --out experiments/results/speed/vmapped_seeds_cpu.json model.num_hidden=50 model.kernel=cumsum
    # 4 seeds of FVSBN on 10,000 rows of a known 100-dimensional FVSBN, 20 epochs:
    python scripts/vmapped_seeds.py --experiment fvsbn_binarized_mnist --known-fvsbn-dims 100 \
        --epochs 20 --out experiments/results/speed/vmapped_seeds_fvsbn_d100_b32_cpu.json train.batch_size=32

Both sides run `arjax.seeds.train_vmapped` on the same data and epochs: once with all seeds
(one compile, one pass over the data per epoch), and once per seed with one seed each, one
after another (what `python -m arjax train` per seed costs, without its checkpoints and sample
grids). Each side runs in its own fresh Python process, so each pays JAX's one-time warm-up
(the first eager operations, the first compilations) once: timed in one process, the side run
second would inherit the first side's warm caches. Wall times start at the first training call
(imports and data loading, the same for both, are left out) and include compilation, as a user
pays it. The vmapped models are checked against the sequential ones (the same NLLs to float
tolerance).

`--known-fvsbn-dims D` trains on data of a known D-dimensional FVSBN (the model of
`scripts/own_data_by_size.py`: `--max-train` training rows, 2,000 validation and test rows),
written to `runs/vmapped_seeds/`; otherwise the experiment's own data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def known_fvsbn_data(num_dims: int, num_train: int) -> pathlib.Path:
  """An .npz of `num_train` / 2,000 / 2,000 rows drawn from `own_data_by_size`'s known FVSBN."""
  sys.path.insert(0, str(ROOT / "scripts"))
  import own_data_by_size  # noqa: PLC0415 - a sibling script, not a package

  path = ROOT / "runs" / "vmapped_seeds" / f"known_fvsbn_d{num_dims}_n{num_train}.npz"
  if not path.exists():
    weights, biases = own_data_by_size.known_model(num_dims)
    rng = np.random.default_rng(1)
    splits = {name: own_data_by_size.sample(weights, biases, rows, rng)
              for name, rows in (("test", 2000), ("train", num_train), ("valid", 2000))}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **splits)
  return path


def _config(args):
  from arjax import config as config_lib  # noqa: PLC0415 - imported in the timed processes only

  spec, config = config_lib.load_experiment(args.experiment)
  config = config_lib.apply_overrides(config, args.overrides)
  return spec, dataclasses.replace(config, data=dataclasses.replace(
      config.data, max_train_examples=args.max_train, max_eval_examples=2000))


def run_side(args) -> dict:
  """One side, in this process: all seeds in one program, or one seed after another."""
  from arjax import data as data_lib  # noqa: PLC0415
  from arjax import seeds as seeds_lib  # noqa: PLC0415

  spec, config = _config(args)
  dataset = data_lib.load_dataset(config.data)
  seeds = list(range(args.num_seeds))
  start = time.time()
  if args.side == "vmapped":
    runs = [seeds_lib.train_vmapped(config, seeds, num_epochs=args.epochs, dataset=dataset)]
  else:
    runs = [seeds_lib.train_vmapped(config, [s], num_epochs=args.epochs, dataset=dataset) for s in seeds]
  return {"experiment": spec, "wall_s": time.time() - start, "num_train": len(dataset.splits["train"]),
          "batch_size": config.train.batch_size,
          "epoch_seconds": [r["epoch_seconds"] for r in runs],
          "test_nll": [nll for r in runs for nll in r["test_nll"]]}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--experiment", default="nade_binarized_mnist")
  parser.add_argument("--num-seeds", type=int, default=4)
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--max-train", type=int, default=10_000)
  parser.add_argument("--known-fvsbn-dims", type=int, default=None,
                      help="train on data of a known FVSBN of this many dimensions")
  parser.add_argument("--repeats", type=int, default=3, help="rounds of the two sides, one after the other")
  parser.add_argument("--note", default="", help="the conditions of the run, kept in the JSON")
  parser.add_argument("--side", choices=("vmapped", "sequential"), help=argparse.SUPPRESS)
  parser.add_argument("--side-out", type=pathlib.Path, help=argparse.SUPPRESS)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("experiments/results/speed/vmapped_seeds_cpu.json"))
  parser.add_argument("overrides", nargs="*", help="config overrides, e.g. model.num_hidden=50")
  args = parser.parse_args()
  if args.side:
    args.side_out.write_text(json.dumps(run_side(args)))
    return

  overrides = list(args.overrides)
  if args.known_fvsbn_dims:
    overrides.append(f"data.name={known_fvsbn_data(args.known_fvsbn_dims, args.max_train).relative_to(ROOT)}")
  rounds = []
  with tempfile.TemporaryDirectory() as tmp:
    for _ in range(args.repeats):  # the two sides alternate; the machine's drift reaches both
      sides = {}
      for side in ("vmapped", "sequential"):
        side_out = pathlib.Path(tmp) / f"{side}.json"
        subprocess.run([sys.executable, __file__, "--experiment", args.experiment, "--num-seeds",
                        str(args.num_seeds), "--epochs", str(args.epochs), "--max-train", str(args.max_train),
                        "--side", side, "--side-out", str(side_out), *overrides], check=True, cwd=ROOT)
        sides[side] = json.loads(side_out.read_text())
      rounds.append(sides)

  from arjax import run_info  # noqa: PLC0415

  vmapped, sequential = rounds[0]["vmapped"], rounds[0]["sequential"]
  test_together, test_alone = np.array(vmapped["test_nll"]), np.array(sequential["test_nll"])
  speedups = [r["sequential"]["wall_s"] / r["vmapped"]["wall_s"] for r in rounds]
  result = {
      "script": "scripts/vmapped_seeds.py", "experiment": vmapped["experiment"], "overrides": overrides,
      "num_seeds": args.num_seeds, "epochs": args.epochs, "num_train": vmapped["num_train"],
      "batch_size": vmapped["batch_size"], "repeats": args.repeats,
      "vmapped_wall_s": [r["vmapped"]["wall_s"] for r in rounds],
      "sequential_wall_s": [r["sequential"]["wall_s"] for r in rounds],
      "speedup": speedups, "speedup_median": float(np.median(speedups)),
      "vmapped_epoch_seconds": [r["vmapped"]["epoch_seconds"][0] for r in rounds],
      "sequential_epoch_seconds": [r["sequential"]["epoch_seconds"] for r in rounds],
      "test_nll_vmapped": test_together.tolist(), "test_nll_sequential": test_alone.tolist(),
      "max_abs_test_nll_difference": float(np.max(np.abs(test_together - test_alone))),
      "device": run_info.device_description(), "git_commit": run_info.git_commit(),
      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
      "note": ("each side in its own fresh process, timed from its first training call; wall times "
               "include compilation") + (f"; {args.note}" if args.note else ""),
  }
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(result, indent=2) + "\n")
  print(json.dumps({k: result[k] for k in ("speedup", "speedup_median",
                                           "max_abs_test_nll_difference")}))


if __name__ == "__main__":
  main()
