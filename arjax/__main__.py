"""Command line: `python -m arjax {train,eval,sample,curves,score,ood,probe,inpaint,classify} ...`.

  python -m arjax train EXPERIMENT[:VARIANT] --workdir DIR [field.path=value ...]
  python -m arjax sweep EXPERIMENT:SWEEP --root DIR [--index I --count N] [--report] [field.path=value ...]
  python -m arjax eval DIR [--split test] [--num-masks N]        N orderings: deep order-agnostic NADE
  python -m arjax show EXPERIMENT[:VARIANT]                     every config field: type, value, comment
  python -m arjax sample DIR [--num 64 --temperature 1.0 --seed 0 --out FILE.png] [--label K]
                                                                 (.npy instead when the data are not images)
  python -m arjax curves DIR [--out FILE.png]                    train/valid NLL per epoch as a PNG
  python -m arjax score DIR DATA [--split test --out OUTDIR]     per-example / per-pixel NLL
  python -m arjax ood DIR [--ood fashion_mnist --ood noise ... --background DIR2]
  python -m arjax probe DIR [--max-train 10000]                  linear probe on the features
  python -m arjax inpaint DIR [--mask top_half --num 8 --seed 0]  clamp observed pixels, sample
  python -m arjax classify DIR [--split test --prior uniform]     generative classifier's accuracy

Class-conditional models (data.context=label): eval reports −log p(x | label), sample draws
one row per class (or --label K only), inpaint conditions on the test labels, classify
applies Bayes' rule; score, ood and probe take unconditional models only.

DATA (and an --ood name other than noise, flip, rotate90) is a dataset name or an .npz path,
read with the model's training preprocessing (see arjax.uses.load_data_like).

Local data: set ARJAX_DATA_DIR (or pass data.data_dir=...). Without it, data come from TFDS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time
import traceback


def _train(args):
  from arjax import config as config_lib
  from arjax import train

  spec, config = config_lib.load_experiment(args.experiment)
  overrides = list(args.overrides)
  if args.data is not None:  # before the other overrides, so data.* ones still apply on top
    overrides.insert(0, f"data.name={args.data}")
  config = config_lib.apply_overrides(config, overrides)
  args.overrides = overrides
  if args.seeds is not None:
    _train_seeds(args, spec, config)
    return
  train.train_and_evaluate(config, args.workdir, experiment=spec, overrides=tuple(args.overrides))


def _train_seeds(args, spec, config):
  """--seeds N: seeds train.seed, ..., train.seed + N - 1 in one vmapped program (arjax.seeds)."""
  from arjax import run_info, seeds

  if args.seeds < 1:
    raise ValueError(f"--seeds must be >= 1; got {args.seeds}")
  learning_rates = None
  if args.learning_rates:
    learning_rates = [float(r) for r in args.learning_rates.split(",")]
  results = seeds.train_vmapped(config, [config.train.seed + k for k in range(args.seeds)],
                                learning_rates=learning_rates)
  results.update(experiment=spec, overrides=list(args.overrides), device=run_info.device_description(),
                 git_commit=run_info.git_commit())
  run_info.write_json(pathlib.Path(args.workdir) / "seeds.json", results)
  print(json.dumps({k: results[k] for k in ("seeds", "learning_rates", "test_nll", "wall_time_s")}))


def _sweep(args):
  from arjax import sweeps

  if args.report:
    summary = sweeps.report(args.sweep, args.root)
    print(pathlib.Path(summary["files"]["md"]).read_text(), end="")
    return
  sweeps.run_sweep(args.sweep, args.root, index=args.index, count=args.count,
                   extra_overrides=tuple(args.overrides))


def _show(args):
  from arjax import config as config_lib

  spec, config = config_lib.load_experiment(args.experiment)
  config = config_lib.apply_overrides(config, args.overrides)
  rows = config_lib.describe(config)
  print(f"{spec}: every config field (type = value: comment); set one with field.path=value\n")
  for path, kind, value, comment in rows:
    if not value:  # a group of fields
      print(f"{path} ({kind}){': ' + comment if comment else ''}")
      continue
    print(f"  {path}: {kind} = {value}")
    if comment:
      print(f"      {comment}")


def _experiments_epilog() -> str:
  from arjax import config as config_lib

  lines = ["experiments (python -m arjax show EXPERIMENT lists its config fields):"]
  for name, summary in config_lib.list_experiments():
    lines.append(f"  {name:32s} {summary}")
  return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
  """An ArgumentParser whose epilog can be a function, called only when the help is shown: the
  experiment list parses every file in experiments/, which no other command needs."""

  def format_help(self):
    if callable(self.epilog):
      self.epilog = self.epilog()
    return super().format_help()


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
  """Shows every option's default, and keeps the line breaks of descriptions and epilogs."""


