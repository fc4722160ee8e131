"""Training curves as a PNG, drawn with numpy alone (no matplotlib), viewable without a notebook.

  python -m arjax curves WORKDIR [--out PNG]      writes WORKDIR/training_curves.png

The picture has no text. Colours: train NLL blue, valid NLL orange, the best valid
epoch a red dot on the valid curve with a dotted grey line down to the x axis.
Tick marks below the x axis sit at whole epochs, those left of the y axis (with faint
grid lines) at round NLL values; `training_curves_axes` gives their values and the
ranges of both axes, for a caption.
"""

from __future__ import annotations

import json
import math
import pathlib

import imageio.v3 as iio
import numpy as np

TRAIN_COLOR = (31, 119, 180)  # blue, as the in-distribution histograms of arjax.uses
VALID_COLOR = (255, 127, 14)  # orange
BEST_COLOR = (214, 39, 40)  # red
_AXIS_COLOR = (60, 60, 60)
_GRID_COLOR = (230, 230, 230)
_GUIDE_COLOR = (150, 150, 150)

# Pixels between the picture's edge and the axes box (left, right, top, bottom), and between
# the box and the outermost data point, so that no curve runs along the box.
_MARGINS = (36, 16, 16, 28)
_INSET = 8
_TICK_LENGTH = 5


# --------------------------------------------------------------- metrics ---


def read_metrics(workdir) -> list[dict]:
  """The per-epoch records of `WORKDIR/metrics.jsonl`, one per epoch, sorted by epoch.

  A resumed run appends again the epochs it redoes after its last checkpoint; the record
  written last for an epoch wins. A half-written last line (a run killed mid-write) is skipped.
  Raises ValueError if the file is missing or holds no record.
  """
  path = pathlib.Path(workdir) / "metrics.jsonl"
  hint = f"run `python -m arjax train EXPERIMENT --workdir {workdir}` first"
  if not path.exists():
    raise ValueError(f"No metrics.jsonl in {workdir}; {hint}")
  lines = [line for line in path.read_text().splitlines() if line.strip()]
  by_epoch = {}
  for number, line in enumerate(lines, start=1):
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      if number == len(lines):
        break
      raise ValueError(f"{path}, line {number}: not JSON ({e})") from e
    by_epoch[record["epoch"]] = record
  if not by_epoch:
    raise ValueError(f"{path} holds no epoch yet; {hint}")
  return [by_epoch[epoch] for epoch in sorted(by_epoch)]


# ------------------------------------------------------------------ axes ---


def _nice_step(span: float, max_ticks: int) -> float:
  """The smallest of 1, 2, 5 × 10^k that cuts `span` into at most `max_ticks` steps."""
  raw = span / max_ticks
  power = 10.0 ** math.floor(math.log10(raw))
  return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _ticks(low: float, high: float, step: float) -> list[float]:
  first = math.ceil(low / step - 1e-9)
  # Rounded so that steps like 0.1 give 0.3, not 0.30000000000000004.
  return [round((first + i) * step, 12) for i in range(int(math.floor(high / step + 1e-9)) - first + 1)]


