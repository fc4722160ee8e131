"""The command line explains itself (experiments listed, every config field shown with its type,
value and comment, defaults in every help), and `train EXP --data my.npz` with the step-based
cadence of the generic experiments: validation every N steps, a run length in steps."""

import json
import pathlib

import numpy as np
import pytest

from arjax import __main__ as cli
from arjax import config as config_lib


def _help(capsys, *argv) -> str:
  with pytest.raises(SystemExit) as exit_info:
    cli.main([*argv, "--help"])
  assert exit_info.value.code == 0
  return capsys.readouterr().out


def test_train_help_lists_every_experiment_with_its_summary(capsys):
  text = _help(capsys, "train")
  experiments = config_lib.list_experiments()
  assert {"nade", "made", "fvsbn", "nade_binarized_mnist"} <= {name for name, _ in experiments}
  for name, summary in experiments:
    assert name in text and summary.split()[0] in text
  assert "--data PATH" in text


def test_only_help_reads_the_experiment_files(monkeypatch, tmp_path, capsys):
  """Parsing every experiment file for the help's list is not done for other commands (it cost
  every CLI call that time, and CPython 3.11's `ast.parse` can fail deep in a caller's stack)."""
  def refuse():
    raise AssertionError("the experiment files were parsed")

  monkeypatch.setattr(config_lib, "list_experiments", refuse)
  assert cli.main(["eval", str(tmp_path / "missing")]) == 2
  assert "not a training workdir" in capsys.readouterr().err


@pytest.mark.parametrize("command, shown", [
    ("train", "(default: None)"), ("show", "experiments"), ("eval", "(default: test)"),
    ("sample", "(default: 64)"), ("curves", "(default: None)"), ("score", "(default: test)"),
    ("ood", "(default: 0)"), ("probe", "(default: 10000)"), ("inpaint", "(default: top_half)"),
    ("classify", "(default: uniform)")])
def test_every_subcommand_help_shows_defaults(capsys, command, shown):
  text = " ".join(_help(capsys, command).split())  # argparse wraps lines
  assert shown in text
  assert "(default: best)" in text or command in ("train", "show", "curves")


def test_show_prints_every_field_with_type_value_and_comment(capsys):
  assert cli.main(["show", "nade", "optim.learning_rate=0.01"]) == 0
  text = capsys.readouterr().out
  _, config = config_lib.load_experiment("nade")
  rows = config_lib.describe(config)
  leaves = [row for row in rows if row[2]]
  assert len(leaves) > 30
  for path, kind, value, comment in leaves:
    assert f"{path}: {kind} = " in text, path
    assert comment, f"{path} has no comment in its dataclass"
  assert "optim.learning_rate: float = 0.01" in text  # the override is applied
  assert "peak Adam learning rate" in text
  assert "train.num_steps: int | None = 10000" in text


def test_field_comments_come_from_the_line_or_the_lines_above():
  comments = config_lib._field_comments(config_lib.TrainConfig)
  assert comments["batch_size"] == "examples per Adam step"  # at the end of the line
  assert comments["num_steps"].startswith("The run's length in Adam steps")  # above the field
  assert set(comments) == {f for f in config_lib.TrainConfig.__dataclass_fields__}


def test_show_of_an_unknown_experiment_is_a_clear_error(capsys):
  assert cli.main(["show", "no_such_experiment"]) == 2
  assert "known experiments" in capsys.readouterr().err


def test_train_with_data_validates_every_n_steps(tmp_path, capsys):
  rng = np.random.default_rng(0)
  rows = (rng.random((260, 20)) < np.linspace(0.1, 0.9, 20)).astype(np.uint8)  # D = 20: not images
  np.savez(tmp_path / "mine.npz", train=rows[:200], valid=rows[200:230], test=rows[230:])
  workdir = tmp_path / "run"
  # 200 rows, batch 50: 4 steps per epoch; 30 steps = 8 epochs; a validation after every
  # epoch that completes 10 steps since the last one (epochs 3, 6) and at the end (epoch 8).
  argv = ["train", "nade:smoke", "--data", str(tmp_path / "mine.npz"), "--workdir", str(workdir),
          "train.num_steps=30", "train.eval_every_steps=10", "train.patience=None"]
  assert cli.main(argv) == 0
  out = capsys.readouterr().out
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in records] == [3, 6, 8]
  assert [r["step"] for r in records] == [12, 24, 32]
  assert "\r" not in out and out.count("epoch ") >= 3  # one plain line per validation
  assert "not images" in out  # said once, no sample grid
  assert not (workdir / "samples").exists()
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["overrides"][0] == f"data.name={tmp_path / 'mine.npz'}"
  results = json.loads((workdir / "results.json").read_text())
  assert results["epochs_run"] == 8 and np.isfinite(results["test_nll_nats"])
  # `sample` says the data are not images and writes .npy.
  assert cli.main(["sample", str(workdir), "--num", "5", "--out", str(tmp_path / "s.png")]) == 0
  captured = capsys.readouterr()
  assert "not images" in captured.err
  assert np.load(tmp_path / "s.npy").shape == (5, 20)