_DISTRIBUTED_HELP = ("several processes (hosts): jax.distributed.initialize() first; it detects TPU "
                     "pods, SLURM and Open MPI, else set ARJAX_COORDINATOR_ADDRESS, ARJAX_NUM_PROCESSES "
                     "and ARJAX_PROCESS_ID (ARJAX_DISTRIBUTED=1 also turns it on)")


def _distributed_requested() -> bool:
  from arjax import sharding

  return sharding.distributed_requested()


def _eval(args):
  import numpy as np

  from arjax import checkpoints, evaluation, experiment, likelihood, run_info

  start = time.time()
  model, config, dataset = checkpoints.load_trained_model(args.workdir, which=args.checkpoint,
                                                    num_masks=args.num_masks)
  context = experiment.split_contexts(config, model, dataset)[args.split]
  log_prob = evaluation.dataset_log_prob(model, dataset.splits[args.split], context=context)
  nll = -float(np.mean(log_prob))
  print(json.dumps({
      "workdir": str(args.workdir), "checkpoint": args.checkpoint, "split": args.split,
      "nll_nats": nll, "nll_stderr": float(np.std(log_prob) / math.sqrt(len(log_prob))),
      "bits_per_dim": likelihood.nats_to_bits_per_dim(nll, model.num_dims),
      **({"likelihood": "−log p(x | label)"} if context is not None else {}),
      "num_masks": model.num_masks, "num_examples": len(log_prob), "seconds": time.time() - start,
      "device": run_info.device_description()}))


def _sample(args):
  import jax
  import numpy as np

  from arjax import checkpoints, evaluation, images, sampling

  model, _, dataset = checkpoints.load_trained_model(args.workdir, which=args.checkpoint)
  num_classes = model.context_size
  if args.label is not None and not num_classes:
    raise ValueError(f"--label {args.label}: the model is unconditional (train one with data.context=label)")
  if args.label is not None and not 0 <= args.label < num_classes:
    raise ValueError(f"--label must lie in [0, {num_classes}); got {args.label}")
  key = jax.random.key(args.seed)
  if args.label is not None:
    context = jax.nn.one_hot(np.full(args.num, args.label), num_classes)  # [num, K]
    samples = np.asarray(sampling.sample(model, key, args.num, temperature=args.temperature, context=context))
    num_columns, suffix = None, f"_label{args.label}"
  else:  # a conditional model's: one row of ⌈num / K⌉ samples per class
    samples, num_columns = evaluation.sample_grid(model, key, args.num, temperature=args.temperature)
    suffix = "_per_class" if num_classes else ""
  out = pathlib.Path(args.out or pathlib.Path(args.workdir) /
                     f"samples_seed{args.seed}_t{args.temperature}{suffix}.png")
  if dataset.image_shape is None:  # no picture of non-image rows: the samples themselves
    out = out.with_suffix(".npy")
    np.save(out, samples)
    print(f"The data are not images (examples of shape {dataset.event_shape}); samples [N, D] saved "
          "as .npy", file=sys.stderr)
  else:
    caption = (f"{type(model).__name__} samples, temperature {args.temperature:g}, seed {args.seed}"
               + (f", class {args.label}" if args.label is not None else ""))
    images.save_grid(out, samples, dataset.image_shape, num_levels=dataset.num_levels,
                     num_columns=num_columns, caption=caption)
  print(out)


def _curves(args):
  from arjax import plots

  print(plots.save_training_curves(args.workdir, args.out))


