"""Out-of-distribution detection with the NLL as the anomaly score, optionally as a likelihood
ratio against a background model (Ren et al. 2019): metrics, shifted inputs, histograms."""

from __future__ import annotations

import numpy as np

from arjax import data as data_lib
from arjax import heads as heads_lib
from arjax.uses.scoring import load_data_like, nll_scores


def ood_metrics(scores_in: np.ndarray, scores_out: np.ndarray) -> dict[str, float]:
  """How well `scores` (higher = more anomalous) separate OOD `scores_out [M]` from `scores_in [N]`.

  Out-of-distribution is the positive class.
    auroc: P(s_out > s_in) + ½ P(s_out = s_in), from average ranks (Mann–Whitney U / (N M)).
    aupr: average precision, Σ_k (R_k − R_{k−1}) P_k over the distinct thresholds from the
      highest score down (step-wise, no interpolation; as scikit-learn's
      `average_precision_score`).
    fpr_at_95_tpr: the smallest fraction of in-distribution examples flagged at a threshold
      that flags at least 95% of the OOD ones.
  """
  scores_in = np.asarray(scores_in, np.float64).ravel()
  scores_out = np.asarray(scores_out, np.float64).ravel()
  if not (scores_in.size and scores_out.size):
    raise ValueError(f"ood_metrics needs scores on both sides; got {scores_in.size} in-distribution "
                     f"and {scores_out.size} out-of-distribution")
  if not (np.all(np.isfinite(scores_in)) and np.all(np.isfinite(scores_out))):
    raise ValueError("ood_metrics: scores contain NaN or infinite values")
  num_in, num_out = scores_in.size, scores_out.size
  scores = np.concatenate([scores_in, scores_out])
  is_out = np.concatenate([np.zeros(num_in, bool), np.ones(num_out, bool)])

  # Average ranks (1-based) so that ties count one half.
  values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
  first_rank = np.cumsum(counts) - counts + 1
  ranks = (first_rank + (counts - 1) / 2.0)[inverse]
  auroc = (ranks[is_out].sum() - num_out * (num_out + 1) / 2.0) / (num_in * num_out)

  # Flag everything with score >= threshold, for each distinct score from the highest down.
  out_per_value = np.bincount(inverse, weights=is_out, minlength=len(values))[::-1]
  true_positives = np.cumsum(out_per_value)  # OOD flagged
  false_positives = np.cumsum(counts[::-1]) - true_positives  # in-distribution flagged
  recall = true_positives / num_out
  precision = true_positives / (true_positives + false_positives)
  aupr = float(np.sum(np.diff(recall, prepend=0.0) * precision))
  fpr = false_positives / num_in
  fpr_at_95_tpr = float(fpr[np.argmax(recall >= 0.95 - 1e-12)])
  return {"auroc": float(auroc), "aupr": aupr, "fpr_at_95_tpr": fpr_at_95_tpr}


#: OOD sets made from the in-distribution test data (any other name is loaded as a dataset).
OOD_TRANSFORMS = ("noise", "flip", "rotate90")


