"""The uses (arjax/uses/) and their commands, on one tiny model trained once for the module."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from arjax import __main__ as cli
from arjax import config as config_lib
from arjax import checkpoints, data, models, train, uses


def _stripes(num, rng):
  """Binary 6×6 images, label 0: every row the same random pattern; label 1: every column."""
  labels = rng.integers(0, 2, num)
  patterns = rng.integers(0, 2, (num, 6))
  images = np.where(labels[:, None, None] == 0, patterns[:, None, :], patterns[:, :, None])  # [N, 6, 6]
  images = images ^ (rng.random((num, 6, 6)) < 0.03)
  return images.reshape(num, 36).astype(np.uint8), labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(workdir, data path, results) of a NADE trained for one epoch on labelled stripes."""
  folder = tmp_path_factory.mktemp("uses")
  rng = np.random.default_rng(0)
  splits = {name: _stripes(num, rng) for name, num in (("train", 400), ("valid", 100), ("test", 100))}
  path = folder / "stripes.npz"
  np.savez(path, **{f"x_{name}": x for name, (x, _) in splits.items()},
           **{f"y_{name}": y for name, (_, y) in splits.items()})
  config = config_lib.Config(
      data=data.DataConfig(name=str(path)), model=models.NADEConfig(num_hidden=16),
      optim=config_lib.OptimConfig(learning_rate=3e-2),
      train=config_lib.TrainConfig(batch_size=10, num_epochs=1, eval_batch_size=100, num_samples=0))
  results = train.train_and_evaluate(config, folder / "run")
  return folder / "run", path, results


@pytest.fixture(scope="module")
def model_and_data(trained):
  workdir, _, _ = trained
  model, config, dataset = checkpoints.load_trained_model(workdir)
  return model, config, dataset


def _last_json(capsys):
  return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# ------------------------------------------------------------------ score ---


def test_score_writes_scores_summary_and_heatmaps(trained, tmp_path, capsys):
  workdir, path, results = trained
  assert cli.main(["score", str(workdir), str(path), "--out", str(tmp_path / "s")]) == 0
  summary = _last_json(capsys)
  with np.load(tmp_path / "s" / "scores.npz") as scores:
    nll, bits, per_dim = scores["nll_nats"], scores["bits_per_dim"], scores["per_dim_nll"]
  assert nll.shape == bits.shape == (100,) and per_dim.shape == (100, 36)
  np.testing.assert_allclose(per_dim.sum(1), nll, rtol=1e-5)
  np.testing.assert_allclose(bits, nll / (36 * np.log(2)), rtol=1e-6)
  np.testing.assert_allclose(summary["mean_nll_nats"], results["test_nll_nats"], rtol=1e-5)
  assert summary == json.loads((tmp_path / "s" / "summary.json").read_text())
  assert summary["count"] == 100 and summary["median_nll_nats"] > 0 and summary["std_nll_nats"] > 0
  assert (tmp_path / "s" / "heatmaps.png").stat().st_size > 0


def test_score_binarizes_8bit_data_for_a_binary_model(trained, model_and_data, tmp_path, capsys):
  workdir, _, _ = trained
  model, config, _ = model_and_data
  grey = np.random.default_rng(1).integers(0, 256, (30, 36)).astype(np.uint8)
  np.savez(tmp_path / "grey.npz", train=grey, valid=grey[:10], test=grey[:10])
  dataset = uses.load_data_like(config.data, model, str(tmp_path / "grey.npz"))
  assert dataset.num_levels == 2 and set(np.unique(dataset.splits["test"])) <= {0, 1}
  assert cli.main(["score", str(workdir), str(tmp_path / "grey.npz"), "--out", str(tmp_path / "g")]) == 0
  assert _last_json(capsys)["count"] == 10
  # Dynamic binarization: the same valid/test arrays, and a training split binarized once.
  dynamic = dataclasses.replace(config.data, name=str(tmp_path / "grey.npz"), binarize="dynamic")
  like = uses.load_data_like(dynamic, model)
  np.testing.assert_array_equal(like.splits["test"], data.load_dataset(dynamic).splits["test"])
  assert set(np.unique(like.splits["train"])) <= {0, 1}