def _trained(args):
  """(model, config, dataset) with every split of the training data in the model's support."""
  from arjax import uses

  return uses.load_trained(args.workdir, which=args.checkpoint)


def _require_unconditional(model, command: str, why: str) -> None:
  if model.context_size:
    raise ValueError(f"`{command}` takes an unconditional model; this one is class-conditional "
                     f"(context_size={model.context_size}): {why}. Use `eval` for −log p(x | label) "
                     "or `classify` for the generative classifier.")


def _score(args):
  import imageio.v3 as iio
  import numpy as np

  from arjax import checkpoints, run_info, uses

  model, config, _ = checkpoints.load_trained_model(args.workdir, which=args.checkpoint)
  _require_unconditional(model, "score", "it scores data that may have no labels by p(x)")
  dataset = uses.load_data_like(config.data, model, args.data)
  x = dataset.splits[args.split]
  scores = uses.nll_scores(model, x)
  out = pathlib.Path(args.out or pathlib.Path(args.workdir) / "scores" /
                     f"{pathlib.Path(args.data).name.removesuffix('.npz')}_{args.split}")
  out.mkdir(parents=True, exist_ok=True)
  np.savez(out / "scores.npz", **scores)
  summary = {"workdir": str(args.workdir), "checkpoint": args.checkpoint, "data": args.data,
             "split": args.split, **uses.summarize(scores["nll_nats"]),
             "mean_bits_per_dim": float(np.mean(scores["bits_per_dim"])), "scores": str(out / "scores.npz")}
  if dataset.image_shape is not None:
    picture, (low, high) = uses.heatmap_picture(x[:16], scores["per_dim_nll"][:16], dataset.image_shape,
                                                num_levels=dataset.num_levels,
                                                title=f"Per-pixel NLL of {args.data} ({args.split})")
    iio.imwrite(out / "heatmaps.png", picture)
    summary.update(heatmaps=str(out / "heatmaps.png"), heatmap_range_nats=[low, high],
                   heatmaps_note="each image next to its per-pixel NLL: dark = low, bright = high")
  run_info.write_json(out / "summary.json", summary)
  print(json.dumps(summary))


def _ood(args):
  import imageio.v3 as iio
  import numpy as np

  from arjax import checkpoints, run_info, uses

  model, config, dataset_in = _trained(args)
  _require_unconditional(model, "ood", "its scores are p(x), and OOD data have no labels to condition on")
  test = dataset_in.splits["test"]
  names = list(dict.fromkeys(args.ood or uses.OOD_TRANSFORMS))
  sets = {name: uses.ood_inputs(name, test, model=model, data_config=config.data,
                                image_shape=dataset_in.image_shape, seed=args.seed) for name in names}
  background = None
  if args.background is not None:
    background, _, _ = checkpoints.load_trained_model(args.background, which=args.checkpoint)
    if background.event_shape != model.event_shape:
      raise ValueError(f"The background model takes {background.event_shape}; the model {model.event_shape}")

  scores_in = uses.ood_scores(model, test, background)
  scores_out = {name: uses.ood_scores(model, x, background) for name, x in sets.items()}
  table = {name: uses.ood_set_summary(scores_in, scores) for name, scores in scores_out.items()}
  nll_in, nll_out = scores_in[0], {name: scores[0] for name, scores in scores_out.items()}
  out = pathlib.Path(args.out or pathlib.Path(args.workdir) / "ood")
  out.mkdir(parents=True, exist_ok=True)
  picture, legend = uses.histogram_picture(nll_in, nll_out)
  iio.imwrite(out / "histogram.png", picture)
  result = {
      "workdir": str(args.workdir), "checkpoint": args.checkpoint,
      "background": str(args.background) if args.background else None,
      "in_distribution": {"data": config.data.name, "split": "test", "count": len(test),
                          "mean_nll_nats": float(np.mean(nll_in))},
      "ood": table,
      "note": uses.ood_note(background is not None),
      "histogram": {"file": str(out / "histogram.png"), "panels": legend,
                    "colors": {"in_distribution": "blue", "ood": "orange"}},
  }
  run_info.write_json(out / "ood.json", result)
  print(json.dumps(result))


