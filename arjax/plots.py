"""Every picture arjax writes, drawn with matplotlib (Agg, no display needed), as uint8 RGB arrays.

  python -m arjax curves WORKDIR [--out PNG]      writes WORKDIR/training_curves.png

  training_curves_picture   train / valid NLL (nats) per epoch, the best valid epoch marked
  histograms_picture        one panel per OOD set: NLL histograms, AUROC in each title
  heatmaps_picture          images beside their per-pixel NLL, one colour bar for all
  labelled_grid_picture     an image grid with row labels and a caption (inpaintings, samples)

Figures are built on `matplotlib.figure.Figure` with their own Agg canvas, not `pyplot`, so
no global state is touched and nothing needs a display. Each `*_picture` function returns
`[H, W, 3]` uint8; `save_picture` writes one as PNG.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

TRAIN_COLOR = "tab:blue"  # also the in-distribution histograms
VALID_COLOR = "tab:orange"  # also the OOD histograms
BEST_COLOR = "tab:red"
_DPI = 100


# --------------------------------------------------------------- metrics ---


def read_metrics(workdir) -> list[dict]:
  """The per-validation records of `WORKDIR/metrics.jsonl`, sorted by epoch.

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


def best_epoch(records: list[dict]) -> tuple[int | None, float | None]:
  """(epoch, valid NLL) of the first lowest finite valid NLL, as training picks `best`;
  (None, None) when no valid NLL is finite."""
  valid = np.array([r["valid_nll"] for r in records], np.float64)  # [E]
  valid = np.where(np.isfinite(valid), valid, np.inf)
  if not np.isfinite(valid).any():
    return None, None
  index = int(np.argmin(valid))
  return int(records[index]["epoch"]), float(valid[index])


# ------------------------------------------------------------ plumbing ---


