"""A class-conditional model p(x | y) as a generative classifier by Bayes' rule."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arjax import likelihood


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
