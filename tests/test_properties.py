"""The properties that make a likelihood model correct, for every family × head × ordering.

- autoregressive structure: ∂params_d/∂x_j = 0 unless j comes before d (Jacobian);
- exact normalization: Σ_x p(x) = 1 (enumeration), ∫ p(x) dx = 1 (grid);
- the sampler agrees with the likelihood (same conditionals, right frequencies);
- cached sampling = full-pass sampling; clamped dimensions come back unchanged.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import arjax
from conftest import (ALL_FAMILIES, DISCRETE_HEADS, HEADS, MODEL_CASES, all_configurations, dependencies,
                      earlier, make_model, random_values)


@pytest.mark.parametrize("family, head, ordering", MODEL_CASES)
def test_autoregressive_jacobian(family, head, ordering):
  model = make_model(family, head, ordering)
  num_dims = model.num_dims
  depends = dependencies(model, random_values(model.head, model.event_shape, seed=1))  # [D_out, D_in]
  allowed = earlier(model)  # input j comes before output d
  assert not np.any(depends & ~allowed), "a conditional depends on itself or a later dimension"
  first = np.asarray(model.ordering[...])[0]
  needs_inputs = np.arange(num_dims) != first
  assert np.all(depends[needs_inputs].any(axis=1)), "a conditional ignores all earlier dimensions"


@pytest.mark.parametrize("family", ALL_FAMILIES)
@pytest.mark.parametrize("head, num_dims", [("bernoulli", 8), ("categorical", 4), ("dlm", 3)])
def test_exact_normalization_discrete(family, head, num_dims):
  model = make_model(family, head, "random", num_dims=num_dims)
  x = all_configurations(model.head, num_dims).reshape(-1, *model.event_shape)
  total = jnp.exp(jax.nn.logsumexp(arjax.log_prob(model, x)))
  np.testing.assert_allclose(total, 1.0, atol=1e-4)


@pytest.mark.parametrize("family", ALL_FAMILIES)
@pytest.mark.parametrize("head", ["mog", "mol"])
def test_exact_normalization_continuous_2d(family, head):
  model = make_model(family, head, "reverse", num_dims=2, scale=0.3)
  grid = jnp.linspace(-25.0, 25.0, 1001)
  step = grid[1] - grid[0]
  x = jnp.stack(jnp.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, *model.event_shape)
  total = jnp.sum(jnp.exp(arjax.log_prob(model, x))) * step**2
  np.testing.assert_allclose(total, 1.0, atol=2e-3)


@pytest.mark.parametrize("family, head, ordering", MODEL_CASES)
def test_sampled_conditionals_equal_teacher_forced(family, head, ordering):
  model = make_model(family, head, ordering)
  samples, params = arjax.sample(model, jax.random.key(0), 16, return_conditionals=True)
  np.testing.assert_allclose(params, model.conditionals(samples), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ALL_FAMILIES)
@pytest.mark.parametrize("head", DISCRETE_HEADS)
def test_sample_frequencies_match_probabilities(family, head):
  model = make_model(family, head, "random", num_dims=3, scale=1.5)
  configurations = all_configurations(model.head, 3)
  probs = np.asarray(jnp.exp(arjax.log_prob(model, configurations.reshape(-1, *model.event_shape))),
                     np.float64)
  samples = np.asarray(arjax.sample(model, jax.random.key(7), 20_000)).reshape(20_000, -1)
  levels = int(configurations.max()) + 1
  index = (samples.astype(np.int64) * levels ** np.arange(2, -1, -1)).sum(-1)
  counts = np.bincount(index, minlength=len(configurations))
  expected = probs / probs.sum() * counts.sum()
  # Cells expected fewer than 5 times are pooled into one, as the chi-square test requires.
  rare = expected < 5
  if rare.any():
    counts = np.append(counts[~rare], counts[rare].sum())
    expected = np.append(expected[~rare], expected[rare].sum())
  _, p_value = scipy.stats.chisquare(counts, expected)
  assert p_value > 1e-3, f"sample frequencies disagree with the likelihood (p = {p_value:.2g})"


@pytest.mark.parametrize("family, head, ordering", MODEL_CASES)
def test_cached_sampling_equals_full_pass(family, head, ordering):
  model = make_model(family, head, ordering)
  key = jax.random.key(3)
  cached = arjax.sample(model, key, 8, use_cache=True)
  full = arjax.sample(model, key, 8, use_cache=False)
  # The same draws; continuous values agree to float32 rounding (the two programs' sums differ).
  np.testing.assert_allclose(cached, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ALL_FAMILIES)
@pytest.mark.parametrize("head", HEADS)
def test_clamped_dimensions_come_back_unchanged(family, head):
  model = make_model(family, head, "random")
  given = random_values(model.head, (5, *model.event_shape), seed=9)
  mask = np.random.default_rng(0).random((5, *model.event_shape)) < 0.5
  samples = arjax.sample(model, jax.random.key(1), 5, given=given, given_mask=mask)
  np.testing.assert_array_equal(np.asarray(samples)[mask], np.asarray(given)[mask])


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_temperature_zero_limit_is_deterministic(family):
  model = make_model(family, "bernoulli", "raster")
  a = arjax.sample(model, jax.random.key(0), 4, temperature=1e-4)
  b = arjax.sample(model, jax.random.key(1), 4, temperature=1e-4)
  np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_features_shape_and_batch_independence(family):
  model = make_model(family, "bernoulli")
  x = random_values(model.head, (4, *model.event_shape))
  features = arjax.features(model, x)
  assert features.ndim == 2 and features.shape[0] == 4
  np.testing.assert_allclose(arjax.features(model, x[:1]), features[:1], atol=1e-6)