def test_schedule_spans_the_run_length_in_steps():
  from arjax import train

  optim = config_lib.OptimConfig(learning_rate=1.0, schedule="cosine")
  steps = config_lib.TrainConfig(num_steps=1000)
  for steps_per_epoch in (3, 40, 500):  # the same run length on data of any size
    epochs = train.run_epochs(steps, steps_per_epoch)
    assert epochs * steps_per_epoch >= 1000 > (epochs - 1) * steps_per_epoch
    _, schedule = train.make_optimizer(optim, steps_per_epoch, epochs)
    assert float(schedule(500)) == pytest.approx(0.5, abs=0.01)
  assert train.run_epochs(config_lib.TrainConfig(num_epochs=7), 3) == 7


def test_prior_l2_is_scaled_by_the_training_set_size():
  import jax.numpy as jnp
  from arjax import train

  optim = config_lib.OptimConfig(learning_rate=1.0, prior_l2=10.0)
  params = {"w": jnp.array([-1.0])}
  grads = {"w": jnp.array([0.05])}  # the data's gradient pushes w down
  directions = {}
  for num_train in (10, 1000):
    tx, _ = train.make_optimizer(optim, 1, 1, num_train=num_train)
    updates, _ = tx.update(grads, tx.init(params), params)
    directions[num_train] = float(jnp.sign(updates["w"][0]))
  # Adam's first step is the sign of 0.05 + (10 / N)·w: the prior wins on 10 rows (w moves up,
  # towards 0) and loses on 1000 (the data's gradient moves it down).
  assert directions == {10: 1.0, 1000: -1.0}
  with pytest.raises(ValueError, match="num_train"):
    train.make_optimizer(optim, 1, 1)


def test_order_agnostic_nade_can_select_on_the_exact_nll_of_a_few_orderings(tmp_path, capsys):
  from arjax import checkpoints, evaluation

  rng = np.random.default_rng(1)
  rows = (rng.random((120, 12)) < np.linspace(0.2, 0.8, 12)).astype(np.uint8)
  np.savez(tmp_path / "mine.npz", train=rows[:80], valid=rows[80:100], test=rows[100:])
  workdir = tmp_path / "run"
  assert cli.main(["train", "eonade_binarized_mnist:smoke", "--data", str(tmp_path / "mine.npz"),
                   "--workdir", str(workdir), "train.num_epochs=1", "train.valid_exact_orderings=2",
                   "train.valid_exact_examples=15"]) == 0
  assert "valid exact (2 orderings, 15 examples)" in capsys.readouterr().out
  record = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert "exact NLL of the 2-ordering ensemble" in record["valid_metric"]
  model, _, dataset = checkpoints.load_trained_model(workdir, num_masks=2)
  exact = -np.mean(evaluation.dataset_log_prob(model, dataset.splits["valid"][:15]))
  assert record["valid_nll"] == pytest.approx(exact, rel=1e-5)


def _python2_npy(array: np.ndarray) -> bytes:
  """`array` as a version 1.0 .npy whose header writes the shape with Python 2's long suffix
  (`(4L, 3L)`), as the MADE authors' binarized_mnist.npz does; NumPy reads it with a warning."""
  shape = "(" + "".join(f"{n}L, " for n in array.shape).rstrip(", ") + ("," if array.ndim == 1 else "") + ")"
  header = f"{{'descr': '{array.dtype.str}', 'fortran_order': False, 'shape': {shape}, }}"
  header += " " * (63 - (10 + len(header)) % 64) + "\n"
  return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + array.tobytes()


def test_python2_npz_loads_without_numpys_warning(tmp_path):
  import warnings
  import zipfile

  from arjax import data

  rows = np.random.default_rng(0).integers(0, 2, (30, 16)).astype(np.float32)
  path = tmp_path / "made_layout.npz"
  with zipfile.ZipFile(path, "w") as archive:
    for name, part in (("train_data", rows[:20]), ("valid_data", rows[20:25]), ("test_data", rows[25:])):
      archive.writestr(f"{name}.npy", _python2_npy(part))
  with pytest.warns(UserWarning, match="Python 2"):  # the file does carry the old header
    with np.load(path) as archive:
      archive["train_data"]
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    dataset = data.load_dataset(data.DataConfig(name=str(path)))
  np.testing.assert_array_equal(dataset.splits["train"], rows[:20])
