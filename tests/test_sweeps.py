"""Sweeps declared in experiment files: points, names, skipping, array slices and the report."""

import csv
import json

import pytest

from arjax import __main__ as cli
from arjax import sweeps


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

  rng = np.random.default_rng(0)
  rows = rng.integers(0, 2, (400, 1, 6))
  images = (np.repeat(rows, 6, axis=1) ^ (rng.random((400, 6, 6)) < 0.05)).astype(np.uint8)
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
