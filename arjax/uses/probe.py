"""Representation learning: a linear probe (multinomial logistic regression) on `arjax.features`
against the same probe on raw pixels."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from arjax import data as data_lib
from arjax import likelihood


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


def _flat_pixels(x: np.ndarray) -> np.ndarray:
  """Events `[N, *event_shape]` (e.g. images `[N, H, W, C]`) as float features `[N, D]`."""
  return np.asarray(x, np.float32).reshape(len(x), -1)


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
      "pixels": probe(_flat_pixels(train_x), train_y, _flat_pixels(test_x), test_y),
      "num_train": len(train_x), "num_test": len(test_x),
  }
