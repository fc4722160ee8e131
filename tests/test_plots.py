"""The pictures (arjax/plots.py and the picture functions of arjax/uses and arjax/images):
axes, legends, colour bars and captions are drawn, and the data land where they should."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from arjax import __main__ as cli
from arjax import images, plots, uses


def _records(valid, train=None):
  train = train if train is not None else [v + 5.0 for v in valid]
  return [{"epoch": e + 1, "train_nll": t, "valid_nll": v, "best_valid_nll": min(valid[:e + 1]),
           "learning_rate": 1e-3, "epoch_seconds": 1.0} for e, (t, v) in enumerate(zip(train, valid))]


def _close_to(picture, rgb, tolerance=30):
  """bool `[H, W]`: pixels within `tolerance` of the colour `rgb` in every channel."""
  return np.all(np.abs(picture.astype(int) - np.array(rgb)) <= tolerance, axis=-1)


_BLUE, _ORANGE, _RED = (31, 119, 180), (255, 127, 14), (214, 39, 40)


def _dark_text_rows(picture):
  """Rows of `picture` that hold dark (text or axis) pixels."""
  return np.flatnonzero(np.sum(picture.max(-1) < 80, axis=1) > 0)


def test_training_curves_draw_both_curves_and_the_best_epoch():
  picture = plots.training_curves_picture(_records([120.0, 100.0, 90.0, 95.0, 97.0]), width=4, height=3)
  assert picture.shape == (300, 400, 3) and picture.dtype == np.uint8
  assert _close_to(picture, _BLUE).sum() > 100 and _close_to(picture, _ORANGE).sum() > 100
  # The red dot (the lowest red pixels; the legend's marker is above) sits at epoch 3, the
  # column where the train curve (valid + 5 here) also has its lowest point.
  rows, columns = np.nonzero(_close_to(picture, _RED, tolerance=20))
  blue_rows, blue_columns = np.nonzero(_close_to(picture, _BLUE))
  epoch_3_column = np.median(blue_columns[blue_rows >= blue_rows.max() - 2])
  dot = rows >= rows.max() - 6
  assert dot.sum() > 10 and abs(np.median(columns[dot]) - epoch_3_column) < 4
  assert rows[dot].min() > blue_rows.max()  # and below it: the lower curve
  # Text: tick labels, axis labels, title, legend: dark pixels beyond the curves.
  assert len(_dark_text_rows(picture)) > 50
  assert plots.best_epoch(_records([120.0, 100.0, 90.0, 95.0, 97.0])) == (3, 90.0)


def test_training_curves_of_one_epoch_flat_and_nan_values():
  one = plots.training_curves_picture(_records([343.4], train=[455.1]))
  assert _close_to(one, _RED, tolerance=20).sum() > 0
  flat = plots.training_curves_picture(_records([7.0, 7.0, 7.0], train=[7.0, 7.0, 7.0]))
  assert flat.dtype == np.uint8
  with_nan = _records([100.0, np.nan, 90.0])
  assert plots.best_epoch(with_nan) == (3, 90.0)
  assert plots.training_curves_picture(with_nan).dtype == np.uint8
  assert plots.best_epoch(_records([np.nan])) == (None, None)
  with pytest.raises(ValueError, match="at least one epoch"):
    plots.training_curves_picture([])
  with pytest.raises(ValueError, match="NaN or infinite"):
    plots.training_curves_picture(_records([np.nan], train=[np.inf]))


def test_save_training_curves_reads_metrics_of_a_resumed_run(tmp_path, capsys):
  # A resumed run writes epoch 2 again; a killed run may leave half a line at the end.
  lines = [json.dumps(r) for r in _records([100.0, 80.0, 85.0])]
  lines.insert(1, json.dumps(_records([100.0, 99.0])[1]))  # epoch 2 before the crash, redone after
  (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"epoch": 4, "train')
  records = plots.read_metrics(tmp_path)
  assert [r["epoch"] for r in records] == [1, 2, 3] and records[1]["valid_nll"] == 80.0
  path = plots.save_training_curves(tmp_path)
  assert path == tmp_path / "training_curves.png"
  assert iio.imread(path).shape == (400, 640, 3)
  assert cli.main(["curves", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
  assert capsys.readouterr().out.strip() == str(tmp_path / "c.png") and (tmp_path / "c.png").exists()


def test_curves_without_metrics_say_to_train_first(tmp_path, capsys):
  with pytest.raises(ValueError, match=r"No metrics.jsonl.*python -m arjax train"):
    plots.save_training_curves(tmp_path)
  (tmp_path / "metrics.jsonl").write_text("\n")
  with pytest.raises(ValueError, match=r"no epoch yet.*python -m arjax train"):
    plots.read_metrics(tmp_path)
  assert cli.main(["curves", str(tmp_path / "missing")]) == 2
  assert "python -m arjax train" in capsys.readouterr().err


def test_ood_histogram_has_a_panel_per_set_with_its_auroc():
  rng = np.random.default_rng(0)
  scores_in = rng.normal(80.0, 5.0, 500)
  scores_out = {"far": rng.normal(140.0, 5.0, 300), "same": rng.normal(80.0, 5.0, 300)}
  picture, legend = uses.histogram_picture(scores_in, scores_out)
  assert [panel["ood"] for panel in legend] == ["far", "same"]
  assert legend[0]["auroc"] > 0.99 and 0.4 < legend[1]["auroc"] < 0.6
  assert legend[0]["range"][0] == pytest.approx(min(scores_in.min(), scores_out["far"].min()))
  assert picture.shape[0] == 2 * 220 and picture.dtype == np.uint8  # two panels of 2.2 in at 100 dpi
  top, bottom = picture[:220], picture[220:]
  for panel in (top, bottom):
    assert _close_to(panel, _BLUE, 60).sum() > 200 or _close_to(panel, (143, 187, 217), 40).sum() > 200
  # Far apart, the orange bars sit right of the blue ones; on the same data they overlap.
  blue_columns = np.nonzero(_close_to(top, (143, 187, 217), 40))[1]  # blue at alpha 0.55 on white
  orange_columns = np.nonzero(_close_to(top, (255, 184, 128), 40))[1]
  assert orange_columns.size and blue_columns.size and np.median(orange_columns) > np.median(blue_columns) + 50
  with pytest.raises(ValueError, match="at least one set"):
    plots.histograms_picture(scores_in, {})


def test_heatmaps_have_a_colour_bar_on_one_scale():
  x = np.zeros((3, 16), np.uint8)
  nll = np.zeros((3, 16))
  nll[0, 0], nll[2, 5] = 4.0, 2.0
  picture, (low, high) = uses.heatmap_picture(x, nll, (4, 4, 1), num_levels=2, num_columns=3)
  assert (low, high) == (0.0, 4.0) and picture.dtype == np.uint8 and picture.ndim == 3
  # inferno's bright end (pale yellow) shows in the hottest pixel and in the colour bar.
  assert _close_to(picture, (252, 255, 164), 25).sum() > 50
  assert _close_to(picture, (0, 0, 4), 10).sum() > 200  # the cold pixels and the bar's foot


def test_inpainting_picture_labels_its_rows():
  x = np.ones((2, 16), np.uint8)
  observed = np.zeros((2, 16), bool)
  observed[:, :8] = True
  completions = np.zeros((3, 2, 16), np.uint8)
  picture = uses.inpainting_picture(x, observed, completions, (4, 4, 1), num_levels=2, caption="test")
  unlabelled = plots.labelled_grid_picture(np.zeros((5, 2, 4, 4, 1), np.uint8))
  assert picture.shape[1] > unlabelled.shape[1] + 80  # the row labels take a margin on the left
  assert picture.shape[0] > unlabelled.shape[0]  # and the caption a line on top
  assert len(_dark_text_rows(picture[:, :100])) > 20  # text in the label margin


def test_sample_grid_with_and_without_caption(tmp_path):
  samples = np.random.default_rng(0).integers(0, 2, (16, 49))
  plain = images.save_grid(tmp_path / "plain.png", samples, (7, 7, 1), num_levels=2)
  assert iio.imread(plain).shape == (4 * 8 + 1, 4 * 8 + 1)  # pixel for pixel
  captioned = images.save_grid(tmp_path / "c.png", samples, (7, 7, 1), num_levels=2,
                               caption="NADE samples, temperature 1")
  picture = iio.imread(captioned)
  assert picture.ndim == 3 and picture.shape[0] > 3 * 33  # enlarged, with a caption line on top
