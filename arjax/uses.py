"""The three uses of a trained density model: anomaly scores, representations, conditional samples.

  score     per-example and per-dimension NLL of any data, and PNG heat maps of where
            an image is surprising (`nll_scores`, `heatmap_picture`).
  ood       out-of-distribution detection with NLL as the anomaly score, optionally
            as a likelihood ratio against a background model (`ood_metrics`,
            `ood_inputs`, `histogram_picture`).
  probe     a linear probe (multinomial logistic regression) on `arjax.features`
            against the same probe on raw pixels (`linear_probe`).
  inpaint   completions of partly observed images by clamping the observed pixels
            in the sampler (`observed_mask`, `inpaint`, `inpainting_picture`).
  classify  a class-conditional model p(x | y) as a generative classifier by Bayes'
            rule (`class_log_likelihoods`, `generative_classifier`).

Shapes: data are flat `[N, D]` as `arjax.data` gives them; `image_shape` is
`[H, W, C]`. Everything here is a function of arrays (and a model); the command
line (`python -m arjax score|ood|probe|inpaint`) loads checkpoints and writes files.
Pictures are drawn with numpy alone and returned as uint8 arrays for `imageio`.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from arjax import checkpoints
from arjax import data as data_lib
from arjax import heads as heads_lib
from arjax import images
from arjax import likelihood
from arjax import marginals
from arjax import sampling

# ------------------------------------------------------------------ data ---


def load_data_like(data_config: data_lib.DataConfig, model, name: str | None = None) -> data_lib.Dataset:
  """Dataset `name` (default: the training data) preprocessed as `data_config` says, every split
  in the model's support.

  `name` is anything `arjax.data.load_dataset` reads: a dataset name or an `.npz` path. Two
  changes to `data_config` make the result scoreable: dynamic binarization becomes static (the
  same seeds, so valid/test are unchanged and train is binarized once), and 8-bit data for a
  Bernoulli model are binarized statically, as when a model of `binarized_mnist` scores
  `fashion_mnist`.
  """
  changes = {"binarize": "static"} if data_config.binarize == "dynamic" else {}
  if name is not None:
    changes["name"] = name
    if name.endswith(".npz"):
      changes["source"] = "local"
  config = dataclasses.replace(data_config, **changes)
  dataset = data_lib.load_dataset(config)
  if isinstance(model.head, heads_lib.Bernoulli) and dataset.num_levels == 256:
    dataset = data_lib.load_dataset(dataclasses.replace(config, binarize="static"))
  if dataset.event_shape != model.event_shape:
    raise ValueError(f"Dataset {config.name!r} has examples of shape {dataset.event_shape}; the model "
                     f"takes {model.event_shape}.")
  return dataset


def load_trained(workdir, *, which: str = "best"):
  """(model, config, dataset) of a training workdir, every split of the dataset in the model's
  support: `checkpoints.load_trained_model`, with a dynamically binarized training split (still 8-bit
  on load) binarized once."""
  model, config, dataset = checkpoints.load_trained_model(workdir, which=which)
  if config.data.binarize == "dynamic":
    dataset = load_data_like(config.data, model)
  return model, config, dataset


# --------------------------------------------------------------- scoring ---


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _nll_batch(graphdef, state, x):
  model = nnx.merge(graphdef, state)
  per_dim = -likelihood.log_prob_per_dim(model, x).reshape(x.shape[0], -1)  # [B, D]
  if model.num_masks > 1:
    return -likelihood.ensemble_log_prob(model, x), per_dim
  return per_dim.sum(-1), per_dim


def nll_scores(model, x: np.ndarray, *, batch_size: int = 1000) -> dict[str, np.ndarray]:
  """Negative log-likelihoods of `x [N, *event_shape]`.

  Returns:
    nll_nats: `[N]`, −log p(x) (for models trained over several mask draws, the ensemble's).
    bits_per_dim: `[N]`, nll_nats / (D ln 2).
    per_dim_nll: `[N, D]`, −log p(x_d | x_<d) in nats under the model's current ordering;
      its rows sum to nll_nats for single-ordering models.
  """
  likelihood.check_input(model, x)
  nll, per_dim = likelihood.map_batches(_nll_batch, model, np.asarray(x), batch_size)
  return {"nll_nats": nll, "bits_per_dim": likelihood.nats_to_bits_per_dim(nll, model.num_dims),
          "per_dim_nll": per_dim}


def summarize(nll: np.ndarray) -> dict:
  """Mean, median, standard deviation and count of `nll [N]`."""
  nll = np.asarray(nll, np.float64)
  return {"mean_nll_nats": float(nll.mean()), "median_nll_nats": float(np.median(nll)),
          "std_nll_nats": float(nll.std()), "count": int(nll.size)}


# Anchors of a perceptually ordered black→purple→red→orange→pale-yellow map (like matplotlib's
# "inferno"), so that brighter always means more surprising, also in greyscale print.
_HEAT_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]],
                         np.float32)


def heat_colors(values: np.ndarray, *, low: float, high: float) -> np.ndarray:
  """`values [...]` → uint8 RGB `[..., 3]`: `low` black, `high` pale yellow, clipped outside."""
  t = np.clip((np.asarray(values, np.float32) - low) / max(high - low, 1e-8), 0.0, 1.0)
  stops = np.linspace(0.0, 1.0, len(_HEAT_ANCHORS))
  rgb = np.stack([np.interp(t, stops, _HEAT_ANCHORS[:, c]) for c in range(3)], axis=-1)
  return np.round(rgb).astype(np.uint8)


def heatmap_picture(x: np.ndarray, per_dim_nll: np.ndarray, image_shape, *, num_levels: int | None,
                    num_columns: int = 4, zoom: int = 4) -> tuple[np.ndarray, tuple[float, float]]:
  """Each image next to the heat map of its per-pixel NLL, on one colour scale for all.

  Args:
    x: `[N, D]` images; per_dim_nll: `[N, D]` nats (summed over channels per pixel).
    image_shape: `[H, W, C]`.
  Returns:
    (uint8 picture `[rows·(zoom·H+1)+1, cols·(2·zoom·W+1)+1, 3]`, (low, high) nats of the scale).
  """
  height, width, channels = image_shape
  pixels = images.to_uint8(x, num_levels).reshape(-1, height, width, channels)  # [N, H, W, C]
  if channels == 1:
    pixels = np.repeat(pixels, 3, axis=-1)  # [N, H, W, 3]
  nll = np.asarray(per_dim_nll).reshape(-1, height, width, channels).sum(-1)  # [N, H, W]
  low, high = min(0.0, float(nll.min())), float(nll.max())
  pairs = np.concatenate([pixels, heat_colors(nll, low=low, high=high)], axis=2)  # [N, H, 2W, 3]
  pairs = pairs.repeat(zoom, axis=1).repeat(zoom, axis=2)  # [N, zH, 2zW, 3]
  picture = images.grid(pairs.reshape(len(pairs), -1), (zoom * height, 2 * zoom * width, 3),
                        num_columns=num_columns)
  return picture, (low, high)


# ------------------------------------------------------------------- OOD ---


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


_IN_COLOR = np.array([31, 119, 180], np.float32)  # blue
_OUT_COLOR = np.array([255, 127, 14], np.float32)  # orange


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
                      width: int = 480, panel_height: int = 120) -> tuple[np.ndarray, list[dict]]:
  """One panel per OOD set: histograms of `scores_in [N]` (blue) and `scores_out[name] [M]`
  (orange), as fractions of each set per bin, blended where they overlap.

  Each panel's x axis runs over the two sets' joint range (the picture has no text; the
  returned list gives each panel's set name and range).
  Returns: (uint8 RGB picture `[panels·(panel_height+2), width, 3]`, [{"ood", "range"}, ...]).
  """
  panels, legend = [], []
  for name, out in scores_out.items():
    low = float(min(np.min(scores_in), np.min(out)))
    high = float(max(np.max(scores_in), np.max(out)))
    high = high if high > low else low + 1.0
    edges = np.linspace(low, high, num_bins + 1)
    panel = np.full((panel_height, width, 3), 255.0, np.float32)
    fractions = [np.histogram(s, edges)[0] / max(len(s), 1) for s in (scores_in, out)]
    tallest = max(f.max() for f in fractions)
    columns = np.minimum((np.arange(width) * num_bins) // width, num_bins - 1)  # bin of each column
    rows = np.arange(panel_height)[:, None]  # [H, 1]; row 0 is the top
    for fraction, color in zip(fractions, (_IN_COLOR, _OUT_COLOR)):
      bar_height = np.round(fraction[columns] / tallest * (panel_height - 4)).astype(int)  # [W]
      inside = rows >= panel_height - bar_height[None, :]  # [H, W]
      panel[inside] = 0.5 * panel[inside] + 0.5 * color
    panel[-1] = 0.0  # the baseline
    panels += [panel, np.full((2, width, 3), 160.0, np.float32)]
    legend.append({"ood": name, "range": [low, high]})
  return np.round(np.concatenate(panels)).astype(np.uint8), legend


# ----------------------------------------------------------------- probe ---


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _features_batch(graphdef, state, x):
  return nnx.merge(graphdef, state).features(x)


def extract_features(model, x: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
  """`arjax.features(model, x)` `[N, F]` for `x [N, *event_shape]`, in jitted batches."""
  likelihood.check_input(model, x)
  return likelihood.map_batches(_features_batch, model, np.asarray(x), batch_size)


@functools.partial(jax.jit, static_argnames=("num_classes", "num_steps"))
def _fit_logistic_regression(x, y, l2, *, num_classes, num_steps):
  """Weights `[F, K]` and bias `[K]` minimizing mean cross-entropy + (l2/2)·‖W‖² (L-BFGS)."""

  def loss(params):
    logits = x @ params["w"] + params["b"]  # [N, K]
    return (jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
            + 0.5 * l2 * jnp.sum(params["w"] ** 2))

  params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros(num_classes)}
  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def step(carry, _):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = solver.update(grad, state, params, value=value, grad=grad, value_fn=loss)
    return (optax.apply_updates(params, updates), state), value

  (params, _), _ = jax.lax.scan(step, (params, solver.init(params)), length=num_steps)
  return params, loss(params)


def fit_linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                     *, l2: float = 1e-4, num_steps: int = 200) -> dict[str, float]:
  """Multinomial logistic regression on `train_x [N, F]`, labels `train_y [N]` in {0, …, K−1};
  accuracies on the training set and on `test_x [M, F]`, `test_y [M]`.

  Features are standardized with the training statistics; the objective (mean cross-entropy
  plus (l2/2)·‖W‖², bias unpenalized) is convex, so L-BFGS for `num_steps` steps from zero
  gives the same probe for the same data.
  """
  train_y, test_y = np.asarray(train_y).astype(np.int32), np.asarray(test_y).astype(np.int32)
  if len(train_x) != len(train_y) or len(test_x) != len(test_y):
    raise ValueError(f"features and labels differ in length: train {len(train_x)} vs {len(train_y)}, "
                     f"test {len(test_x)} vs {len(test_y)}")
  if min(train_y.min(), test_y.min()) < 0:
    raise ValueError("labels must be integers 0, 1, …, K−1")
  num_classes = int(max(train_y.max(), test_y.max())) + 1
  mean = train_x.mean(0)
  scale = train_x.std(0) + 1e-6  # constant features (a pixel that is always 0) stay 0
  standardize = lambda features: jnp.asarray((features - mean) / scale, jnp.float32)
  params, final_loss = _fit_logistic_regression(standardize(train_x), jnp.asarray(train_y), l2,
                                                num_classes=num_classes, num_steps=num_steps)
  if not math.isfinite(float(final_loss)):
    raise FloatingPointError(f"linear probe: the loss became {float(final_loss)}; raise l2")

  def accuracy(features, labels):
    logits = standardize(features) @ params["w"] + params["b"]
    return float(np.mean(np.asarray(jnp.argmax(logits, -1)) == labels))

  return {"train_accuracy": accuracy(train_x, train_y), "test_accuracy": accuracy(test_x, test_y),
          "train_loss": float(final_loss), "num_features": int(train_x.shape[1])}


def require_labels(dataset: data_lib.Dataset, dataset_name: str, splits=("train", "test")) -> None:
  """Raises ValueError unless every split in `splits` has labels."""
  missing = [split for split in splits if dataset.labels.get(split) is None]
  if missing:
    raise ValueError(
        f"Dataset {dataset_name!r} has no labels for the {' and '.join(missing)} split(s); a linear "
        "probe needs class labels. Train on a labelled dataset, e.g. `data.name=mnist "
        "data.binarize=static` (binarized MNIST with digit labels) — `binarized_mnist` has none — "
        "or an .npz with y_train/y_valid/y_test next to x_train/x_valid/x_test.")


def linear_probe(model, dataset: data_lib.Dataset, *, dataset_name: str = "",
                 max_train: int | None = 10_000, l2: float = 1e-4, num_steps: int = 200) -> dict:
  """The same linear probe (`fit_linear_probe`) on `arjax.features(model, x)` and on raw pixels.

  Fits on the first `max_train` training examples, reports accuracy on the whole test split.
  Returns {"features": {...accuracies}, "pixels": {...}, "num_train", "num_test"}.
  """
  require_labels(dataset, dataset_name)
  train_x, train_y = dataset.splits["train"][:max_train], dataset.labels["train"][:max_train]
  test_x, test_y = dataset.splits["test"], dataset.labels["test"]
  probe = functools.partial(fit_linear_probe, l2=l2, num_steps=num_steps)
  return {
      "features": probe(extract_features(model, train_x), train_y, extract_features(model, test_x), test_y),
      "pixels": probe(train_x.astype(np.float32), train_y, test_x.astype(np.float32), test_y),
      "num_train": len(train_x), "num_test": len(test_x),
  }


# ---------------------------------------------------------------- inpaint ---


#: Which pixels are observed (clamped); the model fills in the rest.
MASKS = ("top_half", "bottom_half", "left_half", "random")


def observed_mask(kind: str, image_shape, num: int, *, seed: int = 0) -> np.ndarray:
  """bool `[num, H·W·C]`, True where a pixel is observed: the named half of every image, or
  (`random`) each pixel independently with probability ½."""
  if kind not in MASKS:
    raise ValueError(f"Unknown mask {kind!r}; choose one of {', '.join(MASKS)}")
  height, width, channels = image_shape
  if kind == "random":
    return np.random.default_rng(seed).random((num, height * width * channels)) < 0.5
  rows = np.arange(height)[:, None, None]
  columns = np.arange(width)[None, :, None]
  observed = {"top_half": rows < height // 2, "bottom_half": rows >= height // 2,
              "left_half": columns < width // 2}[kind]
  observed = np.broadcast_to(observed, image_shape).reshape(-1)  # [D]
  return np.broadcast_to(observed, (num, observed.size)).copy()


is_prefix = marginals.is_prefix  # the observed pixels come first in the ordering


def inpaint(model, key: jax.Array, x: np.ndarray, observed: np.ndarray, *,
            num_completions: int = 4, temperature: float = 1.0,
            context: np.ndarray | None = None) -> np.ndarray:
  """Completions of `x [N, D]` with the pixels where `observed [N, D]` is True kept as given
  (and, for a conditional model, its `context [N, C]`, e.g. the one-hot labels of `x`).

  Order-agnostic models (`model.order_agnostic`) complete every image exactly, under any mask:
  `arjax.sample_given` puts its observed pixels first in the ordering. For the others every
  completion comes from one `arjax.sample` call with `given=x`, `given_mask=observed`, which is
  exact conditioning only when the observed pixels form a prefix of the model's ordering
  (`is_prefix`, e.g. `top_half` with raster order); otherwise dimensions before an observed one
  in the ordering are drawn without seeing it.
  Returns: `[num_completions, N, D]`.
  """
  likelihood.check_input(model, x)
  num = len(x)
  given = np.tile(x, (num_completions, 1))  # [C·N, D]
  given_mask = np.tile(np.asarray(observed, bool), (num_completions, 1))  # [C·N, D]
  if context is not None:
    context = np.tile(np.asarray(context), (num_completions, 1))  # [C·N, K]
  if model.order_agnostic:
    samples = marginals.sample_given(model, key, given, given_mask, temperature=temperature,
                                     context=context)
  else:
    samples = sampling.sample(model, key, num_completions * num, temperature=temperature,
                              given=given, given_mask=given_mask, context=context)
  return np.asarray(samples).reshape(num_completions, num, *x.shape[1:])


def spread_indices(num_total: int, num: int) -> np.ndarray:
  """`num` indices spread evenly over `range(num_total)`: test sets are often sorted by class,
  so the first few examples would all show one class."""
  return np.linspace(0, num_total - 1, min(num, num_total)).round().astype(int)


def inpainting_picture(x: np.ndarray, observed: np.ndarray, completions: np.ndarray, image_shape, *,
                       num_levels: int | None) -> np.ndarray:
  """A uint8 grid with one column per example: the observed pixels (the rest grey), each of the
  `completions [C, N, D]`, and the original `x [N, D]`."""
  # One conversion for all rows, so real-valued data share one grey scale.
  rows = images.to_uint8(np.concatenate([x[None], completions, x[None]]), num_levels)  # [C+2, N, D]
  rows[0] = np.where(observed, rows[0], np.uint8(128))
  return images.grid(rows.reshape(-1, rows.shape[-1]), image_shape, num_columns=len(x))


# --------------------------------------------------------------- classify ---


@functools.partial(jax.jit, static_argnames=("graphdef", "num_classes"))
def _class_log_likelihoods_batch(graphdef, state, x, *, num_classes):
  model = nnx.merge(graphdef, state)

  def given_class(label):  # log p(x | y = label), [B]
    context = jnp.broadcast_to(jax.nn.one_hot(label, num_classes), (x.shape[0], num_classes))
    return likelihood.ensemble_log_prob(model, x, context=context)

  # One class after another (lax.map), so memory stays that of one pass.
  return jax.lax.map(given_class, jnp.arange(num_classes)).T  # [B, K]


def class_log_likelihoods(model, x: np.ndarray, num_classes: int, *, batch_size: int = 1000) -> np.ndarray:
  """log p(x | y = k) `[N, K]` of a class-conditional model (one-hot label context) for every
  class k, in jitted batches; for models with several mask draws, the ensemble's."""
  if model.context_size != num_classes:
    raise ValueError(
        f"A classifier over {num_classes} classes needs a model conditioned on their one-hot labels "
        f"(context_size={num_classes}); this {type(model).__name__} has context_size={model.context_size}. "
        "Train one with data.context=label and model.context_size=K.")
  likelihood.check_input(model, x)
  with jax.default_matmul_precision("highest"):
    return likelihood.map_batches(
        functools.partial(_class_log_likelihoods_batch, num_classes=num_classes), model,
        np.asarray(x), batch_size)


def generative_classifier(model, x: np.ndarray, num_classes: int, *, log_prior: np.ndarray | None = None,
                          batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
  """Classifies `x [N, *event_shape]` with a class-conditional model by Bayes' rule:

      log p(y | x) = log p(x | y) + log p(y) − log Σ_k p(x | k) p(k).

  Args:
    model: a model built with `context_size=num_classes`, trained on one-hot labels.
    x: `[N, *event_shape]` examples.
    num_classes: K.
    log_prior: `[K]` log p(y) (normalized here); default uniform.
    batch_size: examples per jitted likelihood call (each evaluates all K classes).
  Returns:
    (predictions `[N]` int, the argmax of the posterior; log_posterior `[N, K]`).
  """
  if log_prior is None:
    log_prior = np.zeros(num_classes)
  log_prior = np.asarray(log_prior, np.float64)
  if log_prior.shape != (num_classes,):
    raise ValueError(f"log_prior must have shape [{num_classes}] (one per class); got {log_prior.shape}")
  log_prior = log_prior - np.logaddexp.reduce(log_prior)
  joint = class_log_likelihoods(model, x, num_classes, batch_size=batch_size) + log_prior  # [N, K]
  log_posterior = joint - np.logaddexp.reduce(joint, axis=1, keepdims=True)
  return np.argmax(log_posterior, axis=1), log_posterior
