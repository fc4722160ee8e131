"""Command line: `python -m arjax {train,eval,sample} ...`.

  python -m arjax train EXPERIMENT[:VARIANT] --workdir DIR [field.path=value ...]
  python -m arjax eval DIR [--split test]
  python -m arjax sample DIR [--num 64 --temperature 1.0 --seed 0 --out FILE.png]

Local data: set ARJAX_DATA_DIR (or pass data.data_dir=...). Without it, data come from TFDS.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time


def _train(args):
  from arjax import config as config_lib
  from arjax import train

  spec, config = config_lib.load_experiment(args.experiment)
  config = config_lib.apply_overrides(config, args.overrides)
  train.train_and_evaluate(config, args.workdir, experiment=spec, overrides=tuple(args.overrides))


def _eval(args):
  import numpy as np

  from arjax import likelihood, train

  start = time.time()
  model, _, dataset = train.load_trained_model(args.workdir, which=args.checkpoint)
  log_prob = train.dataset_log_prob(model, dataset.splits[args.split])
  nll = -float(np.mean(log_prob))
  print(json.dumps({
      "workdir": str(args.workdir), "checkpoint": args.checkpoint, "split": args.split,
      "nll_nats": nll, "nll_stderr": float(np.std(log_prob) / math.sqrt(len(log_prob))),
      "bits_per_dim": likelihood.nats_to_bits_per_dim(nll, model.num_dims),
      "num_examples": len(log_prob), "seconds": time.time() - start,
      "device": train.device_description()}))


def _sample(args):
  import jax
  import numpy as np

  from arjax import images, sampling, train

  model, _, dataset = train.load_trained_model(args.workdir, which=args.checkpoint)
  samples = np.asarray(sampling.sample(model, jax.random.key(args.seed), args.num,
                                       temperature=args.temperature))
  out = pathlib.Path(args.out or pathlib.Path(args.workdir) / f"samples_seed{args.seed}_t{args.temperature}.png")
  if dataset.image_shape is None:
    out = out.with_suffix(".npy")
    np.save(out, samples)
  else:
    images.save_grid(out, samples, dataset.image_shape, num_levels=dataset.num_levels)
  print(out)


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m arjax", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)

  train_parser = commands.add_parser("train", help="train an experiment (resumes if DIR has a checkpoint)")
  train_parser.add_argument("experiment", help="NAME[:VARIANT] from experiments/, or a path to a .py file")
  train_parser.add_argument("--workdir", required=True, type=pathlib.Path)
  train_parser.add_argument("overrides", nargs="*", help="config overrides, field.path=value")
  train_parser.set_defaults(overrides=[])
  train_parser.set_defaults(run=_train)

  for name, run, help_text in (("eval", _eval, "NLL of a trained checkpoint on a split"),
                               ("sample", _sample, "PNG grid of samples from a checkpoint")):
    sub = commands.add_parser(name, help=help_text)
    sub.add_argument("workdir", type=pathlib.Path)
    sub.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    sub.set_defaults(run=run)
    if name == "eval":
      sub.add_argument("--split", choices=("train", "valid", "test"), default="test")
    else:
      sub.add_argument("--num", type=int, default=64)
      sub.add_argument("--temperature", type=float, default=1.0)
      sub.add_argument("--seed", type=int, default=0)
      sub.add_argument("--out", default=None)

  # Overrides may come before or after --workdir, so collect the leftovers ourselves.
  args, extra = parser.parse_known_args(argv)
  if extra:
    if args.command != "train" or any(item.startswith("-") or "=" not in item for item in extra):
      parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = list(args.overrides) + extra
  try:
    args.run(args)
  except (ValueError, FileNotFoundError, TypeError, FloatingPointError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
