"""The command line after a failure: how long it takes to exit, and with what status and message.

    python scripts/hardening_cli_checks.py [--out experiments/results/hardening_cli_checks.json]

Cases, each a fresh `python -m arjax` process on a tiny generated dataset (260 × 8 binary):
  failed_orbax_save  a zero-size array handed to Orbax at the first save (the zero-size check
                     that now refuses such models up front is switched off), which used to leave
                     a non-daemon Orbax thread that kept the process alive for > 300 s;
  zero_size_param    the same model with the check on: refused before any work;
  damaged_best       `eval` of a workdir whose `best` parameter files were flipped in 64 bytes
                     (it printed "nll_nats": NaN with exit 0 before the checksums).
Last run (experiments/results/hardening_cli_checks.json, 2-core AMD EPYC CPU at load ~20 from
other jobs): every case exits with status 2 and its message, 0.5-0.7 s after the message
(processes of 53-87 s, mostly import, compile and one epoch at that load).
Writes one JSON object with each case's exit status, wall seconds (whole process, and from its
`error:` line to its exit) and that line.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent

EXPERIMENT = textwrap.dedent("""
    from arjax import config, data, models
    def get_config(variant):
      return config.Config(data=data.DataConfig(name={data!r}), model=models.FVSBNConfig(),
                           train=config.TrainConfig(batch_size=50, num_epochs=2, eval_batch_size=60,
                                                    num_samples=0))
""")

RUN_CLI = textwrap.dedent("""
    import runpy, sys
    import jax.numpy as jnp
    from flax import nnx
    from arjax import checkpoints, models
    if sys.argv[1] == "failing_save":  # the zero-size check off: Orbax meets the array at the first save
      checkpoints.check_savable = lambda *args, **kwargs: None
      real_items = checkpoints.optimizer_items
      checkpoints.optimizer_items = lambda state: {**real_items(state), "empty": jnp.zeros((0,))}
    if sys.argv[1] == "zero_size":  # a model with an empty parameter, the check on
      real_init = models.FVSBN.__init__
      def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.empty = nnx.Param(jnp.zeros((0, 3)))
      models.FVSBN.__init__ = init
    sys.argv = ["arjax", *sys.argv[2:]]
    runpy.run_module("arjax", run_name="__main__")
""")


def _cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return platform.processor() or platform.machine()


def _run(mode: str, args: list[str], timeout: float) -> dict:
  """Runs one case; times the whole process and, separately, from its `error:` line to its exit."""
  start = time.time()
  process = subprocess.Popen([sys.executable, "-c", RUN_CLI, mode, *args], stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True, cwd=ROOT,
                             env={**os.environ, "JAX_PLATFORMS": "cpu"})
  lines, error_time = [], None
  for line in process.stderr:  # ends when the process (and every thread of it) has ended
    lines.append(line.rstrip("\n"))
    if line.startswith("error:") and error_time is None:
      error_time = time.time()
    if time.time() - start > timeout:
      process.kill()
      break
  status = process.wait()
  end = time.time()
  errors = [line for line in lines if line.startswith("error:")] or lines[-1:]
  return {"exit_status": status, "wall_seconds": round(end - start, 2),
          "seconds_from_error_message_to_exit": None if error_time is None else round(end - error_time, 2),
          "message": errors[-1][:400] if errors else ""}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", default=str(ROOT / "experiments/results/hardening_cli_checks.json"))
  parser.add_argument("--timeout", type=float, default=400.0)
  args = parser.parse_args()
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    rng = np.random.default_rng(0)
    images = (rng.random((260, 8)) < 0.3).astype(np.uint8)
    np.savez(tmp / "tiny.npz", train=images[:200], valid=images[200:230], test=images[230:])
    experiment = tmp / "tiny_fvsbn.py"
    experiment.write_text(EXPERIMENT.format(data=str(tmp / "tiny.npz")))
    results["failed_orbax_save"] = _run("failing_save", ["train", str(experiment), "--workdir", str(tmp / "a")],
                                        args.timeout)
    results["zero_size_param"] = _run("zero_size", ["train", str(experiment), "--workdir", str(tmp / "b")],
                                      args.timeout)
    results["zero_size_param"]["workdir_created"] = (tmp / "b").exists()
    trained = _run("plain", ["train", str(experiment), "--workdir", str(tmp / "c")], args.timeout)
    best = tmp / "c" / "checkpoints" / "best"
    step = max(int(p.name) for p in best.iterdir() if p.name.isdigit())
    for file in (best / str(step) / "params").rglob("*"):
      if file.is_file() and file.parent.name == "d":
        content = bytearray(file.read_bytes())
        middle = len(content) // 2
        content[middle:middle + 64] = bytes(b ^ 0x5A for b in content[middle:middle + 64])
        file.write_bytes(bytes(content))
    results["damaged_best"] = _run("plain", ["eval", str(tmp / "c")], args.timeout)
    results["damaged_best"]["training_exit_status"] = trained["exit_status"]
  report = {"command": "python scripts/hardening_cli_checks.py", "machine": _cpu_name(),
            "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(), "cases": results}
  pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  pathlib.Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  main()
