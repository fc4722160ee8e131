#!/usr/bin/env python
"""Speed of arjax models: one JSON line per figure, fields `model, what, batch, value, unit`.

  what = train    examples/s of the real training step (Adam, `arjax.train`'s jitted step)
         eval_ll  examples/s of the jitted log-likelihood
         sample   seconds for --num-samples full samples (cached step and full-pass sampler)
         compile  seconds to trace and compile the train step (first call)
         flops    achieved FLOP/s of the train step: XLA's cost analysis of the compiled step
                  (`flops` per call) over its median time; `fraction_of_peak` against `peak`
         memory   bytes the compiled train step needs (XLA's memory analysis: arguments +
                  outputs + temporaries − donated aliases), and the process's peak RSS
         peak     the machine's measured float32 matmul peak (FLOP/s of a jitted N × N matmul,
                  the same device), the reference of `flops`

The fields match `../shared/peers/bench_torch.py`, so the two can run one after
the other on the same machine and be compared as ratios:

  python scripts/benchmark.py --models nade,fvsbn --batches 128,512
  ~/torchref/bin/python ../shared/peers/bench_torch.py --models ref_nade_loop,ref_nade \
      --what train,eval,sample --batches 128,512

Data: random binary 28×28 (Bernoulli(0.5)), fixed seed, as the PyTorch script.

BENCHMARKS.md (every family, the machine and the date, and the PyTorch peer figures when
`~/torchref/bin/python` exists) comes from one command:

  python scripts/benchmark.py --markdown BENCHMARKS.md

Throughput = batch / median step time (`value_best` uses the fastest step);
`other_cores` is the CPU that other processes used meanwhile (contention).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
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
    "gated_pixelcnn": lambda: models.GatedPixelCNNConfig(),  # 8 gated layers of 32 features
    "transformer": lambda: models.TransformerConfig(),  # 2 blocks, 4 heads, width 64, over 784 pixels
    "lmconv": lambda: models.LMConvConfig(),  # 64 features, 4 residual layers, 8 orderings
}
#: Families whose events are images [H, W, C] rather than vectors [D].
EVENT_SHAPES = {"pixelcnn": (28, 28, 1), "gated_pixelcnn": (28, 28, 1), "lmconv": (28, 28, 1)}


def _cpu_jiffies():
  with open("/proc/stat") as f:
    busy = [int(t) for t in f.readline().split()[1:]]
  with open("/proc/self/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
  return time.perf_counter(), sum(busy[:3]) + sum(busy[5:8]), int(fields[11]) + int(fields[12])


def _other_cores(start, end) -> float:
  hz = os.sysconf("SC_CLK_TCK")
  return round(max((end[1] - start[1]) - (end[2] - start[2]), 0) / hz / max(end[0] - start[0], 1e-9), 3)


_OUT = {"file": None}  # --out: a JSON-lines file the figures are appended to as well


def emit(model, what, batch, value, unit, **extra):
  line = json.dumps({"model": model, "what": what, "batch": batch, "value": round(value, 4),
                     "unit": unit, **extra})
  print(line, flush=True)
  if _OUT["file"]:
    with open(_OUT["file"], "a") as f:
      f.write(line + "\n")


def time_calls(fn, *, min_reps: int, budget_s: float, warmed: bool = False):
  """Median and min wall time of `fn()` (which must block), plus the contention seen. A call
  that alone outlasts `budget_s` (a full-pass sampler: minutes) is timed once."""
  if not warmed:
    fn()  # warm-up (and compile)
  start, times = _cpu_jiffies(), []
  while sum(times) < budget_s or (len(times) < min_reps and max(times, default=0.0) < budget_s):
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
      if "memory" in args.what:
        memory = compiled.memory_analysis()
        needed = (memory.argument_size_in_bytes + memory.output_size_in_bytes
                  + memory.temp_size_in_bytes - memory.alias_size_in_bytes)
        emit(name, "memory", batch, needed / 2**20, "MiB", temp_mib=round(memory.temp_size_in_bytes / 2**20, 2),
             peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))

      def run_step():
        holder["state"], loss = compiled(holder["state"], data, indices, key)
        loss.block_until_ready()

      if "train" in args.what or "flops" in args.what:
        median, best, other, reps = time_calls(run_step, min_reps=args.min_reps, budget_s=args.budget)
        emit(name, "train", batch, batch / median, "examples/s", value_best=round(batch / best, 1),
             median_s=round(median, 5), reps=reps, other_cores=other)
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        if "flops" in args.what and cost and cost.get("flops"):
          extra = {"fraction_of_peak": round(cost["flops"] / median / args.peak, 4)} if args.peak else {}
          emit(name, "flops", batch, cost["flops"] / median, "FLOP/s", flops_per_step=cost["flops"],
               **extra)

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
      median, best, other, reps = time_calls(run, min_reps=args.min_reps, budget_s=args.budget, warmed=True)
      emit(name, "sample", args.num_samples, median, "s", sampler=label, value_best=round(best, 4),
           first_call_s=round(first, 3), reps=reps, other_cores=other)


def matmul_peak(size: int = 2048, *, min_reps: int, budget_s: float) -> float:
  """FLOP/s of a jitted float32 `size × size` matmul on the default device (2·size³ per call)."""
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
  matmul = jax.jit(lambda a, b: a @ b)
  median, best, other, reps = time_calls(lambda: matmul(a, b).block_until_ready(),
                                         min_reps=min_reps, budget_s=budget_s)
  flops = 2.0 * size ** 3
  emit("matmul", "peak", size, flops / median, "FLOP/s", value_best=round(flops / best, 1),
       median_s=round(median, 5), reps=reps, other_cores=other)
  return flops / best  # the best call: the peak the device reaches


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="nade,fvsbn")
  parser.add_argument("--what", default="train,eval,sample,compile,flops,memory")
  parser.add_argument("--batches", default="128,512")
  parser.add_argument("--num-samples", type=int, default=64)
  parser.add_argument("--min-reps", type=int, default=3)
  parser.add_argument("--budget", type=float, default=4.0, help="seconds of timed repeats per figure")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--samplers", default="cached,full_pass",
                      help="which samplers 'sample' times (full_pass: D full passes; minutes for a PixelCNN)")
  parser.add_argument("--out", default=None, help="also append the JSON lines to this file")
  parser.add_argument("--markdown", default=None, metavar="BENCHMARKS.md",
                      help="run every family (and the PyTorch peers when ~/torchref exists) and write "
                           "the table to this file; the JSON lines go to experiments/results/speed/")
  parser.add_argument("--render", action="store_true",
                      help="with --markdown: write the table from today's JSON lines without running")
  parser.add_argument("--no-env", action="store_true", help=argparse.SUPPRESS)  # a second part of one run
  args = parser.parse_args()
  if args.markdown:
    return write_markdown(args)
  _OUT["file"] = args.out
  args.what = set(args.what.split(","))
  args.batches = [int(b) for b in args.batches.split(",")]
  if not args.no_env:
    emit("env", "env", 0, 0, "", jax=jax.__version__, device=run_info.device_description(),
         python=sys.version.split()[0], loadavg=os.getloadavg())
  args.peak = None
  if "flops" in args.what:
    if args.no_env and args.out and pathlib.Path(args.out).exists():  # the first part measured it
      peaks = [json.loads(l) for l in pathlib.Path(args.out).read_text().splitlines() if '"peak"' in l]
      args.peak = peaks[-1]["value_best"] if peaks else None
    if args.peak is None:
      args.peak = matmul_peak(min_reps=args.min_reps, budget_s=args.budget)
  for name in args.models.split(","):
    if name not in MODELS:
      raise SystemExit(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    bench_model(name, args)


# --markdown: which families run which sampler (the full pass of the image families and the
# Transformer is D = 784 passes of the whole network per sample: many minutes on a CPU).
#: The vector families whose full-pass sampler (D network passes) the table times beside the
#: cached one: seconds to a minute each. For the others it takes minutes per call (LSTM: 784
#: passes of a 784-step recurrence) and shows nothing the cached figure does not.
FULL_PASS_FAMILIES = "nade,fvsbn,made"
CACHED_ONLY_FAMILIES = "nade_chunked,lstm,eonade"
IMAGE_FAMILIES = "pixelcnn,gated_pixelcnn,transformer,lmconv"
TORCH_PYTHON = pathlib.Path.home() / "torchref" / "bin" / "python"
#: A checkout of github.com/EugenHotaj/pytorch-generative (see ../shared/peers/README.md).
PEER_ROOT = pathlib.Path.home() / "pg"
TORCH_SCRIPT = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "peers" / "bench_torch.py"


def _run_lines(command: list[str], out: pathlib.Path) -> list[dict]:
  """Runs a benchmark command whose figures are appended to `out` as they come (so a run cut
  short keeps what it measured); returns the lines it added."""
  print("+", " ".join(command), flush=True)
  before = out.read_text().count("\n") if out.exists() else 0
  subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
  return [json.loads(line) for line in out.read_text().splitlines()[before:] if line.startswith("{")]


def write_markdown(args) -> None:
  """Runs every family (and the PyTorch peers) and writes the table to `args.markdown`; with
  `--render`, only writes the table from the JSON lines an earlier run left."""
  here = pathlib.Path(__file__).resolve()
  results_dir = here.parent.parent / "experiments" / "results" / "speed"
  stamp = time.strftime("%Y-%m-%d")
  out = results_dir / f"benchmark_all_families_cpu_{stamp}.jsonl"
  torch_out = results_dir / f"benchmark_torch_peers_cpu_{stamp}.jsonl"
  if not args.render:
    start = time.time()
    out.unlink(missing_ok=True)
    common = ["--num-samples", str(args.num_samples), "--min-reps", str(args.min_reps),
              "--budget", str(args.budget), "--out", str(out)]
    _run_lines([sys.executable, str(here), "--models", FULL_PASS_FAMILIES, "--batches", "128", *common], out)
    _run_lines([sys.executable, str(here), "--models", CACHED_ONLY_FAMILIES, "--batches", "128",
                "--samplers", "cached", "--no-env", *common], out)
    _run_lines([sys.executable, str(here), "--models", IMAGE_FAMILIES, "--batches", "32",
                "--samplers", "cached", "--no-env", *common], out)
    if TORCH_PYTHON.exists() and TORCH_SCRIPT.exists():
      print("+ PyTorch peers", flush=True)
      peers, peer_root = "ref_nade_loop,ref_nade,ref_made", []
      if (PEER_ROOT / "pytorch_generative").is_dir():  # pytorch-generative's own models too
        peers, peer_root = peers + ",peer_nade,peer_made500,peer_pixelcnn", ["--peer-root", str(PEER_ROOT)]
      text = subprocess.run([str(TORCH_PYTHON), str(TORCH_SCRIPT), "--models", peers,
                             "--what", "params,train,eval,sample", "--batches", "128", *peer_root],
                            check=True, capture_output=True, text=True).stdout
      torch_out.write_text("".join(line + "\n" for line in text.splitlines() if line.startswith("{")))
    with out.open("a") as f:  # the whole command's wall time, peers included
      f.write(json.dumps({"model": "run", "what": "wall", "batch": 0, "value": round(time.time() - start, 1),
                          "unit": "s"}) + "\n")
  lines = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
  torch_lines = ([json.loads(line) for line in torch_out.read_text().splitlines()]
                 if torch_out.exists() else [])
  pathlib.Path(args.markdown).write_text(_markdown(lines, torch_lines, stamp))
  print(f"wrote {args.markdown}")


def _markdown(lines: list[dict], torch_lines: list[dict], stamp: str) -> str:
  env = next(line for line in lines if line["model"] == "env")
  peak = next((line for line in lines if line["what"] == "peak"), None)

  def figure(model, what, fmt, **match):
    for line in lines:
      if line["model"] == model and line["what"] == what and all(line.get(k) == v for k, v in match.items()):
        return fmt(line)
    return "—"

  models = list(dict.fromkeys(line["model"] for line in lines if line["model"] not in ("env", "matmul", "run")))
  wall = next((line["value"] for line in lines if line["model"] == "run"), None)
  rows = ["| model | params | batch | train ex/s | eval ex/s | 64 samples, cached (s) | 64 samples, full pass (s) "
          "| compile (s) | train step (MiB) | train GFLOP/s | of peak |", "|" + "---|" * 11]
  for model in models:
    rows.append("| " + " | ".join([
        model,
        figure(model, "params", lambda l: f"{l['value'] / 1e6:.2f} M"),
        figure(model, "train", lambda l: str(l["batch"])),
        figure(model, "train", lambda l: f"{l['value']:,.0f}"),
        figure(model, "eval_ll", lambda l: f"{l['value']:,.0f}"),
        figure(model, "sample", lambda l: f"{l['value']:.3g}", sampler="cached"),
        figure(model, "sample", lambda l: f"{l['value']:.3g}", sampler="full_pass"),
        figure(model, "compile", lambda l: f"{l['value']:.1f}"),
        figure(model, "memory", lambda l: f"{l['value']:.1f}"),
        figure(model, "flops", lambda l: f"{l['value'] / 1e9:.2f}"),
        figure(model, "flops", lambda l: f"{100 * l['fraction_of_peak']:.1f}%" if "fraction_of_peak" in l else "—"),
    ]) + " |")
  text = [
      "# Benchmarks", "",
      "Regenerate: `python scripts/benchmark.py --markdown BENCHMARKS.md` (every family; batch 128, "
      "32 for the image families and the Transformer, whose steps take seconds on a CPU; "
      "then the PyTorch peers of `../shared/peers/bench_torch.py` when `~/torchref` exists, "
      "pytorch-generative's NADE, MADE and PixelCNN among them when `~/pg` holds its checkout). "
      "The figures are medians of repeated calls on random binary 28 × 28 data; the JSON lines are in "
      f"`experiments/results/speed/benchmark_all_families_cpu_{stamp}.jsonl`.", "",
      f"Machine: {env['device']}; jax {env['jax']}; date {stamp}; load average at the start "
      f"{', '.join(f'{x:.1f}' for x in env['loadavg'])}"
      + (" (the cores were shared with other jobs, so compare figures within one table, not across "
         "runs)." if max(env["loadavg"]) > 2.5 else ".")
      + (f" The command took {wall / 60:.0f} min." if wall else ""), "",
      f"Matmul peak (float32 2048 × 2048, best call): "
      + (f"{peak['value_best'] / 1e9:.1f} GFLOP/s" if peak else "not measured") + ". "
      "`train GFLOP/s` is XLA's cost analysis of the compiled train step over its median time; "
      "`train step (MiB)` is XLA's memory analysis of that step (arguments + outputs + temporaries − "
      "donated buffers). Full-pass sampling (784 network passes per sample) is timed for NADE, FVSBN "
      "and MADE only; for the others it takes minutes per call (—). A fraction of peak above 100% means the matmul peak was "
      "measured while other jobs held the cores (it is the best call, yet below the device's peak). "
      "XLA's cost analysis does not see inside custom calls: NADE's fused C++ kernel (`nade`) is "
      "counted as almost no FLOPs, so its FLOP/s and fraction of peak are undercounts. A row with "
      "— where others have figures was cut short (the run ended before it). The PyTorch peers train "
      "at batch 128, arjax's image families here at 32 (its PixelCNN beside pytorch-generative's at "
      "128, both at the peer's configuration: `scripts/benchmark_pixelcnn_vs_peer.py`).", "",
      *rows, ""]
  if torch_lines:
    text += ["## PyTorch peers (same machine, same run)", "",
             "| model | what | batch | value | unit |", "|---|---|---|---|---|"]
    for line in torch_lines:
      if line.get("model") != "env" and line.get("what") != "wall":  # wall: the script's own time
        text.append(f"| {line['model']} | {line['what']}{' (' + line['sampler'] + ')' if 'sampler' in line else ''} "
                    f"| {line['batch']} | {line['value']:,.4g} | {line['unit']} |")
    text.append("")
  else:
    text += ["PyTorch peers: not in this run (they run after the families when `~/torchref/bin/python` "
             "exists; see ../shared/peers/README.md).", ""]
  return "\n".join(text)


if __name__ == "__main__":
  main()