def _probe(args):
  from arjax import uses

  model, config, dataset = _trained(args)
  _require_unconditional(model, "probe", "its features take the label as input, so a probe would read "
                         "the answer")
  result = uses.linear_probe(model, dataset, dataset_name=config.data.name, max_train=args.max_train)
  print(json.dumps({"workdir": str(args.workdir), "checkpoint": args.checkpoint, "data": config.data.name,
                    **result}))


def _inpaint(args):
  import imageio.v3 as iio
  import jax

  from arjax import experiment, marginals, uses

  model, config, dataset = _trained(args)
  if dataset.image_shape is None:
    raise ValueError(f"inpaint needs image data; {config.data.name!r} has examples of shape "
                     f"{dataset.event_shape}")
  picked = uses.spread_indices(len(dataset.splits["test"]), args.num)  # every class, not just the first
  x = dataset.splits["test"][picked]
  context = experiment.split_contexts(config, model, dataset)["test"]  # a conditional model's test labels
  observed = uses.observed_mask(args.mask, dataset.image_shape, len(x), seed=args.seed)
  completions = uses.inpaint(model, jax.random.key(args.seed), x, observed, num_completions=args.completions,
                             context=None if context is None else context[picked])
  out = pathlib.Path(args.out or pathlib.Path(args.workdir) / f"inpaint_{args.mask}_seed{args.seed}.png")
  out.parent.mkdir(parents=True, exist_ok=True)
  flat = lambda images: images.reshape(*images.shape[:-len(model.event_shape)], -1)  # image layout -> [..., D]
  iio.imwrite(out, uses.inpainting_picture(
      flat(x), observed, flat(completions), dataset.image_shape, num_levels=dataset.num_levels,
      caption=f"{type(model).__name__}: {args.mask} observed, {args.completions} completions"))
  # A model trained over a few orderings (LMConv) samples under one that puts the observed pixels first.
  exact = marginals.is_exact(model, observed) or (
      model.num_masks > 1 and uses.exact_draw(model, observed) is not None)
  print(json.dumps({
      "png": str(out), "mask": args.mask, "num": len(x), "completions": args.completions,
      "rows": "observed pixels (rest grey) / completions / original", "exact_conditioning": exact,
      "note": "Exact conditioning for order-agnostic models (any mask), and for the others when the "
              "observed pixels are a prefix of the model's ordering (top_half with raster order) or of one of its "
              "trained orderings (LMConv: any half)" + ("." if exact else
              "; here they are not, so pixels before an observed one in the ordering were drawn "
              "without seeing it and the completions are approximate.")}))


