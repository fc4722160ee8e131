"""Speed-up of training 4 seeds in one vmapped program over training them one after another.

    ARJAX_DATA_DIR=../shared/data python scripts/vmapped_seeds.py \
        --out experiments/results/speed/vmapped_seeds_cpu.json

Both sides run `arjax.seeds.train_vmapped` on the same data and epochs: once with all seeds
(one compile, one pass over the data per epoch), and once per seed with one seed each
(what `python -m arjax train` per seed costs, without its checkpoints and sample grids).
Wall times include compilation, as a user pays it. The vmapped models are checked against the
sequential ones (the same NLLs to float tolerance).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time

import numpy as np

from arjax import config as config_lib
from arjax import data as data_lib
from arjax import run_info
from arjax import seeds as seeds_lib


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--experiment", default="nade_binarized_mnist")
  parser.add_argument("--num-seeds", type=int, default=4)
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--max-train", type=int, default=10_000)
  parser.add_argument("--note", default="", help="the conditions of the run, kept in the JSON")
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("experiments/results/speed/vmapped_seeds_cpu.json"))
  parser.add_argument("overrides", nargs="*", default=["model.num_hidden=50"])
  args = parser.parse_args()

  spec, config = config_lib.load_experiment(args.experiment)
  config = config_lib.apply_overrides(config, args.overrides)
  config = dataclasses.replace(config, data=dataclasses.replace(
      config.data, max_train_examples=args.max_train, max_eval_examples=2000))
  dataset = data_lib.load_dataset(config.data)
  seeds = list(range(args.num_seeds))

  start = time.time()
  together = seeds_lib.train_vmapped(config, seeds, num_epochs=args.epochs, dataset=dataset)
  vmapped_s = time.time() - start
  start = time.time()
  alone = [seeds_lib.train_vmapped(config, [s], num_epochs=args.epochs, dataset=dataset) for s in seeds]
  sequential_s = time.time() - start

  test_together = np.array(together["test_nll"])
  test_alone = np.array([a["test_nll"][0] for a in alone])
  result = {
      "script": "scripts/vmapped_seeds.py", "experiment": spec, "overrides": args.overrides,
      "num_seeds": args.num_seeds, "epochs": args.epochs, "num_train": len(dataset.splits["train"]),
      "batch_size": config.train.batch_size,
      "vmapped_wall_s": vmapped_s, "sequential_wall_s": sequential_s,
      "speedup": sequential_s / vmapped_s,
      "vmapped_epoch_seconds": together["epoch_seconds"],
      "sequential_epoch_seconds": [a["epoch_seconds"] for a in alone],
      "test_nll_vmapped": test_together.tolist(), "test_nll_sequential": test_alone.tolist(),
      "max_abs_test_nll_difference": float(np.max(np.abs(test_together - test_alone))),
      "device": run_info.device_description(), "git_commit": run_info.git_commit(),
      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
      "note": "wall times include compilation" + (f"; {args.note}" if args.note else ""),
  }
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(result, indent=2) + "\n")
  print(json.dumps({k: result[k] for k in ("vmapped_wall_s", "sequential_wall_s", "speedup",
                                           "max_abs_test_nll_difference")}))


if __name__ == "__main__":
  main()
