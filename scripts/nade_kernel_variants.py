"""Measure NADE teacher-forced pass variants on binarized-MNIST shapes.

Prints one JSON line per (variant, batch):
  train: one jitted optax.adam step of mean-over-batch summed Bernoulli NLL, B=128;
  eval: jitted forward log-likelihood, B=1000.

Usage: python scripts/nade_kernel_variants.py [VARIANT ...] [--train-only]
Variants: reference, checkpoint_scan_c16, kernel_c8, kernel_c14, kernel_c16,
kernel_c28, kernel_c32, kernel_c16_2dev (batch sharded over 2 virtual CPU
devices; re-executes this script in a subprocess with XLA_FLAGS set, since the
flag must precede jax init).

  python scripts/nade_kernel_variants.py --xla-flag-sweep [--rounds N]

times kernel_c16's train step under each of XLA_FLAG_SETS (one subprocess per
setting, the settings interleaved in each round); each line carries its
``xla_flags``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

D, H = 784, 500
TRAIN_BATCH, EVAL_BATCH = 128, 1000
ALL = ["reference", "checkpoint_scan_c16", "kernel_c8", "kernel_c14", "kernel_c16", "kernel_c28", "kernel_c32",
       "kernel_c16_2dev"]
# XLA:CPU options that might speed up the kernel's small-K matrix products or its elementwise passes.
XLA_FLAG_SETS = [
    "",
    "--xla_cpu_enable_fast_math=true",
    "--xla_cpu_use_thunk_runtime=false",
    "--xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_DOT",
    "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT",
    "--xla_cpu_experimental_onednn_fusion_type=LIBRARY_FUSION_TYPE_DOT",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "--xla_cpu_enable_concurrency_optimized_scheduler=true",
    "--xla_cpu_prefer_vector_width=512",
    "--xla_cpu_use_fusion_emitters=false",
]


def _checkpoint_scan(x, W, c, V, b, chunk_size=16):
  """Baseline: autodiff through a checkpointed chunk scan (D divisible by C)."""
  import jax
  import jax.numpy as jnp

  B = x.shape[0]
  C = chunk_size
  lower = jnp.tril(jnp.ones((C, C), x.dtype), k=-1)

  @jax.checkpoint
  def step(a, chunk):
    xk, Wk, Vk = chunk  # [B, C], [C, H], [C, H, P]
    within = ((xk[:, None, :] * lower).reshape(B * C, C) @ Wk).reshape(B, C, -1)
    h = jax.nn.sigmoid(a[:, None] + within)  # [B, C, H]
    return a + xk @ Wk, jnp.einsum("nch,chp->ncp", h, Vk)

  xs = x.reshape(B, -1, C).transpose(1, 0, 2)
  _, outs = jax.lax.scan(step, jnp.broadcast_to(c, (B, c.shape[0])), (xs, W.reshape(-1, C, W.shape[1]), V.reshape(-1, C, *V.shape[1:])))
  return outs.transpose(1, 0, 2, 3).reshape(B, -1, V.shape[-1]) + b


def _measure(variant, train_only=False):
  import jax
  import jax.numpy as jnp
  import optax

  from arjax.models.nade_kernel import nade_conditionals, nade_conditionals_reference

  if variant == "reference":
    fn = nade_conditionals_reference
  elif variant == "checkpoint_scan_c16":
    fn = _checkpoint_scan
  else:
    C = int(variant.split("_c")[1].split("_")[0])

    def fn(*a):
      return nade_conditionals(*a, chunk_size=C)

  k = jax.random.split(jax.random.PRNGKey(0), 4)
  params = {
    "W": 0.01 * jax.random.normal(k[1], (D, H)),
    "c": jnp.zeros(H),
    "V": 0.01 * jax.random.normal(k[2], (D, H, 1)),
    "b": jnp.zeros((D, 1)),
  }

  def nll(p, x):
    logits = fn(x, p["W"], p["c"], p["V"], p["b"])[..., 0]
    return optax.sigmoid_binary_cross_entropy(logits, x).sum(1)  # [B]

  opt = optax.adam(1e-3)

  @jax.jit
  def train_step(p, s, x):
    loss, g = jax.value_and_grad(lambda p: nll(p, x).mean())(p)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s, loss

  eval_ll = jax.jit(lambda p, x: -nll(p, x))

  def data(B):
    x = (jax.random.uniform(k[0], (B, D)) < 0.3).astype(jnp.float32)
    if variant.endswith("_2dev"):
      mesh = jax.make_mesh((2,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
      x = jax.device_put(x, jax.NamedSharding(mesh, jax.P("batch")))
    return x

  def rate(run, B, steps):
    jax.block_until_ready(run())  # compile + warm up
    t = time.perf_counter()
    for _ in range(steps):
      out = run()
    jax.block_until_ready(out)
    return B * steps / (time.perf_counter() - t)

  slow = variant == "reference"
  x = data(TRAIN_BATCH)
  state = [params, opt.init(params)]

  def run_train():
    state[0], state[1], loss = train_step(state[0], state[1], x)
    return loss

  print(json.dumps({"variant": variant, "batch": TRAIN_BATCH, "train_ex_per_s": round(rate(run_train, TRAIN_BATCH, 2 if slow else 24), 1)}), flush=True)
  if slow or train_only:
    return  # reference: [1000, 784, 500] f32 intermediates are several GB
  xe = data(EVAL_BATCH)
  print(json.dumps({"variant": variant, "batch": EVAL_BATCH, "eval_ex_per_s": round(rate(lambda: eval_ll(params, xe), EVAL_BATCH, 3), 1)}), flush=True)


def flag_sweep(rounds):
  for r in range(rounds):
    for flags in XLA_FLAG_SETS:
      out = subprocess.run([sys.executable, __file__, "kernel_c16", "--train-only"], env=dict(os.environ, XLA_FLAGS=flags),
                           check=True, capture_output=True, text=True).stdout
      for line in out.splitlines():
        print(json.dumps({**json.loads(line), "round": r + 1, "xla_flags": flags}), flush=True)


def main(argv):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("variants", nargs="*", metavar="VARIANT", help=f"default: all of {', '.join(ALL)}")
  parser.add_argument("--train-only", action="store_true", help="skip the eval_ll figure")
  parser.add_argument("--xla-flag-sweep", action="store_true")
  parser.add_argument("--rounds", type=int, default=2, help="rounds of the flag sweep")
  args = parser.parse_args(argv)
  if unknown := [v for v in args.variants if v not in ALL]:
    parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(ALL)}")
  if args.xla_flag_sweep:
    return flag_sweep(args.rounds)
  for v in args.variants or ALL:
    if v.endswith("_2dev") and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
      env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
      subprocess.run([sys.executable, __file__, v] + ["--train-only"] * args.train_only, env=env, check=True)
    else:
      _measure(v, train_only=args.train_only)


if __name__ == "__main__":
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
  main(sys.argv[1:])