def _classify(args):
  import numpy as np

  from arjax import run_info, uses

  start = time.time()
  model, config, dataset = _trained(args)
  if not model.context_size or config.data.context != "label":
    raise ValueError("classify needs a class-conditional model: train one with data.context=label and "
                     "model.context_size=K (the number of classes), e.g. the experiment "
                     "nade_class_conditional_mnist.")
  num_classes = model.context_size
  x, labels = dataset.splits[args.split], dataset.labels[args.split]
  log_prior = None
  if args.prior == "train":  # the training set's class frequencies
    log_prior = np.log(np.bincount(dataset.labels["train"], minlength=num_classes) / len(dataset.labels["train"]))
  predictions, _ = uses.generative_classifier(model, x, num_classes, log_prior=log_prior)
  correct = predictions == labels
  result = {
      "workdir": str(args.workdir), "checkpoint": args.checkpoint, "split": args.split, "prior": args.prior,
      "accuracy": float(np.mean(correct)), "error_rate": float(1.0 - np.mean(correct)),
      "per_class_accuracy": [float(np.mean(correct[labels == k])) if np.any(labels == k) else None
                             for k in range(num_classes)],
      "num_examples": len(x), "num_classes": num_classes,
      "note": "argmax_y log p(x | y) + log p(y) (Bayes' rule with the class-conditional model)",
      "seconds": time.time() - start, "device": run_info.device_description()}
  run_info.write_json(pathlib.Path(args.workdir) / f"classify_{args.split}.json", result)
  print(json.dumps(result))


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m arjax", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

  train_parser = commands.add_parser(
      "train", help="train an experiment (resumes if DIR has a checkpoint)", formatter_class=_HelpFormatter,
      description="Train an experiment; running again on the same --workdir resumes it.",
      epilog=_experiments_epilog)
  train_parser.add_argument("experiment", help="NAME[:VARIANT] from experiments/, or a path to a .py file")
  train_parser.add_argument("--workdir", required=True, type=pathlib.Path,
                            help="where the run writes checkpoints, metrics, samples, results.json")
  train_parser.add_argument("--data", default=None, metavar="PATH",
                            help="train on this .npz (or dataset name) instead of the experiment's "
                                 "data: the same as data.name=PATH")
  train_parser.add_argument("overrides", nargs="*", help="config overrides, field.path=value")
  train_parser.set_defaults(overrides=[])
  train_parser.add_argument("--distributed", action="store_true", help=_DISTRIBUTED_HELP)
  train_parser.add_argument("--seeds", type=int, default=None, metavar="N",
                            help="train N seeds (train.seed, +1, ...) of a small model in one vmapped "
                                 "program; writes DIR/seeds.json (last-epoch NLLs, no checkpoints)")
  train_parser.add_argument("--learning-rates", default=None, metavar="R1,R2,...",
                            help="with --seeds: one learning rate per seed")
  train_parser.set_defaults(run=_train)

  sweep = commands.add_parser("sweep", help="train the points of a sweep declared in an experiment "
                                            "file (SWEEPS), one workdir each; --report gathers them")
  sweep.add_argument("sweep", help="EXPERIMENT:SWEEP, e.g. nade_binarized_mnist:hidden")
  sweep.add_argument("--root", required=True, type=pathlib.Path, help="one workdir per point under it")
  sweep.add_argument("--index", type=int, default=0, help="run every --count-th point from this one")
  sweep.add_argument("--count", type=int, default=1, help="(e.g. $SLURM_ARRAY_TASK_ID / task count)")
  sweep.add_argument("--report", action="store_true",
                     help="gather finished points into ROOT/sweep_report.{csv,md,json}; trains nothing")
  sweep.add_argument("overrides", nargs="*", help="config overrides applied to every point")
  sweep.set_defaults(overrides=[], run=_sweep)
  sweep.add_argument("--distributed", action="store_true", help=_DISTRIBUTED_HELP)

  show = commands.add_parser("show", help="list an experiment's config fields: type, value, comment",
                              formatter_class=_HelpFormatter, epilog=_experiments_epilog)
  show.add_argument("experiment", help="NAME[:VARIANT] from experiments/, or a path to a .py file")
  show.add_argument("overrides", nargs="*", help="config overrides, field.path=value, shown applied")
  show.set_defaults(run=_show)

  for name, run, help_text in (("eval", _eval, "NLL of a trained checkpoint on a split"),
                               ("sample", _sample, "PNG grid of samples from a checkpoint")):
    sub = commands.add_parser(name, help=help_text, formatter_class=_HelpFormatter)
    sub.add_argument("workdir", type=pathlib.Path, help="a training workdir")
    sub.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                     help="best validation epoch, or the last one saved")
    sub.set_defaults(run=run)
    if name == "eval":
      sub.add_argument("--split", choices=("train", "valid", "test"), default="test", help="the split to score")
      sub.add_argument("--num-masks", type=int, default=None,
                       help="deep order-agnostic NADE: the ensemble over this many orderings "
                            "(the first are the trained config's) instead of the config's")
    else:
      sub.add_argument("--num", type=int, default=64, help="samples to draw")
      sub.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (1: the model's own distribution)")
      sub.add_argument("--seed", type=int, default=0, help="seed of the sampler's key")
      sub.add_argument("--out", default=None,
                       help="PNG (.npy for data that are not images); None: WORKDIR/samples_seedS_tT.png")
      sub.add_argument("--label", type=int, default=None,
                       help="class-conditional models: samples of this class only; None: one row per class")

  curves = commands.add_parser("curves", help="PNG of train and valid NLL per epoch (from metrics.jsonl)",
                               formatter_class=_HelpFormatter)
  curves.add_argument("workdir", type=pathlib.Path, help="a training workdir")
  curves.add_argument("--out", default=None, help="PNG (default WORKDIR/training_curves.png)")
  curves.set_defaults(run=_curves)

  def use_parser(name, run, help_text):
    sub = commands.add_parser(name, help=help_text, formatter_class=_HelpFormatter)
    sub.add_argument("workdir", type=pathlib.Path, help="a training workdir")
    sub.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                     help="best validation epoch, or the last one saved")
    sub.set_defaults(run=run)
    return sub

  score = use_parser("score", _score, "per-example and per-pixel NLL of a dataset, heat maps")
  score.add_argument("data", help="dataset name (e.g. fashion_mnist) or .npz path")
  score.add_argument("--split", choices=("train", "valid", "test"), default="test", help="the split to score")
  score.add_argument("--out", default=None, help="folder (default WORKDIR/scores/DATA_SPLIT)")

  ood = use_parser("ood", _ood, "OOD detection metrics of the NLL (and likelihood ratio)")
  ood.add_argument("--ood", action="append", default=None, metavar="SET",
                   help="noise, flip, rotate90, or a dataset name / .npz path; repeat for several "
                        "(default: noise, flip, rotate90)")
  ood.add_argument("--background", type=pathlib.Path, default=None,
                   help="workdir of a background model (e.g. a small model, or one trained on perturbed "
                        "data): also score by NLL_model − NLL_background (Ren et al. 2019)")
  ood.add_argument("--seed", type=int, default=0, help="seed of the noise set")
  ood.add_argument("--out", default=None, help="folder (default WORKDIR/ood)")

  probe = use_parser("probe", _probe, "linear probe on the model's features vs raw pixels")
  probe.add_argument("--max-train", type=int, default=10_000, help="training examples the probe fits on")

  inpaint = use_parser("inpaint", _inpaint, "complete test images from their observed pixels")
  inpaint.add_argument("--mask", choices=("top_half", "bottom_half", "left_half", "random"),
                       default="top_half", help="the observed (clamped) pixels; the rest are sampled")
  inpaint.add_argument("--num", type=int, default=8, help="test images")
  inpaint.add_argument("--completions", type=int, default=4, help="completions per image")
  inpaint.add_argument("--seed", type=int, default=0, help="seed of the random mask and the sampler")
  inpaint.add_argument("--out", default=None, help="PNG (default WORKDIR/inpaint_MASK_seedSEED.png)")

  classify = use_parser("classify", _classify, "a class-conditional model as a generative classifier")
  classify.add_argument("--split", choices=("train", "valid", "test"), default="test", help="the split to classify")
  classify.add_argument("--prior", choices=("uniform", "train"), default="uniform",
                        help="class prior p(y): uniform, or the training set's label frequencies")

  # Overrides may come before or after --workdir, so collect the leftovers ourselves.
  args, extra = parser.parse_known_args(argv)
  if extra:
    if args.command not in ("train", "sweep") or any(item.startswith("-") or "=" not in item for item in extra):
      parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = list(args.overrides) + extra
  if getattr(args, "distributed", False) or (args.command in ("train", "sweep")
                                             and _distributed_requested()):
    from arjax import sharding  # before any computation: jax.distributed must come first

    sharding.initialize_distributed()
  try:
    args.run(args)
  except (ValueError, FileNotFoundError, TypeError, FloatingPointError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


def _run_and_exit(argv=None):
  """`main`, then the process ends with its status. After a failure it ends at once
  (`os._exit`, streams flushed): a non-daemon thread left behind by the error (an Orbax save
  that failed, a data loader) would otherwise keep the process alive after the message."""
  try:
    code = main(argv)
  except SystemExit as exit_request:  # argparse's usage errors, --help
    code = exit_request.code if isinstance(exit_request.code, int) else (1 if exit_request.code else 0)
  except KeyboardInterrupt:
    code = 130
  except BaseException:  # noqa: BLE001 - any other error: its traceback, then out
    traceback.print_exc()
    code = 1
  if code:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(0)


if __name__ == "__main__":
  _run_and_exit()
