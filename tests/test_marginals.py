"""Exact marginals and conditionals for any observed set (arjax.marginals), and the deep
order-agnostic NADE's training objective."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from flax import nnx

import arjax
from arjax import models
from conftest import all_configurations, perturb

NUM_DIMS = 5


def order_agnostic_models():
  return {
      "deep_nade": perturb(models.DeepNADE((NUM_DIMS,), hidden_sizes=(8, 8), activation="tanh",
                                           num_masks=3, rngs=nnx.Rngs(0)), 1.0),
      "made": perturb(models.MADE((NUM_DIMS,), hidden_sizes=(8, 8), activation="tanh",
                                  ordering="random", num_masks=3, rngs=nnx.Rngs(0)), 1.0),
  }


def brute_force_marginal(model, x, observed):
  """log Σ over the unobserved values of the joint, by enumeration: `[B]`. Row b uses the
  joint of the ordering that `marginal_log_prob` uses for it (observed dimensions first):
  an order-agnostic model defines one joint per ordering."""
  every = all_configurations(model.head, NUM_DIMS)  # [K^D, D]
  out = []
  for x_row, observed_row in zip(x, observed):
    if model.order_agnostic:
      model.set_ordering(arjax.marginals.observed_first(observed_row, model.draw_orderings[0]))
    joint = arjax.log_prob(model, every)  # [K^D]
    matches = jnp.all((every == x_row) | ~observed_row, axis=-1)  # [K^D]
    out.append(jax.nn.logsumexp(jnp.where(matches, joint, -jnp.inf)))
  if model.order_agnostic:
    model.set_mask(0)
  return jnp.stack(out)


@pytest.mark.parametrize("family", ["deep_nade", "made"])
def test_marginal_equals_brute_force_sum_of_the_joint(family):
  model = order_agnostic_models()[family]
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.integers(0, 2, (6, NUM_DIMS)), jnp.float32)
  observed = jnp.asarray(rng.random((6, NUM_DIMS)) < 0.5)
  observed = observed.at[0].set(False).at[1].set(True)  # the empty and the full set too
  marginal = arjax.marginal_log_prob(model, x, observed)
  np.testing.assert_allclose(marginal, brute_force_marginal(model, x, observed), atol=1e-4)
  # log p(x_S) + log p(x_rest | x_S) is the joint log p(x) of that same ordering.
  joint = []
  for x_row, observed_row in zip(x, observed):
    model.set_ordering(arjax.marginals.observed_first(observed_row, model.draw_orderings[0]))
    joint.append(arjax.log_prob(model, x_row[None])[0])
  model.set_mask(0)
  np.testing.assert_allclose(marginal + arjax.conditional_log_prob(model, x, observed),
                             jnp.stack(joint), atol=1e-4)


def test_fixed_order_models_need_a_prefix():
  model = perturb(models.NADE((NUM_DIMS,), num_hidden=8, ordering="reverse", rngs=nnx.Rngs(0)))
  x = jnp.ones((2, NUM_DIMS))
  prefix = jnp.array([False, False, False, True, True])  # the first two positions of "reverse"
  np.testing.assert_allclose(arjax.marginal_log_prob(model, x, prefix),
                             brute_force_marginal(model, x, jnp.broadcast_to(prefix, x.shape)),
                             atol=1e-4)
  with pytest.raises(ValueError, match="prefix"):
    arjax.marginal_log_prob(model, x, jnp.array([True, False, False, False, False]))
  with pytest.raises(ValueError, match="observed must be"):
    arjax.marginal_log_prob(model, x, jnp.ones((3,), bool))


def test_exact_conditional_samples_match_the_brute_force_conditional():
  model = order_agnostic_models()["deep_nade"]
  x = jnp.array([1.0, 0.0, 0.0, 1.0, 0.0])
  observed = jnp.array([True, False, False, True, False])  # not a prefix of any fixed ordering
  rows = jnp.broadcast_to(x, (20_000, NUM_DIMS))
  samples = np.asarray(arjax.sample_given(model, jax.random.key(3), rows, observed))
  np.testing.assert_array_equal(samples[:, observed], np.asarray(rows)[:, observed])
  # Frequencies of the 8 completions against p(x_rest | x_S), which must sum to 1 over them.
  completions = all_configurations(model.head, NUM_DIMS)
  completions = completions[jnp.all(completions[:, observed] == x[observed], axis=-1)]  # [8, D]
  probs = np.exp(np.asarray(arjax.conditional_log_prob(model, completions, observed), np.float64))
  np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-5)
  index = [int(np.flatnonzero((np.asarray(completions) == s).all(-1))[0]) for s in samples]
  counts = np.bincount(index, minlength=len(completions))
  _, p_value = scipy.stats.chisquare(counts, probs / probs.sum() * counts.sum())
  assert p_value > 1e-3, f"completions disagree with the exact conditional (p = {p_value:.2g})"


def test_order_agnostic_objective_is_unbiased_for_the_mean_over_orderings():
  model = perturb(models.DeepNADE((3,), hidden_sizes=(8,), activation="tanh", rngs=nnx.Rngs(0)), 1.0)
  x = jnp.array([[1.0, 0.0, 1.0]])
  exact = []
  for ordering in itertools.permutations(range(3)):
    model.set_ordering(jnp.array(ordering))
    exact.append(-float(arjax.log_prob(model, x)[0]))
  keys = jax.random.split(jax.random.key(0), 40_000)
  estimates = jax.vmap(lambda k: model.training_objective(x, k)[0])(keys)
  stderr = float(jnp.std(estimates)) / np.sqrt(len(keys))
  assert abs(float(jnp.mean(estimates)) - np.mean(exact)) < 4 * stderr + 1e-3


def test_deep_nade_ignores_unobserved_inputs():
  model = order_agnostic_models()["deep_nade"]
  observed = jnp.array([[True, False, True, False, False]])
  a = model.conditionals_given(jnp.array([[1.0, 0.0, 1.0, 0.0, 0.0]]), observed)
  b = model.conditionals_given(jnp.array([[1.0, 1.0, 1.0, 1.0, 1.0]]), observed)
  np.testing.assert_allclose(a, b)
