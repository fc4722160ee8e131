"""Sweeps declared in experiment files: points, names, skipping, array slices and the report."""

import csv
import json

import pytest

from arjax import __main__ as cli
from arjax import sweeps
from conftest import noisy_stripes


def test_grid_is_the_product_with_the_first_field_slowest():
  grid = sweeps.Grid({"model.num_hidden": [8, 16], "optim.learning_rate": [1e-3, 3e-4]},
                     overrides=["train.seed=1"])
  assert grid.points() == [
      ("model.num_hidden=8", "optim.learning_rate=0.001"),
      ("model.num_hidden=8", "optim.learning_rate=0.0003"),
      ("model.num_hidden=16", "optim.learning_rate=0.001"),
      ("model.num_hidden=16", "optim.learning_rate=0.0003")]
  assert grid.overrides == ("train.seed=1",)
  assert sweeps.point_name(grid.points()[1]) == "model.num_hidden=8,optim.learning_rate=0.0003"


def test_override_sets_keep_their_order_and_tuples_read_back():
  sets = sweeps.OverrideSets([{"model.hidden_sizes": (8, 8)}, ["model.hidden_sizes=(16,)"]])
  assert sets.points() == [("model.hidden_sizes=(8, 8)",), ("model.hidden_sizes=(16,)",)]
  assert sweeps.point_name(sets.points()[0]) == "model.hidden_sizes=8-8"


@pytest.mark.parametrize("bad, match", [
    (lambda: sweeps.Grid({"model.num_hidden": []}), "at least one value"),
    (lambda: sweeps.Grid({"model.num_hidden": "100"}), "at least one value"),
    (lambda: sweeps.OverrideSets([["num_hidden"]]), "field.path=value"),
    (lambda: sweeps.load_sweep("nade_binarized_mnist"), "EXPERIMENT:SWEEP"),
    (lambda: sweeps.load_sweep("nade_binarized_mnist:nope"), "declares no sweep 'nope'"),
    (lambda: sweeps.planned_points("nade_binarized_mnist:hidden", index=3, count=3), "--index"),
])
def test_bad_sweeps_say_what_to_write(bad, match):
  with pytest.raises(ValueError, match=match):
    bad()


def test_index_and_count_split_the_points_between_array_tasks():
  spec = "nade_binarized_mnist:hidden"
  slices = [[p["name"] for p in sweeps.planned_points(spec, index=i, count=2)] for i in range(2)]
  assert slices == [["model.num_hidden=100", "model.num_hidden=500"], ["model.num_hidden=250"]]


@pytest.fixture
def sweep_file(tmp_path):
  """An experiment file with a two-point sweep on tiny binary data made here."""
  import numpy as np

  images = noisy_stripes(400)
  data = tmp_path / "stripes.npz"
  np.savez(data, train=images[:300], valid=images[300:350], test=images[350:])
  path = tmp_path / "tiny.py"
  path.write_text(f'''
from arjax.config import Config, OptimConfig, TrainConfig
from arjax.data import DataConfig
from arjax.models import NADEConfig
from arjax.sweeps import Grid

SWEEPS = {{"hidden": Grid({{"model.num_hidden": [2, 16]}})}}

def get_config(variant=""):
  return Config(data=DataConfig(name={str(data)!r}), model=NADEConfig(num_hidden=4),
                optim=OptimConfig(learning_rate=3e-2),
                train=TrainConfig(batch_size=50, num_epochs=2, eval_batch_size=50, num_samples=0,
                                  samples_every=1))
''')
  return path