def _figure(width: float, height: float):
  """A matplotlib Figure of `width`×`height` inches on its own Agg canvas."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
  FigureCanvasAgg(figure)
  return figure


def _to_rgb(figure) -> np.ndarray:
  """Renders `figure`; returns uint8 RGB `[H, W, 3]`."""
  figure.canvas.draw()
  return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def save_picture(path, picture: np.ndarray) -> pathlib.Path:
  """Writes the uint8 picture `[H, W(, 3)]` as a PNG (folders made as needed); returns the path."""
  import imageio.v3 as iio

  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  iio.imwrite(path, picture)
  return path


# ------------------------------------------------------ training curves ---


def training_curves_picture(records: list[dict], *, title: str | None = None,
                            width: float = 6.4, height: float = 4.0) -> np.ndarray:
  """Train (blue) and valid (orange) NLL in nats against the epoch, the best valid epoch as a
  red dot with a dotted line down to the x axis, axes labelled, a legend and a title.

  Args:
    records: per-validation dicts with `epoch`, `train_nll`, `valid_nll`, as `read_metrics`
      gives. Non-finite values are left out (the curve breaks there).
    title: default "Training curves" (the legend gives the best valid NLL and its epoch).
    width, height: inches (at 100 dpi).
  Returns:
    uint8 RGB picture `[100·height, 100·width, 3]`.
  """
  if not records:
    raise ValueError("training curves need at least one epoch of metrics")
  epochs = np.array([r["epoch"] for r in records], np.float64)  # [E]
  curves = {key: np.array([r[key] for r in records], np.float64) for key in ("train_nll", "valid_nll")}
  if not any(np.isfinite(values).any() for values in curves.values()):
    raise ValueError("training curves: every train and valid NLL is NaN or infinite")
  figure = _figure(width, height)
  axes = figure.add_subplot()
  marker = "o" if len(records) <= 40 else None  # dots while they are few enough to tell apart
  for (key, values), color, label in zip(curves.items(), (TRAIN_COLOR, VALID_COLOR),
                                         ("train NLL", "valid NLL")):
    axes.plot(epochs, np.where(np.isfinite(values), values, np.nan), color=color, marker=marker,
              markersize=3, label=label)
  epoch, nll = best_epoch(records)
  if epoch is not None:
    axes.axvline(epoch, color="grey", linestyle=":", linewidth=1)
    axes.plot([epoch], [nll], "o", color=BEST_COLOR, markersize=8, markeredgecolor="black",
              label=f"best valid: {nll:.2f} at epoch {epoch}", zorder=3)
  from matplotlib.ticker import MaxNLocator

  axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
  axes.set_xlabel("epoch")
  axes.set_ylabel("NLL (nats per example)")
  axes.grid(alpha=0.3)
  axes.legend(loc="best", fontsize=8)
  axes.set_title(title or "Training curves", fontsize=11)
  if records[-1].get("valid_metric"):
    axes.annotate(f"valid: {records[-1]['valid_metric']}", (0.01, 0.01), xycoords="figure fraction",
                  fontsize=7, color="grey")
  return _to_rgb(figure)


def save_training_curves(workdir, out=None) -> pathlib.Path:
  """Writes `training_curves_picture(read_metrics(workdir))` to `out` (default
  WORKDIR/training_curves.png); returns the path. Raises ValueError without metrics."""
  out = pathlib.Path(out) if out is not None else pathlib.Path(workdir) / "training_curves.png"
  return save_picture(out, training_curves_picture(read_metrics(workdir)))


# ----------------------------------------------------------- histograms ---


def histograms_picture(scores_in: np.ndarray, scores_out: dict[str, np.ndarray], *,
                       titles: dict[str, str] | None = None, in_label: str = "in-distribution (test)",
                       xlabel: str = "NLL (nats per example)", num_bins: int = 60,
                       width: float = 6.4, panel_height: float = 2.2) -> np.ndarray:
  """One panel per entry of `scores_out`: density histograms of `scores_in [N]` (blue) and
  `scores_out[name] [M]` (orange) over their joint range, a shared x label, a legend, and
  `titles[name]` above the panel (default the name).
  Returns: uint8 RGB picture `[100·panel_height·panels, 100·width, 3]`.
  """
  if not scores_out:
    raise ValueError("histograms_picture needs at least one set in scores_out")
  scores_in = np.asarray(scores_in, np.float64)
  figure = _figure(width, panel_height * len(scores_out))
  panels = figure.subplots(len(scores_out), 1, squeeze=False)[:, 0]
  for axes, (name, out) in zip(panels, scores_out.items()):
    out = np.asarray(out, np.float64)
    low, high = float(min(scores_in.min(), out.min())), float(max(scores_in.max(), out.max()))
    edges = np.linspace(low, high if high > low else low + 1.0, num_bins + 1)
    axes.hist(scores_in, edges, density=True, color=TRAIN_COLOR, alpha=0.55, label=in_label)
    axes.hist(out, edges, density=True, color=VALID_COLOR, alpha=0.55, label=name)
    axes.set_title((titles or {}).get(name, name), fontsize=10)
    axes.set_ylabel("density")
    axes.legend(fontsize=8, loc="upper right")
  panels[-1].set_xlabel(xlabel)
  return _to_rgb(figure)


# ------------------------------------------------------------ heat maps ---


def heatmaps_picture(pixels: np.ndarray, heat: np.ndarray, *, low: float, high: float,
                     num_columns: int = 4, label: str = "NLL of the pixel (nats)",
                     title: str | None = None) -> np.ndarray:
  """Each image of `pixels [N, H, W, 3]` (uint8) beside its heat map `heat [N, H, W]`, on one
  colour scale from `low` to `high` (inferno: dark = low, bright = high) with a colour bar.
  Returns: uint8 RGB picture."""
  num = len(pixels)
  num_rows = -(-num // num_columns)
  figure = _figure(1.3 * 2 * num_columns + 1.0, 1.35 * num_rows + (0.4 if title else 0.1))
  grid = figure.subplots(num_rows, 2 * num_columns, squeeze=False)
  shown = None
  for i, axes in enumerate(grid.reshape(num_rows, num_columns, 2).reshape(-1, 2)):
    for a in axes:
      a.set_axis_off()
    if i >= num:
      continue
    axes[0].imshow(pixels[i], interpolation="nearest")
    shown = axes[1].imshow(heat[i], cmap="inferno", vmin=low, vmax=high, interpolation="nearest")
  figure.colorbar(shown, ax=grid, label=label, shrink=0.9)
  if title:
    figure.suptitle(title)
  return _to_rgb(figure)


# ---------------------------------------------------------------- grids ---


def labelled_grid_picture(rows: np.ndarray, *, row_labels: list[str] | None = None,
                          caption: str | None = None, zoom: float = 0.9) -> np.ndarray:
  """A grid of images `rows [R, K, H, W, C]` (uint8; C = 1 or 3), one image per cell, each
  row's label at its left and `caption` above.
  Returns: uint8 RGB picture."""
  rows = np.asarray(rows)
  num_rows, num_columns = rows.shape[:2]
  label_width = 1.3 if row_labels else 0.0
  figure = _figure(label_width + zoom * num_columns, zoom * num_rows + (0.35 if caption else 0.05))
  cells = figure.subplots(num_rows, num_columns, squeeze=False, gridspec_kw={"wspace": 0.04, "hspace": 0.04})
  for r in range(num_rows):
    for k in range(num_columns):
      image = rows[r, k]
      cells[r, k].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255,
                         interpolation="nearest")
      cells[r, k].set_xticks([])
      cells[r, k].set_yticks([])
    if row_labels:
      cells[r, 0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=9)
  if caption:
    figure.suptitle(caption, fontsize=10)
  return _to_rgb(figure)


def captioned_picture(picture: np.ndarray, caption: str, *, scale: float = 3.0) -> np.ndarray:
  """The uint8 picture `[H, W(, 3)]` (e.g. a sample grid), enlarged `scale` times without
  smoothing, under a one-line `caption`. Returns: uint8 RGB picture."""
  height, width = picture.shape[:2]
  figure = _figure(max(scale * width / _DPI, 3.0), scale * height / _DPI + 0.35)
  axes = figure.add_subplot()
  axes.imshow(picture if picture.ndim == 3 else picture, cmap="gray", vmin=0, vmax=255,
              interpolation="nearest")
  axes.set_axis_off()
  axes.set_title(caption, fontsize=9)
  return _to_rgb(figure)


# ------------------------------------------------------------- 2-D maps ---


def maps_picture(maps: list[np.ndarray], titles: list[str], *, extent: float,
                 colorbar_labels: list[str] | None = None, title: str | None = None) -> np.ndarray:
  """Panels side by side, each a map `[H, W]` of non-negative values over the square
  [−extent, extent]² (row 0 at the top, high y) in viridis, with x₁ / x₂ axes, its title and a
  colour bar (`colorbar_labels[i]`).
  Returns: uint8 RGB picture."""
  if len(maps) != len(titles):
    raise ValueError(f"maps_picture: {len(maps)} maps but {len(titles)} titles")
  figure = _figure(3.4 * len(maps), 3.2 + (0.3 if title else 0.0))
  panels = figure.subplots(1, len(maps), squeeze=False)[0]
  for i, (axes, values, name) in enumerate(zip(panels, maps, titles)):
    shown = axes.imshow(values, cmap="viridis", extent=(-extent, extent, -extent, extent),
                        interpolation="nearest", vmin=0.0)
    axes.set_title(name, fontsize=10)
    axes.set_xlabel("x₁")
    axes.set_ylabel("x₂")
    figure.colorbar(shown, ax=axes, shrink=0.8,
                    label=(colorbar_labels or [""] * len(maps))[i])
  if title:
    figure.suptitle(title)
  return _to_rgb(figure)
