"""Data-parallel train-step speed on forced CPU devices (no multi-device accelerator here).

    python scripts/data_parallel_cpu.py --out experiments/results/speed/data_parallel_forced_cpu.json

Starts itself with `XLA_FLAGS=--xla_force_host_platform_device_count=4`: the host's cores are
split into 4 XLA "devices", so the figures measure the overhead and scaling of the sharded
step (batch split over the mesh, gradient all-reduce), not the speed-up of real devices. The
step is `arjax.train`'s, placed by `arjax.sharding.Placement` exactly as the training loop does
(replicated state, or `shard_params`), on MADE 784-500-784 at the given global batch.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time


def child(args):
  import jax
  import jax.numpy as jnp
  import numpy as np
  from flax import nnx

  from arjax import config as config_lib
  from arjax import data as data_lib
  from arjax import models, run_info, sharding, train

  model = models.MADEConfig(hidden_sizes=(500,)).build((784,), rngs=nnx.Rngs(0))
  data = np.random.default_rng(0).integers(0, 2, (args.batch * 4, 784)).astype(np.uint8)
  rows = []
  for num_devices in (1, 2, 4):
    for shard_params in (False, True):
      if num_devices == 1 and shard_params:
        continue
      placement = sharding.Placement.create(num_devices=num_devices, shard_params=shard_params)
      tx, _ = train.make_optimizer(config_lib.OptimConfig(learning_rate=1e-3), 1, 1)
      graphdef, params, rest = nnx.split(model, nnx.Param, ...)
      params = jax.tree.map(jnp.copy, params)  # the step donates its state: a fresh copy each time
      state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
      out_shardings = None
      if not placement.trivial:
        state, rest = placement.put_state(state), placement.put_replicated(rest)
        out_shardings = (placement.state_shardings(state), placement.sharding())
      step = train._make_train_step(graphdef, rest, tx, data_lib.DataConfig(), out_shardings=out_shardings)
      train_data = placement.put_replicated(data)
      key = jax.random.key(0)
      batches = [placement.put_batch(np.arange(i * args.batch, (i + 1) * args.batch) % len(data))
                 for i in range(4)]
      state, loss = step(state, train_data, batches[0], key)  # compile
      loss.block_until_ready()
      times = []
      for i in range(args.reps):
        t0 = time.perf_counter()
        state, loss = step(state, train_data, batches[i % 4], key)
        loss.block_until_ready()
        times.append(time.perf_counter() - t0)
      median = statistics.median(times)
      rows.append({"num_devices": num_devices, "shard_params": shard_params, "batch": args.batch,
                   "median_step_s": median, "examples_per_s": args.batch / median, "reps": args.reps})
      print(json.dumps(rows[-1]), flush=True)
  base = rows[0]["examples_per_s"]
  for row in rows:
    row["speedup_vs_one_device"] = row["examples_per_s"] / base
  return {"script": "scripts/data_parallel_cpu.py", "model": "MADE 784-500-784", "rows": rows,
          "device": run_info.device_description(), "host_cores": os.cpu_count(),
          "loadavg_at_end": os.getloadavg(), "git_commit": run_info.git_commit(),
          "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
          "note": ("forced CPU devices: 4 XLA devices over the same host cores (shared with other jobs), "
                   "so this measures the sharded step's overhead, not an accelerator speed-up")}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=512)
  parser.add_argument("--reps", type=int, default=20)
  parser.add_argument("--out", type=pathlib.Path,
                      default=pathlib.Path("experiments/results/speed/data_parallel_forced_cpu.json"))
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    result = child(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip())
  subprocess.run([sys.executable, __file__, "--child", "--batch", str(args.batch), "--reps", str(args.reps),
                  "--out", str(args.out)], check=True, env=env)


if __name__ == "__main__":
  main()
