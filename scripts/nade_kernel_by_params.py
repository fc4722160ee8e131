#!/usr/bin/env python
"""NADE's fused C++ kernel vs the chunked XLA kernel by head size P (parameters per position).

    python scripts/nade_kernel_by_params.py [--reps 5] > OUT.jsonl

One JSON line per (H, P): the median time of the jitted gradient of a random linear
functional of the [B, D, P] outputs at batch 128, D = 784, inputs Bernoulli(0.5).
P = 1 is a Bernoulli head, 3K and 256 mixtures and a 256-way softmax; `NADE(kernel="auto")`
uses the fused kernel only for P = 1 on CPUs because of these figures.
"""

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from arjax import run_info

from arjax.models import nade_kernel, nade_native


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--reps", type=int, default=5)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  batch, num_dims = 128, 784
  print(json.dumps({"model": "env", "jax": jax.__version__, "device": run_info.device_description()}), flush=True)
  for num_hidden, num_params in [(500, 1), (500, 3), (500, 30), (100, 30), (100, 256)]:
    x = jnp.asarray(rng.integers(0, 2, (batch, num_dims)), jnp.float32)
    W = jnp.asarray(rng.normal(size=(num_dims, num_hidden)) * 0.05, jnp.float32)
    V = jnp.asarray(rng.normal(size=(num_dims, num_hidden, num_params)) * 0.05, jnp.float32)
    b, c = jnp.zeros((num_dims, num_params)), jnp.zeros((num_hidden,))
    probe = jnp.asarray(rng.normal(size=(batch, num_dims, num_params)), jnp.float32)
    record = {"model": "nade", "what": "grad_ms", "batch": batch, "num_hidden": num_hidden, "num_params": num_params}
    for name, kernel in [("fused", nade_native.nade_conditionals_fused), ("chunked", nade_kernel.nade_conditionals)]:
      grad = jax.jit(jax.grad(lambda W, c, V, b, kernel=kernel: jnp.sum(kernel(x, W, c, V, b) * probe),
                              argnums=(0, 1, 2, 3)))
      jax.block_until_ready(grad(W, c, V, b))
      times = []
      for _ in range(args.reps):
        start = time.perf_counter()
        jax.block_until_ready(grad(W, c, V, b))
        times.append(time.perf_counter() - start)
      record[name] = round(statistics.median(times) * 1e3, 1)
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
  main()