def test_score_rejects_data_of_another_shape(model_and_data, tmp_path):
  model, config, _ = model_and_data
  small = np.zeros((12, 49), np.uint8)
  np.savez(tmp_path / "small.npz", train=small, valid=small, test=small)
  with pytest.raises(ValueError, match=r"shape \(49,\)"):
    uses.load_data_like(config.data, model, str(tmp_path / "small.npz"))


# -------------------------------------------------------------------- OOD ---


def test_ood_metrics_on_a_hand_computed_example():
  # Thresholds from the top: 0.8 (TP 1, FP 0), 0.4 (1, 1), 0.35 (2, 1), 0.1 (2, 2).
  metrics = uses.ood_metrics([0.1, 0.4], [0.35, 0.8])
  assert metrics["auroc"] == pytest.approx(0.75)  # 3 of 4 pairs ordered
  assert metrics["aupr"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
  assert metrics["fpr_at_95_tpr"] == pytest.approx(0.5)
  assert uses.ood_metrics([1, 2], [2, 3])["auroc"] == pytest.approx(3.5 / 4)  # a tie counts ½


def test_ood_metrics_match_brute_force_with_ties():
  rng = np.random.default_rng(3)
  scores_in, scores_out = rng.integers(0, 12, 57), rng.integers(3, 15, 41)
  pairs = scores_out[:, None] - scores_in[None, :]
  scores = np.concatenate([scores_in, scores_out])
  is_out = np.arange(len(scores)) >= len(scores_in)
  precision_at = lambda t: np.mean(is_out[scores >= t])
  fpr_at, tpr_at = lambda t: np.mean(scores_in >= t), lambda t: np.mean(scores_out >= t)
  metrics = uses.ood_metrics(scores_in, scores_out)
  assert metrics["auroc"] == pytest.approx(np.mean(pairs > 0) + 0.5 * np.mean(pairs == 0))
  assert metrics["aupr"] == pytest.approx(np.mean([precision_at(t) for t in scores_out]))
  assert metrics["fpr_at_95_tpr"] == pytest.approx(min(fpr_at(t) for t in scores if tpr_at(t) >= 0.95))


def test_ood_metrics_chance_for_the_same_distribution_and_perfect_for_noise():
  rng = np.random.default_rng(0)
  shuffled = rng.permutation(rng.normal(size=4000))
  chance = uses.ood_metrics(shuffled[:2000], shuffled[2000:])
  assert abs(chance["auroc"] - 0.5) < 0.04 and abs(chance["aupr"] - 0.5) < 0.04
  assert abs(chance["fpr_at_95_tpr"] - 0.95) < 0.03
  perfect = uses.ood_metrics(rng.normal(size=500), rng.normal(10.0, 1.0, 300))
  assert perfect == {"auroc": 1.0, "aupr": 1.0, "fpr_at_95_tpr": 0.0}
  with pytest.raises(ValueError, match="NaN"):
    uses.ood_metrics([0.0, np.nan], [1.0])


def test_auroc_of_a_trained_model_is_chance_on_its_own_data_and_one_on_noise(model_and_data):
  model, _, dataset = model_and_data
  rng = np.random.default_rng(0)
  x = np.concatenate([dataset.splits["valid"], dataset.splits["test"]])  # 200 held-out stripes
  nll = uses.nll_scores(model, x)["nll_nats"]
  shuffled = rng.permutation(len(x))
  chance = uses.ood_metrics(nll[shuffled[:100]], nll[shuffled[100:]])  # two halves of one set
  assert abs(chance["auroc"] - 0.5) < 0.12
  noise = uses.uniform_noise(model.head, x, rng)
  assert uses.ood_metrics(nll, uses.nll_scores(model, noise)["nll_nats"])["auroc"] > 0.95


def test_ood_command_scores_every_set(trained, tmp_path, capsys):
  workdir, _, _ = trained
  other = _stripes(40, np.random.default_rng(5))[0]
  np.savez(tmp_path / "other.npz", train=other, valid=other, test=other)
  # The model as its own background: the likelihood ratio is 0 everywhere, so it cannot separate.
  assert cli.main(["ood", str(workdir), "--ood", "noise", "--ood", "flip", "--ood", "rotate90",
                   "--ood", str(tmp_path / "other.npz"), "--background", str(workdir),
                   "--out", str(tmp_path / "ood")]) == 0
  result = _last_json(capsys)
  assert result == json.loads((tmp_path / "ood" / "ood.json").read_text())
  table = result["ood"]
  assert list(table) == ["noise", "flip", "rotate90", str(tmp_path / "other.npz")]
  assert table["noise"]["nll"]["auroc"] > 0.95  # uniform noise is far less likely than stripes
  assert table["noise"]["count"] == table["flip"]["count"] == 100
  for row in table.values():
    assert all(0.0 <= value <= 1.0 for value in row["nll"].values())
    assert row["likelihood_ratio"]["auroc"] == 0.5 and row["likelihood_ratio"]["fpr_at_95_tpr"] == 1.0
  assert [panel["ood"] for panel in result["histogram"]["panels"]] == list(table)
  assert (tmp_path / "ood" / "histogram.png").stat().st_size > 0


def test_ood_transforms_are_exact_and_stay_in_the_support(model_and_data):
  model, config, dataset = model_and_data
  x = dataset.splits["test"]
  image = x.reshape(-1, 6, 6)
  np.testing.assert_array_equal(uses.flip_vertical(x, (6, 6, 1)).reshape(-1, 6, 6), image[:, ::-1])
  np.testing.assert_array_equal(
      uses.rotate90(uses.rotate90(x, (6, 6, 1)), (6, 6, 1)).reshape(-1, 6, 6), image[:, ::-1, ::-1])
  noise = uses.ood_inputs("noise", x, model=model, data_config=config.data, image_shape=(6, 6, 1))
  assert noise.shape == x.shape and noise.dtype == x.dtype and set(np.unique(noise)) == {0, 1}


def test_unknown_ood_set_raises_a_clear_error(trained, model_and_data, tmp_path, monkeypatch, capsys):
  workdir, _, _ = trained
  model, config, dataset = model_and_data
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
  with pytest.raises(ValueError, match="Unknown OOD set 'no_such_set'.*noise, flip, rotate90"):
    uses.ood_inputs("no_such_set", dataset.splits["test"], model=model, data_config=config.data,
                    image_shape=dataset.image_shape)
  assert cli.main(["ood", str(workdir), "--ood", "no_such_set", "--out", str(tmp_path / "o")]) == 2
  assert "Unknown OOD set" in capsys.readouterr().err
  with pytest.raises(ValueError, match="not images"):
    uses.ood_inputs("flip", dataset.splits["test"], model=model, data_config=config.data, image_shape=None)


# ------------------------------------------------------------------ probe ---


def test_probe_command_reports_accuracies(trained, capsys):
  workdir, _, _ = trained
  assert cli.main(["probe", str(workdir), "--max-train", "300"]) == 0
  result = _last_json(capsys)
  assert result["num_train"] == 300 and result["num_test"] == 100
  for probe in ("features", "pixels"):
    assert 0.0 <= result[probe]["test_accuracy"] <= 1.0 and 0.0 <= result[probe]["train_accuracy"] <= 1.0
  assert result["features"]["num_features"] == 16 and result["pixels"]["num_features"] == 36


def test_linear_probe_separates_separable_classes():
  rng = np.random.default_rng(0)
  centers = rng.normal(0.0, 4.0, (3, 5))
  labels = rng.integers(0, 3, 600)
  features = centers[labels] + rng.normal(size=(600, 5))
  result = uses.fit_linear_probe(features[:400], labels[:400], features[400:], labels[400:])
  assert result["test_accuracy"] > 0.95 and result["train_accuracy"] > 0.95


def test_probe_needs_labels(model_and_data):
  model, _, dataset = model_and_data
  unlabelled = dataclasses.replace(dataset, labels={split: None for split in data.SPLITS})
  with pytest.raises(ValueError, match="'binarized_mnist' has no labels.*data.name=mnist"):
    uses.linear_probe(model, unlabelled, dataset_name="binarized_mnist")


# ---------------------------------------------------------------- inpaint ---


@pytest.mark.parametrize("mask", uses.MASKS)
def test_inpainting_keeps_the_observed_pixels(model_and_data, mask):
  model, _, dataset = model_and_data
  x = dataset.splits["test"][:5]
  observed = uses.observed_mask(mask, dataset.image_shape, len(x), seed=1)
  assert observed.shape == (5, 36) and 0 < observed.mean() < 1
  completions = uses.inpaint(model, jax.random.key(0), x, observed, num_completions=3)
  assert completions.shape == (3, 5, 36)
  np.testing.assert_array_equal(completions[:, observed], np.broadcast_to(x[observed], (3, observed.sum())))
  assert not np.all(completions == x)  # the unobserved pixels were sampled
  # Raster order: only the top half is a prefix of the ordering.
  assert uses.is_prefix(observed, np.arange(36)) == (mask == "top_half")


def test_inpaint_command_writes_a_grid(trained, tmp_path, capsys):
  workdir, _, _ = trained
  out = tmp_path / "inpaint.png"
  assert cli.main(["inpaint", str(workdir), "--mask", "bottom_half", "--num", "4", "--completions", "2",
                   "--out", str(out)]) == 0
  result = _last_json(capsys)
  assert result["exact_conditioning"] is False and "prefix" in result["note"]
  import imageio.v3 as iio
  picture = iio.imread(out)
  assert picture.ndim == 3 and picture.shape[0] > 4 * 20 and picture.shape[1] > 4 * 20  # 4 labelled rows
  with pytest.raises(ValueError, match="Unknown mask"):
    uses.observed_mask("diagonal", (6, 6, 1), 2)


def test_uses_report_records_every_part_and_goes_on_after_a_failure(trained, tmp_path, capsys):
  import importlib.util
  import pathlib
  path = pathlib.Path(__file__).parent.parent / "scripts" / "uses_report.py"
  spec = importlib.util.spec_from_file_location("uses_report", path)
  report_script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(report_script)
  workdir, _, _ = trained
  assert report_script.main([str(workdir), "--name", "tiny", "--ood", "noise", "--ood", "no_such_set",
                             "--max-train", "300",  # the shapes of the probe test: compiled once
                             "--results-dir", str(tmp_path), "--docs-dir", str(tmp_path)]) == 1
  report = json.loads((tmp_path / "uses_tiny.json").read_text())
  assert "Unknown OOD set" in report["ood"]["ood"]["no_such_set"]["error"]
  assert report["ood"]["ood"]["noise"]["nll"]["auroc"] > 0.95
  assert report["probe"]["data"] == report["ood"]["in_distribution"]["data"]  # the stripes have labels
  assert report["inpaint"]["exact_conditioning"] is True
  for part in ("curves", "ood", "probe", "inpaint"):
    assert report[part]["seconds"] >= 0 and report[part]["command"].startswith("python -m arjax")
  for picture in ("tiny_ood_histogram.png", "tiny_inpaint_top_half.png", "tiny_training_curves.png"):
    assert (tmp_path / picture).stat().st_size > 0
  assert "experiment" not in report  # scripts/results_table.py reads only training results
  out = capsys.readouterr().out
  assert "| noise | 0.9" in out or "| noise | 1.000" in out
  assert "| no_such_set | — | — | — |" in out and "raw pixels (36)" in out