def training_curves_axes(records: list[dict], *, max_ticks: int = 8) -> dict:
  """What `training_curves_picture` draws, in numbers: the axes' ranges, the tick values and
  the best epoch (first epoch of lowest valid NLL, as training picks its `best` checkpoint).

  Args:
    records: per-epoch dicts with `epoch`, `train_nll`, `valid_nll` (nats), as in metrics.jsonl.
  Returns:
    {"epochs": [low, high], "nll_nats": [low, high], "epoch_ticks", "nll_ticks",
     "best_epoch", "best_valid_nll", "colors"}.
  """
  if not records:
    raise ValueError("training curves need at least one epoch of metrics")
  epochs = np.array([r["epoch"] for r in records], np.float64)  # [E]
  nll = np.array([[r["train_nll"], r["valid_nll"]] for r in records], np.float64)  # [E, 2]
  finite = nll[np.isfinite(nll)]
  if not finite.size:
    raise ValueError("training curves: every train and valid NLL is NaN or infinite")
  # With one epoch, or a flat curve, the axis still needs a width; a unit around the value.
  epoch_low, epoch_high = float(epochs.min()), float(epochs.max())
  if epoch_high == epoch_low:
    epoch_low, epoch_high = epoch_low - 0.5, epoch_high + 0.5
  nll_low, nll_high = float(finite.min()), float(finite.max())
  if nll_high - nll_low < 1e-6 * max(1.0, abs(nll_high)):
    nll_low, nll_high = nll_low - 0.5, nll_high + 0.5
  epoch_step = max(1.0, _nice_step(epoch_high - epoch_low, max_ticks))
  valid = np.where(np.isfinite(nll[:, 1]), nll[:, 1], np.inf)
  best = int(np.argmin(valid)) if np.isfinite(valid).any() else None
  return {
      "epochs": [epoch_low, epoch_high], "nll_nats": [nll_low, nll_high],
      "epoch_ticks": [int(t) for t in _ticks(epoch_low, epoch_high, epoch_step)],
      "nll_ticks": _ticks(nll_low, nll_high, _nice_step(nll_high - nll_low, max_ticks)),
      "best_epoch": None if best is None else int(epochs[best]),
      "best_valid_nll": None if best is None else float(valid[best]),
      "colors": {"train_nll": "blue", "valid_nll": "orange", "best_valid_epoch": "red dot"},
  }


# --------------------------------------------------------------- drawing ---


def _stamp(canvas: np.ndarray, rows: np.ndarray, columns: np.ndarray, color, radius: float) -> None:
  """Paints a disk of `radius` pixels around each point (`rows`, `columns` `[P]`, floats)."""
  reach = int(math.ceil(radius))
  offsets = [(dr, dc) for dr in range(-reach, reach + 1) for dc in range(-reach, reach + 1)
             if dr * dr + dc * dc <= radius * radius + 0.25]
  rows, columns = np.round(rows).astype(int), np.round(columns).astype(int)
  height, width, _ = canvas.shape
  for dr, dc in offsets:
    r, c = rows + dr, columns + dc
    inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
    canvas[r[inside], c[inside]] = color


def _polyline(canvas, rows: np.ndarray, columns: np.ndarray, color, *, radius: float = 1.0,
              dot_radius: float = 2.5, dot_spacing: float = 12.0) -> None:
  """Joins consecutive finite points of `rows`, `columns` `[P]`; a NaN breaks the line.

  Points get a dot where they lie at least `dot_spacing` pixels apart (a few epochs), and
  always where they have no finite neighbour (one epoch), so that they stay visible.
  """
  finite = np.isfinite(rows) & np.isfinite(columns)  # [P]
  spacing = np.diff(columns[finite]) if finite.sum() > 1 else np.array([np.inf])
  for i in np.flatnonzero(finite):
    joined = i + 1 < len(rows) and finite[i + 1]
    r1, c1 = (rows[i + 1], columns[i + 1]) if joined else (rows[i], columns[i])
    num = int(math.ceil(max(abs(r1 - rows[i]), abs(c1 - columns[i])))) + 1
    t = np.linspace(0.0, 1.0, num)  # [num], one sample per pixel along the segment
    _stamp(canvas, rows[i] + t * (r1 - rows[i]), columns[i] + t * (c1 - columns[i]), color, radius)
    alone = not joined and not (i > 0 and finite[i - 1])
    if alone or spacing.min() >= dot_spacing:
      _stamp(canvas, rows[i:i + 1], columns[i:i + 1], color, dot_radius)


