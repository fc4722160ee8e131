"""Cost of one training step for K seeds in one vmapped program against K times one seed's step.

    python scripts/vmapped_step_cost.py --out experiments/results/speed/vmapped_step_cost_cpu.json

`scripts/vmapped_seeds.py` times whole runs (compilation and validation included); this script
isolates the step: the same jitted Adam step as `arjax.seeds.train_vmapped` (gradient of the mean
NLL, Adam update, parameters donated), on one fixed batch, for one seed and for K seeds stacked
along a leading axis. `step_ratio` = K · (one seed's step) / (K seeds' step): above 1 the vmapped
program does K seeds' work in less time than K single steps; the most a whole run can gain from
one program beyond that is its one compilation and one dispatch per step.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from arjax import likelihood, models, run_info

#: (name, builder of one model for a seed and D).
MODELS = {
    "fvsbn": lambda num_dims, seed: models.FVSBN((num_dims,), rngs=nnx.Rngs(seed)),
    "nade50_cumsum": lambda num_dims, seed: models.NADE((num_dims,), num_hidden=50, kernel="cumsum",
                                                        rngs=nnx.Rngs(seed)),
    "nade20_cumsum": lambda num_dims, seed: models.NADE((num_dims,), num_hidden=20, kernel="cumsum",
                                                        rngs=nnx.Rngs(seed)),
}


def _step_ms(step, params, opt_state, x, repeats: int) -> float:
  params, opt_state, loss = step(params, opt_state, x)  # compile, and warm the buffers
  loss.block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    params, opt_state, loss = step(params, opt_state, x)
  loss.block_until_ready()
  return (time.perf_counter() - start) / repeats * 1e3


def measure(name: str, num_dims: int, batch_size: int, num_seeds: int, repeats: int) -> dict:
  build = MODELS[name]
  graphdef, params, rest = nnx.split(build(num_dims, 0), nnx.Param, ...)
  stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves),
                         *[nnx.split(build(num_dims, s), nnx.Param, ...)[1] for s in range(num_seeds)])
  tx = optax.adam(1e-3)

  def one_step(params, opt_state, x):
    loss, grads = jax.value_and_grad(
        lambda p: -jnp.mean(likelihood.log_prob(nnx.merge(graphdef, p, rest), x)))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  x = jnp.asarray(np.random.default_rng(0).integers(0, 2, (batch_size, num_dims)), jnp.float32)
  single = _step_ms(jax.jit(one_step, donate_argnums=(0, 1)), params, tx.init(params), x, repeats)
  vmapped = _step_ms(jax.jit(jax.vmap(one_step, in_axes=(0, 0, None)), donate_argnums=(0, 1)),
                     stacked, jax.vmap(tx.init)(stacked), x, max(1, repeats // num_seeds))
  return {"model": name, "num_dims": num_dims, "batch_size": batch_size, "num_seeds": num_seeds,
          "num_params_per_seed": int(sum(p.size for p in jax.tree.leaves(params))),
          "one_seed_step_ms": single, "vmapped_step_ms": vmapped,
          "step_ratio": num_seeds * single / vmapped}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--num-seeds", type=int, default=4)
  parser.add_argument("--batch-size", type=int, default=100)
  parser.add_argument("--repeats", type=int, default=40)
  parser.add_argument("--note", default="", help="the conditions of the run, kept in the JSON")
  parser.add_argument("--out", type=pathlib.Path,
                      default=pathlib.Path("experiments/results/speed/vmapped_step_cost_cpu.json"))
  args = parser.parse_args()
  rows = []
  for name in MODELS:
    for num_dims in (784, 100):
      rows.append(measure(name, num_dims, args.batch_size, args.num_seeds, args.repeats))
      print(json.dumps(rows[-1]), flush=True)
  result = {"script": "scripts/vmapped_step_cost.py", "rows": rows,
            "device": run_info.device_description(), "jax_version": jax.__version__,
            "git_commit": run_info.git_commit(), "note": args.note,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
  run_info.write_json(args.out, result)


if __name__ == "__main__":
  main()
