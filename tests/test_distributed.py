"""A two-process `jax.distributed` run on localhost: trains, checkpoints, resumes.

Two CPU processes (one device each, a coordinator on 127.0.0.1 at a free port) run
`python -m arjax train` on one workdir; Orbax writes the checkpoints from both, process 0 the
JSON files. A second invocation with more epochs resumes from `latest`, and the whole curve
equals that of one process training the same epochs straight through.
"""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from arjax import checkpoints
from arjax import config as config_lib
from arjax import train

_EXPERIMENT = '''
import os
from arjax.config import Config, OptimConfig, TrainConfig
from arjax.data import DataConfig
from arjax.models import NADEConfig

def get_config(variant=""):
  return Config(data=DataConfig(name=os.environ["TINY_DATA"]), model=NADEConfig(num_hidden=8),
                optim=OptimConfig(learning_rate=1e-2),
                train=TrainConfig(batch_size=24, num_epochs=2, eval_batch_size=36, num_samples=4))
'''


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_two_processes(tmp_path, workdir, *overrides) -> list[str]:
  port = _free_port()
  processes = []
  for process_id in range(2):
    env = dict(os.environ, TINY_DATA=str(tmp_path / "tiny.npz"), JAX_PLATFORMS="cpu",
               ARJAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", ARJAX_NUM_PROCESSES="2",
               ARJAX_PROCESS_ID=str(process_id))
    # One CPU device per process, two in all (the suite's other XLA flags stay).
    env["XLA_FLAGS"] = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", "")).strip()
    processes.append(subprocess.Popen(
        [sys.executable, "-m", "arjax", "train", str(tmp_path / "tiny.py"), "--workdir", str(workdir),
         *overrides], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = []
  for process in processes:
    try:
      out, _ = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
      for p in processes:
        p.kill()
      raise
    outputs.append(out)
  # Both logs in the failure: the process that failed first is often not the one reporting it.
  assert all(p.returncode == 0 for p in processes), "\n".join(
      f"--- process {i} (exit {p.returncode}) ---\n{out}" for i, (p, out) in enumerate(zip(processes, outputs)))
  return outputs


@pytest.fixture
def tiny_experiment(tmp_path):
  rng = np.random.default_rng(0)
  x = (rng.random((290, 36)) < 0.3).astype(np.uint8)
  np.savez(tmp_path / "tiny.npz", train=x[:192], valid=x[192:242], test=x[242:])
  (tmp_path / "tiny.py").write_text(_EXPERIMENT)
  return tmp_path


def test_two_processes_train_checkpoint_and_resume_like_one(tiny_experiment, tmp_path, monkeypatch):
  workdir = tmp_path / "two"
  first = _run_two_processes(tmp_path, workdir)
  assert all("epoch 2 (step 16)" in out for out in first)
  assert json.loads((workdir / "results.json").read_text())["epochs_run"] == 2
  assert checkpoints.manager(workdir, "latest").latest_step() == 2

  resumed = _run_two_processes(tmp_path, workdir, "train.num_epochs=3")
  assert all("after epoch 2" in out and "epoch 3 (step 24)" in out for out in resumed)
  metrics = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [m["epoch"] for m in metrics] == [1, 2, 3]
  results = json.loads((workdir / "results.json").read_text())
  assert results["epochs_run"] == 3 and "2×" in results["device"]

  monkeypatch.setenv("TINY_DATA", str(tmp_path / "tiny.npz"))
  _, config = config_lib.load_experiment(str(tmp_path / "tiny.py"))
  config = config_lib.apply_overrides(config, ["train.num_epochs=3"])
  straight = train.train_and_evaluate(config, tmp_path / "one")
  one_metrics = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
  np.testing.assert_allclose([m["train_nll"] for m in metrics], [m["train_nll"] for m in one_metrics],
                             rtol=2e-5)
  np.testing.assert_allclose([m["valid_nll"] for m in metrics], [m["valid_nll"] for m in one_metrics],
                             rtol=2e-5)
  assert results["test_nll_nats"] == pytest.approx(straight["test_nll_nats"], rel=2e-5)