def training_curves_picture(records: list[dict], *, width: int = 640, height: int = 400) -> np.ndarray:
  """Train (blue) and valid (orange) NLL in nats per epoch, the best valid epoch as a red dot.

  The dot sits on the valid curve at the epoch of lowest valid NLL, with a dotted grey line
  down to the x axis. Ticks below the x axis mark whole epochs, those left of the y axis
  round NLL values, with faint horizontal grid lines (`training_curves_axes` gives the
  values). Each epoch gets a dot while they are few enough to tell apart; a single epoch
  shows as one dot per curve in the middle of the box.

  Args:
    records: per-epoch dicts with `epoch`, `train_nll`, `valid_nll`, e.g. `read_metrics(workdir)`.
      Non-finite values are left out (the curve breaks there).
  Returns:
    uint8 RGB picture `[height, width, 3]`.
  """
  axes = training_curves_axes(records)
  left, right, top, bottom = _MARGINS
  box_left, box_right, box_top, box_bottom = left, width - 1 - right, top, height - 1 - bottom
  if box_right - box_left < 4 * _INSET or box_bottom - box_top < 4 * _INSET:
    raise ValueError(f"A {height}×{width} picture leaves no room for the axes")
  (epoch_low, epoch_high), (nll_low, nll_high) = axes["epochs"], axes["nll_nats"]

  def column_of(epoch):
    t = (np.asarray(epoch, np.float64) - epoch_low) / (epoch_high - epoch_low)
    return box_left + _INSET + t * (box_right - box_left - 2 * _INSET)

  def row_of(nll):  # row 0 is the top: high NLL up
    t = (np.asarray(nll, np.float64) - nll_low) / (nll_high - nll_low)
    return box_bottom - _INSET - t * (box_bottom - box_top - 2 * _INSET)

  canvas = np.full((height, width, 3), 255, np.uint8)
  for value in axes["nll_ticks"]:
    row = int(round(float(row_of(value))))
    canvas[row, box_left + 1:box_right] = _GRID_COLOR
    canvas[row, box_left - _TICK_LENGTH:box_left] = _AXIS_COLOR
  for epoch in axes["epoch_ticks"]:
    column = int(round(float(column_of(epoch))))
    canvas[box_bottom + 1:box_bottom + 1 + _TICK_LENGTH, column] = _AXIS_COLOR
  if axes["best_epoch"] is not None:
    column = int(round(float(column_of(axes["best_epoch"]))))
    best_row = int(round(float(row_of(axes["best_valid_nll"]))))
    dotted = np.arange(best_row, box_bottom)
    canvas[dotted[dotted % 6 < 3], column] = _GUIDE_COLOR
  canvas[box_top, box_left:box_right + 1] = canvas[box_bottom, box_left:box_right + 1] = _AXIS_COLOR
  canvas[box_top:box_bottom + 1, box_left] = canvas[box_top:box_bottom + 1, box_right] = _AXIS_COLOR

  epochs = np.array([r["epoch"] for r in records], np.float64)  # [E]
  for key, color in (("train_nll", TRAIN_COLOR), ("valid_nll", VALID_COLOR)):
    values = np.array([r[key] for r in records], np.float64)  # [E]
    values = np.where(np.isfinite(values), values, np.nan)
    _polyline(canvas, row_of(values), column_of(epochs), color)
  if axes["best_epoch"] is not None:
    best_rows, best_columns = row_of([axes["best_valid_nll"]]), column_of([axes["best_epoch"]])
    _stamp(canvas, best_rows, best_columns, _AXIS_COLOR, radius=5.0)  # a dark rim
    _stamp(canvas, best_rows, best_columns, BEST_COLOR, radius=4.0)
  return canvas


def save_training_curves(workdir, out=None) -> pathlib.Path:
  """Writes `training_curves_picture(read_metrics(workdir))` to `out` (default
  WORKDIR/training_curves.png); returns the path. Raises ValueError without metrics."""
  picture = training_curves_picture(read_metrics(workdir))
  out = pathlib.Path(out) if out is not None else pathlib.Path(workdir) / "training_curves.png"
  out.parent.mkdir(parents=True, exist_ok=True)
  iio.imwrite(out, picture)
  return out
