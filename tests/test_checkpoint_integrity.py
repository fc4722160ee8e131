"""Checkpoints that cannot be silently wrong, training that cannot hang, workdirs never half made
(issue 18 items 4-6): flipped, truncated and emptied files, NaN parameters, a failed Orbax save."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arjax import __main__ as cli
from arjax import checkpoints, config as config_lib, data, models, train

PARAMS = {"w": jnp.arange(2000.0).reshape(40, 50) / 7, "b": jnp.ones(7)}


def _damage(step_dir: pathlib.Path, how: str) -> None:
  """Damages every file that holds the parameters' bytes (OCDBT data files: Orbax may read
  either the per-process copy or the merged one)."""
  files = [f for f in (step_dir / "params").rglob("*") if f.is_file() and f.parent.name == "d"]
  assert files, f"no data files under {step_dir}"
  for file in files:
    DAMAGE[how](file)


def _flip(path: pathlib.Path, count: int) -> None:
  content = bytearray(path.read_bytes())
  middle = len(content) // 2
  content[middle:middle + count] = bytes(b ^ 0x5A for b in content[middle:middle + count])
  path.write_bytes(bytes(content))


DAMAGE = {
    "flip4": lambda f: _flip(f, 4),
    "flip64": lambda f: _flip(f, 64),
    "truncate": lambda f: f.write_bytes(f.read_bytes()[:f.stat().st_size // 2]),
    "empty": lambda f: f.write_bytes(b""),
}


@pytest.fixture
def two_steps(tmp_path):
  """A `latest` manager's directory holding steps 1 and 2 (step s saves PARAMS · s)."""
  saver = checkpoints.manager(tmp_path, "latest")
  for step in (1, 2):
    checkpoints.save(saver, step, {"epoch": step}, params={k: v * step for k, v in PARAMS.items()})
  checkpoints.close(saver)
  return tmp_path


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_step_is_an_error_naming_it_and_latest_falls_back(two_steps, damage):
  _damage(two_steps / "checkpoints" / "latest" / "2", damage)
  reader = checkpoints.manager(two_steps, "latest", create=False)
  with pytest.raises(checkpoints.DamagedCheckpointError, match=r"checkpoints/latest/2\b"):
    checkpoints.restore(reader, params=PARAMS)
  with pytest.warns(RuntimeWarning, match=r"latest/2.*using the previous step 1"):
    meta, restored = checkpoints.restore(reader, fall_back=True, params=PARAMS)
  assert meta == {"epoch": 1}
  np.testing.assert_array_equal(restored["params"]["w"], PARAMS["w"])


def test_a_sound_step_restores_without_a_warning(two_steps):
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    meta, restored = checkpoints.restore(checkpoints.manager(two_steps, "latest", create=False),
                                         fall_back=True, params=PARAMS)
  assert meta == {"epoch": 2}
  np.testing.assert_array_equal(restored["params"]["w"], 2 * PARAMS["w"])


def test_no_sound_step_left_is_an_error(two_steps):
  for step in ("1", "2"):
    _damage(two_steps / "checkpoints" / "latest" / step, "flip64")
  with pytest.raises(checkpoints.DamagedCheckpointError, match="no sound checkpoint left"):
    checkpoints.restore(checkpoints.manager(two_steps, "latest", create=False), fall_back=True, params=PARAMS)


def test_non_finite_parameters_are_refused(tmp_path):
  saver = checkpoints.manager(tmp_path, "best")
  checkpoints.save(saver, 3, {"epoch": 3}, params={"w": PARAMS["w"].at[1, 2].set(jnp.nan), "b": PARAMS["b"]})
  checkpoints.close(saver)
  with pytest.raises(checkpoints.DamagedCheckpointError, match=r"best/3: parameter \['w'\] holds NaN"):
    checkpoints.restore(checkpoints.manager(tmp_path, "best", create=False), params=PARAMS)


def test_a_reader_creates_nothing(tmp_path):
  checkpoints.manager(tmp_path / "elsewhere", "best", create=False)
  assert not (tmp_path / "elsewhere").exists()


# ------------------------------------------------------- in the training loop ---


@pytest.fixture
def tiny(tmp_path):
  rng = np.random.default_rng(0)
  images = (rng.random((260, 8)) < 0.3).astype(np.uint8)
  path = tmp_path / "tiny.npz"
  np.savez(path, train=images[:200], valid=images[200:230], test=images[230:])
  return path


def _config(path, **train_options):
  options = dict(batch_size=50, num_epochs=2, eval_batch_size=60, num_samples=0, log_every=2)
  options.update(train_options)
  return config_lib.Config(data=data.DataConfig(name=str(path)), model=models.FVSBNConfig(),
                           optim=config_lib.OptimConfig(learning_rate=3e-2),
                           train=config_lib.TrainConfig(**options))


