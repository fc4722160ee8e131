#!/usr/bin/env python
"""Speed of arjax models: one JSON line per figure, fields `model, what, batch, value, unit`.

  what = train    examples/s of the real training step (Adam, `arjax.train`'s jitted step)
         eval_ll  examples/s of the jitted log-likelihood
         sample   seconds for --num-samples full samples (cached step and full-pass sampler)
         compile  seconds to trace and compile the train step (first call)

The fields match `../shared/peers/bench_torch.py`, so the two can run one after
the other on the same machine and be compared as ratios:

  python scripts/benchmark.py --models nade,fvsbn --batches 128,512
  ~/torchref/bin/python ../shared/peers/bench_torch.py --models ref_nade_loop,ref_nade \
      --what train,eval,sample --batches 128,512

Data: random binary 28×28 (Bernoulli(0.5)), fixed seed, as the PyTorch script.
Throughput = batch / median step time (`value_best` uses the fastest step);
`other_cores` is the CPU that other processes used meanwhile (contention).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import arjax
from arjax import config as config_lib
from arjax import data as data_lib
from arjax import evaluation, models, run_info, train

NUM_DIMS = 784

# name -> model config; sizes as in the papers (and in the PyTorch references).
MODELS = {
    "nade": lambda: models.NADEConfig(num_hidden=500),  # kernel "auto": the fused C++ kernel on CPU
    "nade_chunked": lambda: models.NADEConfig(num_hidden=500, kernel="chunked"),  # the pure-XLA one
    "fvsbn": lambda: models.FVSBNConfig(),
    "lstm": lambda: models.RNNConfig(cell="lstm", num_hidden=256),
    "made": lambda: models.MADEConfig(hidden_sizes=(500,)),
    # Deep order-agnostic NADE (2 × 500, 16 orderings); its train step is the order-agnostic
    # objective, its eval_ll the exact D-pass likelihood of one ordering.
    "eonade": lambda: models.DeepNADEConfig(hidden_sizes=(500, 500), num_masks=16),
    # pytorch-generative's MNIST PixelCNN (15 residual blocks, 2·16 = 32 residual features, 32 head
    # features), on 28 × 28 × 1 images; the PyTorch peer is bench_torch.py's peer_pixelcnn.
    "pixelcnn": lambda: models.PixelCNNConfig(num_blocks=15, num_features=32, head_features=32),
}
#: Families whose events are images [H, W, C] rather than vectors [D].
EVENT_SHAPES = {"pixelcnn": (28, 28, 1)}


def _cpu_jiffies():
  with open("/proc/stat") as f:
    busy = [int(t) for t in f.readline().split()[1:]]
  with open("/proc/self/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
  return time.perf_counter(), sum(busy[:3]) + sum(busy[5:8]), int(fields[11]) + int(fields[12])


def _other_cores(start, end) -> float:
  hz = os.sysconf("SC_CLK_TCK")
  return round(max((end[1] - start[1]) - (end[2] - start[2]), 0) / hz / max(end[0] - start[0], 1e-9), 3)


def emit(model, what, batch, value, unit, **extra):
  print(json.dumps({"model": model, "what": what, "batch": batch, "value": round(value, 4),
                    "unit": unit, **extra}), flush=True)


def time_calls(fn, *, min_reps: int, budget_s: float):
  """Median and min wall time of `fn()` (which must block), plus the contention seen."""
  fn()  # warm-up (and compile)
  start, times = _cpu_jiffies(), []
  while len(times) < min_reps or sum(times) < budget_s:
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times), min(times), _other_cores(start, _cpu_jiffies()), len(times)


def bench_model(name, args):
  model_config = MODELS[name]()
  event_shape = EVENT_SHAPES.get(name, (NUM_DIMS,))
  model = model_config.build(event_shape, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(args.seed)
  emit(name, "params", 0, sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param))), "params")

  if "train" in args.what or "compile" in args.what:
    for batch in args.batches:
      data = jnp.asarray(rng.integers(0, 2, (batch, *event_shape)), jnp.uint8)
      tx, _ = train.make_optimizer(config_lib.OptimConfig(learning_rate=1e-3), 1, 1)
      graphdef, params, rest = nnx.split(model, nnx.Param, ...)
      state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
      step = train._make_train_step(graphdef, rest, tx, data_lib.DataConfig())
      indices, key = jnp.arange(batch), jax.random.key(0)
      holder = {"state": jax.tree.map(jnp.copy, state)}

      t0 = time.perf_counter()
      compiled = step.lower(holder["state"], data, indices, key).compile()
      if "compile" in args.what:
        emit(name, "compile", batch, time.perf_counter() - t0, "s")

      def run_step():
        holder["state"], loss = compiled(holder["state"], data, indices, key)
        loss.block_until_ready()

      if "train" in args.what:
        median, best, other, reps = time_calls(run_step, min_reps=args.min_reps, budget_s=args.budget)
        emit(name, "train", batch, batch / median, "examples/s", value_best=round(batch / best, 1),
             median_s=round(median, 5), reps=reps, other_cores=other)

  if "eval" in args.what:
    for batch in args.batches:
      x = jnp.asarray(rng.integers(0, 2, (batch, *event_shape)), jnp.float32)
      graphdef, state = nnx.split(model)
      run = lambda: evaluation._batch_log_prob(graphdef, state, x).block_until_ready()
      median, best, other, reps = time_calls(run, min_reps=args.min_reps, budget_s=args.budget)
      emit(name, "eval_ll", batch, batch / median, "examples/s", value_best=round(batch / best, 1),
           median_s=round(median, 5), reps=reps, other_cores=other)

  if "sample" in args.what:
    modes = [(label, use_cache) for label, use_cache in [("cached", True)] * model.has_cache
             + [("full_pass", False)] if label in args.samplers]
    for label, use_cache in modes:
      run = lambda: arjax.sample(model, jax.random.key(0), args.num_samples,
                                 use_cache=use_cache).block_until_ready()
      t0 = time.perf_counter()
      run()
      first = time.perf_counter() - t0
      median, best, other, reps = time_calls(run, min_reps=args.min_reps, budget_s=args.budget)
      emit(name, "sample", args.num_samples, median, "s", sampler=label, value_best=round(best, 4),
           first_call_s=round(first, 3), reps=reps, other_cores=other)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="nade,fvsbn")
  parser.add_argument("--what", default="train,eval,sample,compile")
  parser.add_argument("--batches", default="128,512")
  parser.add_argument("--num-samples", type=int, default=64)
  parser.add_argument("--min-reps", type=int, default=3)
  parser.add_argument("--budget", type=float, default=4.0, help="seconds of timed repeats per figure")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--samplers", default="cached,full_pass",
                      help="which samplers 'sample' times (full_pass: D full passes; minutes for a PixelCNN)")
  args = parser.parse_args()
  args.what = set(args.what.split(","))
  args.batches = [int(b) for b in args.batches.split(",")]
  emit("env", "env", 0, 0, "", jax=jax.__version__, device=run_info.device_description(),
       python=sys.version.split()[0], loadavg=os.getloadavg())
  for name in args.models.split(","):
    if name not in MODELS:
      raise SystemExit(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    bench_model(name, args)


if __name__ == "__main__":
  main()
