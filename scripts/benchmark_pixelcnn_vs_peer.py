#!/usr/bin/env python
"""arjax's PixelCNN beside pytorch-generative's, same configuration, same machine, one JSON file.

    python scripts/benchmark_pixelcnn_vs_peer.py --peer-root ~/pg \
        --out experiments/results/benchmark_pixelcnn_vs_peer_cpu.json

Both at pytorch-generative's MNIST configuration (15 residual blocks, 2·16 = 32
residual features, 32 head features) on random binary 28 × 28 images:
`scripts/benchmark.py --models pixelcnn` (train at batch 128, 64 samples with the
cached sampler) and `../shared/peers/bench_torch.py --models peer_pixelcnn` (train at
batch 128, 64 samples with its 784 full passes, timed over the first calls and
extrapolated), run one after the other `--rounds` times so that both see the
same load. Writes every JSON line of both and the ratios of the medians over the
rounds (targets: sampling >= 20x, training >= 2x faster).
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_lines(command, env=None):
  out = subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=ROOT).stdout
  return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def pick(lines, model, what):
  return [line["value"] for line in lines if line.get("model") == model and line.get("what") == what]


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--peer-root", required=True, help="a checkout of pytorch-generative")
  parser.add_argument("--torch-python", default=str(pathlib.Path.home() / "torchref" / "bin" / "python"))
  parser.add_argument("--peer-script", default=str(ROOT.parent / "shared" / "peers" / "bench_torch.py"))
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  start = time.time()
  rounds = []
  for index in range(args.rounds):
    arjax_lines = run_lines([sys.executable, "scripts/benchmark.py", "--models", "pixelcnn",
                             "--what", "train,sample", "--batches", "128", "--samplers", "cached",
                             "--num-samples", "64"])
    peer_lines = run_lines([args.torch_python, args.peer_script, "--models", "peer_pixelcnn",
                            "--what", "train,sample", "--batches", "128", "--n-samples", "64",
                            "--peer-root", args.peer_root])
    rounds.append({"round": index, "arjax": arjax_lines, "peer": peer_lines, "loadavg_after": os.getloadavg()})
    print(json.dumps(rounds[-1]), flush=True)

  def median(side, model, what):
    values = [v for r in rounds for v in pick(r[side], model, what)]
    return statistics.median(values) if values else None

  arjax_train, peer_train = median("arjax", "pixelcnn", "train"), median("peer", "peer_pixelcnn", "train")
  arjax_sample, peer_sample = median("arjax", "pixelcnn", "sample"), median("peer", "peer_pixelcnn", "sample")
  summary = {
      "command": " ".join(sys.argv),
      "config": "PixelCNN 15 residual blocks, 32 residual features (16 inside a block), 32 head features, "
                "28x28x1 Bernoulli",
      "train_examples_per_s_batch128": {"arjax": arjax_train, "peer": peer_train},
      "train_speedup": arjax_train / peer_train if arjax_train and peer_train else None,
      "sample64_seconds": {"arjax_cached": arjax_sample, "peer_784_full_passes": peer_sample},
      "sample_speedup": peer_sample / arjax_sample if arjax_sample and peer_sample else None,
      "targets": {"sample_speedup": 20, "train_speedup": 2},
      "wall_time_s": time.time() - start,
      "rounds": rounds,
  }
  pathlib.Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
  print(json.dumps({k: summary[k] for k in ("train_examples_per_s_batch128", "train_speedup",
                                            "sample64_seconds", "sample_speedup")}))


if __name__ == "__main__":
  main()
