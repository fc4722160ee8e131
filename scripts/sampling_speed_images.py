#!/usr/bin/env python
"""Seconds to draw 64 samples with the cached step vs the full-pass sampler, for the LMConv and
Transformer image models (untrained: the time does not depend on the weights).

  python scripts/sampling_speed_images.py --out experiments/results/speed/sampling_speed_images_cpu.json

Each sampler is compiled ahead of time (`jax.jit(...).lower(...).compile()`), so the compile time
is reported apart and the run is timed once, after the compilation. The full pass costs D passes
of the whole network (O(D²) for the convolutions, O(D³) for attention), so it is timed only up to
`--full-pass-max-side`; at 28 × 28 its cost would be minutes to hours on a CPU.

Measured on the 2-core AMD EPYC CPU under a load of ~20 from other jobs (niced, so the wall times
are inflated; the ratios are what compares), 39 min in all: LMConv (16 features, 4 layers) 0.45 s
cached vs 36.4 s full pass at 14 × 14 (81x), 3.4 s cached at 28 × 28; Transformer (2 blocks of
64) 47.4 s vs 1,399 s at 14 × 14 (29.5x), 446 s cached at 28 × 28
(experiments/results/speed/sampling_speed_images_cpu.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
from flax import nnx

from arjax import models, run_info, sampling

# The sizes that the CPU experiments train (lmconv_binarized_mnist:cpu_hour) or could train.
MODELS = {
    "lmconv": lambda: models.LMConvConfig(num_features=16, num_layers=4, num_orderings=4),
    "transformer": lambda: models.TransformerConfig(num_layers=2, num_heads=4, embed_dim=64,
                                                    position_embedding="row_column"),
}


def time_sampler(model, num_samples: int, use_cache: bool) -> dict:
  graphdef, state = nnx.split(model)
  shape = (num_samples, *model.event_shape)
  args = (graphdef, state, jax.random.key(0), jnp.float32(1.0),
          jnp.zeros(shape, model.head.value_dtype), jnp.zeros(shape, bool), None)
  start = time.perf_counter()
  compiled = sampling._sample.lower(*args, use_cache=use_cache).compile()
  compile_seconds = time.perf_counter() - start
  start = time.perf_counter()
  jax.block_until_ready(compiled(*args[1:]))
  return {"compile_s": round(compile_seconds, 3), "seconds": round(time.perf_counter() - start, 3)}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="lmconv,transformer")
  parser.add_argument("--sides", default="14,28", help="image sides H = W to time")
  parser.add_argument("--full-pass-max-side", type=int, default=14)
  parser.add_argument("--num-samples", type=int, default=64)
  parser.add_argument("--out", default=None, help="JSON file for the results (default: stdout only)")
  args = parser.parse_args()
  rows = []
  started = time.time()
  for name in args.models.split(","):
    for side in (int(s) for s in args.sides.split(",")):
      model = MODELS[name]().build((side, side, 1), rngs=nnx.Rngs(0))
      row = {"model": name, "config": repr(MODELS[name]()), "image": [side, side, 1],
             "num_samples": args.num_samples, "cached": time_sampler(model, args.num_samples, True)}
      if side <= args.full_pass_max_side:
        row["full_pass"] = time_sampler(model, args.num_samples, False)
        row["speedup"] = round(row["full_pass"]["seconds"] / row["cached"]["seconds"], 1)
      print(json.dumps(row), flush=True)
      rows.append(row)
  result = {"command": " ".join(sys.argv), "device": run_info.device_description(), "jax": jax.__version__,
            "loadavg_at_end": os.getloadavg(), "wall_s": round(time.time() - started, 1), "rows": rows}
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)
  print(json.dumps({k: v for k, v in result.items() if k != "rows"}))


if __name__ == "__main__":
  main()