def uniform_noise(head: heads_lib.Head, like: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Uniform noise of `like`'s shape and dtype in the head's support: {0, 1} for Bernoulli,
  {0, …, K−1} for Categorical / discretized heads, for real-valued heads [min, max] of `like`."""
  num_values = _num_values(head)
  if num_values is not None:
    return rng.integers(0, num_values, like.shape).astype(like.dtype)
  return rng.uniform(like.min(), like.max(), like.shape).astype(like.dtype)


def _num_values(head: heads_lib.Head) -> int | None:
  if isinstance(head, heads_lib.Bernoulli):
    return 2
  if isinstance(head, heads_lib.Categorical):
    return head.num_classes
  if isinstance(head, heads_lib.DiscretizedLogisticMixture):
    return head.num_bins
  return None


def flip_vertical(x: np.ndarray, image_shape) -> np.ndarray:
  """`x [N, D]` images upside down (`[N, D]`)."""
  return x.reshape(-1, *image_shape)[:, ::-1].reshape(x.shape)


def rotate90(x: np.ndarray, image_shape) -> np.ndarray:
  """`x [N, D]` square images rotated a quarter turn counter-clockwise (`[N, D]`)."""
  height, width, _ = image_shape
  if height != width:
    raise ValueError(f"rotate90 needs square images; these are {height}×{width}")
  return np.rot90(x.reshape(-1, *image_shape), k=1, axes=(1, 2)).reshape(x.shape)


def ood_inputs(name: str, test: np.ndarray, *, model, data_config: data_lib.DataConfig,
               image_shape, seed: int = 0) -> np.ndarray:
  """The OOD set `name` as `[M, D]` model inputs.

  `name` is one of `OOD_TRANSFORMS` — `noise` (`uniform_noise` shaped like `test`), `flip`
  (`test` upside down), `rotate90` — or a dataset spec whose test split is loaded with the
  model's preprocessing (`load_data_like`), e.g. `fashion_mnist` or `path/to/other.npz`.
  """
  if name == "noise":
    return uniform_noise(model.head, test, np.random.default_rng(seed))
  if name in ("flip", "rotate90"):
    if image_shape is None:
      raise ValueError(f"OOD set {name!r} transforms images; this model's data are not images")
    return flip_vertical(test, image_shape) if name == "flip" else rotate90(test, image_shape)
  try:
    return load_data_like(data_config, model, name).splits["test"]
  except FileNotFoundError as e:
    raise ValueError(f"Unknown OOD set {name!r}: not one of the transforms {', '.join(OOD_TRANSFORMS)}, "
                     f"and not a dataset that can be loaded ({e})") from e


def ood_scores(model, x: np.ndarray, background=None) -> tuple[np.ndarray, np.ndarray | None]:
  """(NLL `[N]` of `x` under `model`, and NLL_model − NLL_background `[N]`, the likelihood ratio of
  Ren et al. 2019, or None without a background model)."""
  nll = nll_scores(model, x)["nll_nats"]
  return nll, None if background is None else nll - nll_scores(background, x)["nll_nats"]


def ood_set_summary(scores_in, scores_out) -> dict:
  """Count, mean NLL and the `ood_metrics` of one OOD set from the `ood_scores` of the
  in-distribution set and of it (and of the likelihood ratio, when there is one)."""
  (nll_in, ratio_in), (nll_out, ratio_out) = scores_in, scores_out
  summary = {"count": len(nll_out), "mean_nll_nats": float(np.mean(nll_out)),
             "nll": ood_metrics(nll_in, nll_out)}
  if ratio_out is not None:
    summary["likelihood_ratio"] = ood_metrics(ratio_in, ratio_out)
  return summary


def ood_note(background: bool) -> str:
  """What the figures of an OOD evaluation mean."""
  return ("score = NLL (higher = more anomalous), OOD is the positive class"
          + ("; likelihood_ratio: NLL_model − NLL_background (Ren et al. 2019)" if background else ""))


def histogram_picture(scores_in: np.ndarray, scores_out: dict[str, np.ndarray], *, num_bins: int = 60,
                      xlabel: str = "NLL (nats per example)") -> tuple[np.ndarray, list[dict]]:
  """One panel per OOD set: density histograms of `scores_in [N]` (blue, the in-distribution
  test set) and `scores_out[name] [M]` (orange) over their joint range, with the NLL axis, a
  legend, and the set's AUROC (`ood_metrics`, OOD positive) in the panel's title.

  Returns: (uint8 RGB picture `[H, W, 3]`, [{"ood", "range", "auroc"}, ...] per panel).
  """
  from arjax import plots

  legend, titles = [], {}
  for name, out in scores_out.items():
    auroc = ood_metrics(scores_in, out)["auroc"]
    titles[name] = f"{name}: AUROC {auroc:.3f}"
    legend.append({"ood": name, "auroc": auroc,
                   "range": [float(min(np.min(scores_in), np.min(out))), float(max(np.max(scores_in), np.max(out)))]})
  picture = plots.histograms_picture(scores_in, scores_out, titles=titles, xlabel=xlabel, num_bins=num_bins)
  return picture, legend