def test_training_falls_back_from_a_damaged_latest_and_refuses_a_damaged_best(tiny, tmp_path, capsys):
  workdir = tmp_path / "run"
  train.train_and_evaluate(_config(tiny), workdir)
  assert sorted(int(p.name) for p in (workdir / "checkpoints" / "latest").iterdir() if p.name.isdigit()) == [1, 2]
  _damage(workdir / "checkpoints" / "latest" / "2", "flip64")
  with pytest.warns(RuntimeWarning, match="using the previous step 1"):
    results = train.train_and_evaluate(_config(tiny, num_epochs=3), workdir)
  assert results["epochs_run"] == 3
  assert "Resuming" in capsys.readouterr().out
  metrics = [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert metrics == [1, 2, 3]  # epoch 2 trained again from epoch 1's state

  best_step = max(int(p.name) for p in (workdir / "checkpoints" / "best").iterdir() if p.name.isdigit())
  _damage(workdir / "checkpoints" / "best" / str(best_step), "truncate")
  with pytest.raises(checkpoints.DamagedCheckpointError, match=rf"checkpoints/best/{best_step}\b"):
    checkpoints.load_trained_model(workdir)
  assert cli.main(["eval", str(workdir)]) == 2
  assert f"checkpoints/best/{best_step}" in capsys.readouterr().err


def test_a_failed_resume_leaves_config_json_as_it_was(tiny, tmp_path):
  workdir = tmp_path / "run"
  train.train_and_evaluate(_config(tiny, num_epochs=1), workdir)
  before = (workdir / "config.json").read_bytes()
  for step_dir in (workdir / "checkpoints" / "latest").iterdir():
    if step_dir.name.isdigit():
      _damage(step_dir, "flip64")
  with pytest.raises(checkpoints.DamagedCheckpointError):
    train.train_and_evaluate(_config(tiny, num_epochs=2), workdir)  # num_epochs may change on resume
  assert (workdir / "config.json").read_bytes() == before


def test_a_start_that_fails_writes_nothing(tmp_path):
  workdir = tmp_path / "run"
  with pytest.raises(FileNotFoundError):
    train.train_and_evaluate(_config(tmp_path / "no_such_data.npz"), workdir)
  assert not workdir.exists()
  rng = np.random.default_rng(0)
  np.savez(tmp_path / "d.npz", train=rng.random((50, 4)) < 0.5, valid=rng.random((10, 4)) < 0.5,
           test=rng.random((10, 4)) < 0.5)
  config = _config(tmp_path / "d.npz")
  config = config_lib.Config(data=config.data, model=models.RNNConfig(num_hidden=4), train=config.train)
  with pytest.raises(ValueError, match="zero size"):  # a zero-size parameter Orbax could not save
    with pytest.MonkeyPatch.context() as patch:
      patch.setattr(models.RNN, "__init__", _rnn_with_an_empty_parameter)
      train.train_and_evaluate(config, workdir)
  assert not workdir.exists()


_real_rnn_init = models.RNN.__init__


def _rnn_with_an_empty_parameter(self, *args, **kwargs):
  _real_rnn_init(self, *args, **kwargs)
  self.unused = nnx.Param(jnp.zeros((0, 3)))


# ------------------------------------------------------------ no hang ---

_FAILING_SAVE = textwrap.dedent("""
    import runpy, sys
    import jax.numpy as jnp
    from arjax import checkpoints
    checkpoints.check_savable = lambda *args, **kwargs: None  # let a zero-size array reach Orbax
    real_items = checkpoints.optimizer_items
    checkpoints.optimizer_items = lambda state: {**real_items(state), "empty": jnp.zeros((0,))}
    sys.argv = ["arjax", *sys.argv[1:]]
    runpy.run_module("arjax", run_name="__main__")
""")

_EXPERIMENT = textwrap.dedent("""
    from arjax import config, data, models
    def get_config(variant):
      return config.Config(data=data.DataConfig(name={data!r}), model=models.FVSBNConfig(),
                           train=config.TrainConfig(batch_size=50, num_epochs=1, eval_batch_size=60,
                                                    num_samples=0))
""")

_STRAY_THREAD = textwrap.dedent("""
    import runpy, sys, threading, time
    threading.Thread(target=time.sleep, args=(600,)).start()  # non-daemon: would keep the process up
    sys.argv = ["arjax", *sys.argv[1:]]
    runpy.run_module("arjax", run_name="__main__")
""")


@pytest.mark.parametrize("script, extra, message", [
    (_FAILING_SAVE, [], "Cannot save arrays with zero size"),
    (_STRAY_THREAD, ["train.batch_size=0"], "train.batch_size expects an int >= 1; got 0"),
], ids=["orbax_save_fails", "stray_thread"])
def test_an_error_in_training_ends_the_process_with_its_message(tiny, tmp_path, script, extra, message):
  """Before, a failed Orbax save left a non-daemon thread that kept the process alive (>300 s)."""
  experiment = tmp_path / "tiny_fvsbn.py"
  experiment.write_text(_EXPERIMENT.format(data=str(tiny)))
  command = [sys.executable, "-c", script, "train", str(experiment), "--workdir", str(tmp_path / "run"), *extra]
  start = time.time()
  result = subprocess.run(command, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 2, result.stderr[-3000:]
  assert message in result.stderr
  assert time.time() - start < 200


def test_a_nan_loss_in_the_first_epoch_does_not_claim_a_checkpoint(tiny, tmp_path, monkeypatch):
  real_step = train._make_train_step

  def poisoned(*args, **kwargs):
    step = real_step(*args, **kwargs)
    return lambda state, *rest: (lambda out: (out[0], out[1] * np.nan))(step(state, *rest))
  monkeypatch.setattr(train, "_make_train_step", poisoned)
  with pytest.raises(train.NonFiniteLossError, match="at epoch 1.*No checkpoint had been saved yet") as error:
    train.train_and_evaluate(_config(tiny), tmp_path / "run")
  assert "epoch 0" not in str(error.value)
  assert not any((tmp_path / "run" / "checkpoints" / "latest").glob("[0-9]*"))