def test_smoke_sweep_trains_skips_finished_points_and_reports_sorted_by_valid(sweep_file, tmp_path,
                                                                               capsys):
  root = tmp_path / "sweep"
  spec = f"{sweep_file}:hidden"
  assert cli.main(["sweep", spec, "--root", str(root), "--index", "1", "--count", "2",
                   "train.num_epochs=3"]) == 0
  assert sorted(p.name for p in root.iterdir()) == ["model.num_hidden=16"]
  config = json.loads((root / "model.num_hidden=16" / "config.json").read_text())
  assert config["config"]["model"]["num_hidden"] == 16
  assert config["config"]["train"]["num_epochs"] == 3  # command-line overrides reach every point

  partial = sweeps.report(spec, root)
  assert partial["pending"] == ["model.num_hidden=2"] and partial["best"] == "model.num_hidden=16"

  capsys.readouterr()
  assert cli.main(["sweep", spec, "--root", str(root), "train.num_epochs=3"]) == 0
  out = capsys.readouterr().out
  assert "model.num_hidden=16 is finished; skipped" in out and "training model.num_hidden=2" in out

  assert cli.main(["sweep", spec, "--root", str(root), "--report"]) == 0
  with open(root / "sweep_report.csv") as f:
    rows = list(csv.DictReader(f))
  valid = [float(r["valid_nll_nats"]) for r in rows]
  assert len(rows) == 2 and valid == sorted(valid)
  for row in rows:
    results = json.loads((root / row["point"] / "results.json").read_text())
    assert float(row["test_nll_nats"]) == pytest.approx(results["test_nll_nats"])
    assert int(row["best_epoch"]) == results["best_epoch"]
  markdown = (root / "sweep_report.md").read_text()
  assert f"Best point (lowest validation NLL): `{rows[0]['point']}`" in markdown
  assert json.loads((root / "sweep_report.json").read_text())["best"] == rows[0]["point"]


def _tiny_config(path, **optim):
  from arjax import config as config_lib
  from arjax import data, models

  return config_lib.Config(
      data=data.DataConfig(name=str(path)), model=models.NADEConfig(num_hidden=8),
      optim=config_lib.OptimConfig(**{"learning_rate": 1e-2, **optim}),
      train=config_lib.TrainConfig(batch_size=50, num_epochs=2, eval_batch_size=50, num_samples=0))


def test_vmapped_seeds_train_like_the_loop_one_seed_at_a_time(sweep_file, tmp_path):
  import numpy as np

  from arjax import seeds, train

  config = _tiny_config(tmp_path / "stripes.npz", schedule="exponential", decay_rate=0.9)
  together = seeds.train_vmapped(config, [0, 5], learning_rates=[1e-2, 3e-2])
  # Seed 0 at the config's rate is what the training loop gives for train.seed=0.
  loop = train.train_and_evaluate(config, tmp_path / "loop")
  metrics = [json.loads(line) for line in (tmp_path / "loop" / "metrics.jsonl").read_text().splitlines()]
  np.testing.assert_allclose(np.array(together["train_nll"])[:, 0], [m["train_nll"] for m in metrics],
                             rtol=1e-5)
  np.testing.assert_allclose(np.array(together["valid_nll"])[:, 0], [m["valid_nll"] for m in metrics],
                             rtol=1e-5)
  # Seed 5 at 3e-2 alone (its rate as the config's): the scaled update is the same update.
  alone = seeds.train_vmapped(_tiny_config(tmp_path / "stripes.npz", learning_rate=3e-2,
                                           schedule="exponential", decay_rate=0.9), [5])
  np.testing.assert_allclose(np.array(together["train_nll"])[:, 1], np.array(alone["train_nll"])[:, 0],
                             rtol=1e-5)
  np.testing.assert_allclose(together["test_nll"][1], alone["test_nll"][0], rtol=1e-5)
  assert together["test_nll"][0] != pytest.approx(together["test_nll"][1])  # different models
  assert loop["epochs_run"] == 2


def test_vmapped_seeds_refuse_what_they_cannot_do(sweep_file, tmp_path):
  from arjax import seeds

  config = _tiny_config(tmp_path / "stripes.npz")
  with pytest.raises(ValueError, match="distinct"):
    seeds.train_vmapped(config, [1, 1])
  with pytest.raises(ValueError, match="one per seed"):
    seeds.train_vmapped(config, [0, 1], learning_rates=[1e-3])


def test_train_seeds_on_the_command_line_writes_one_result_per_seed(sweep_file, tmp_path):
  workdir = tmp_path / "seeds"
  assert cli.main(["train", str(sweep_file), "--workdir", str(workdir), "--seeds", "2",
                   "--learning-rates", "0.01,0.03", "train.num_epochs=1", "train.seed=3"]) == 0
  saved = json.loads((workdir / "seeds.json").read_text())
  assert saved["seeds"] == [3, 4] and saved["learning_rates"] == [0.01, 0.03]
  assert len(saved["test_nll"]) == 2 and len(saved["valid_nll"]) == 1
