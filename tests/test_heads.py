"""Each output distribution on its own: normalization, moments, support checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arjax import heads


def random_params(head, shape, seed=0, scale=1.0):
  return head.init_bias() + scale * jax.random.normal(jax.random.key(seed), (*shape, head.num_params))


CONTINUOUS = [heads.MixtureOfGaussians(num_components=3), heads.MixtureOfLogistics(num_components=3)]


@pytest.mark.parametrize("head", CONTINUOUS, ids=lambda h: type(h).__name__)
def test_continuous_density_integrates_to_one(head):
  params = random_params(head, (5,))  # five different conditionals
  grid = jnp.linspace(-40, 40, 40001)
  density = jnp.exp(head.log_prob(params[:, None, :], grid[None, :]))  # [5, G]
  np.testing.assert_allclose(jnp.trapezoid(density, grid, axis=-1), 1.0, atol=1e-4)


@pytest.mark.parametrize("head", CONTINUOUS + [heads.Bernoulli(), heads.Categorical(num_classes=5)],
                         ids=lambda h: type(h).__name__)
def test_sample_moments_match_analytic(head):
  params = random_params(head, (3,), seed=1)
  samples = head.sample(jax.random.key(0), jnp.broadcast_to(params, (200_000, *params.shape)))
  mean, variance = head.moments(params)
  np.testing.assert_allclose(samples.mean(0), mean, atol=0.03 * (1 + np.sqrt(variance.max())))
  np.testing.assert_allclose(samples.var(0), variance, rtol=0.05, atol=1e-3)


@pytest.mark.parametrize("num_bins", [2, 4, 256])
def test_discretized_logistic_mixture_sums_to_one(num_bins):
  head = heads.DiscretizedLogisticMixture(num_components=4, num_bins=num_bins)
  params = random_params(head, (6,), scale=2.0)
  values = jnp.arange(num_bins)
  total = jnp.exp(jax.nn.logsumexp(head.log_prob(params[:, None, :], values[None, :]), axis=-1))
  np.testing.assert_allclose(total, 1.0, atol=1e-4)


def test_discretized_logistic_mixture_samples_match_probabilities():
  head = heads.DiscretizedLogisticMixture(num_components=2, num_bins=6)
  params = random_params(head, (), seed=4)
  probs = jnp.exp(head.log_prob(params[None], jnp.arange(6)))
  samples = head.sample(jax.random.key(0), jnp.broadcast_to(params, (100_000, head.num_params)))
  np.testing.assert_allclose(np.bincount(samples, minlength=6) / 100_000, probs, atol=0.01)


def test_categorical_is_softmax_normalized():
  head = heads.Categorical(num_classes=7)
  params = random_params(head, (4,))
  total = jnp.exp(head.log_prob(params[:, None, :], jnp.arange(7)[None, :])).sum(-1)
  np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_mixture_scale_floor_keeps_density_finite():
  head = heads.MixtureOfGaussians(num_components=2, min_scale=1e-2)
  params = jnp.array([0.0, 0.0, 0.0, 0.0, -1e4, -1e4])  # raw scales → softplus ≈ 0
  assert jnp.isfinite(head.log_prob(params, jnp.array(0.0)))
  assert head.log_prob(params, jnp.array(0.0)) < -np.log(1e-2 * np.sqrt(2 * np.pi)) + 1e-3


def test_initial_mixture_is_broad():
  head = heads.MixtureOfGaussians(num_components=5)
  _, locs, scales = jnp.split(head.init_bias(), 3)
  assert len(np.unique(locs)) == 5 and np.all(head.min_scale + jax.nn.softplus(scales) > 0.5)


@pytest.mark.parametrize("head, bad, message", [
    (heads.Bernoulli(), [0.0, 0.5], "0 or 1"),
    (heads.Bernoulli(), [0.0, np.nan], "NaN"),
    (heads.Categorical(num_classes=4), [0, 4], r"\[0, 4\)"),
    (heads.Categorical(num_classes=4), [0.0, 1.5], "integers"),
    (heads.Categorical(num_classes=4), [-1, 2], r"\[0, 4\)"),
    (heads.MixtureOfGaussians(), [0.0, np.inf], "NaN or infinite"),
    (heads.DiscretizedLogisticMixture(num_bins=256), [0, 256], r"\[0, 256\)"),
], ids=str)
def test_values_outside_support_raise(head, bad, message):
  with pytest.raises(ValueError, match=message):
    head.validate(np.array(bad))


def test_bad_head_options_raise():
  with pytest.raises(ValueError, match="num_classes"):
    heads.Categorical(num_classes=1)
  with pytest.raises(ValueError, match="min_scale"):
    heads.MixtureOfGaussians(min_scale=0.0)
  with pytest.raises(ValueError, match="Unknown head"):
    heads.get_head("poisson")


@pytest.mark.parametrize("head", [heads.Categorical(num_classes=256),
                                  heads.DiscretizedLogisticMixture(num_bins=256)], ids=str)
def test_uint8_pixels_are_in_the_support_of_256_level_heads(head):
  """8-bit data arrive as uint8, where the support bound 256 wraps to 0: every pixel must still
  have a finite log-probability, under jit as outside it."""
  x = jnp.asarray(np.array([0, 36, 128, 255], np.uint8))
  params = jnp.zeros((4, head.num_params))
  for log_prob in (head.log_prob, jax.jit(head.log_prob)):
    assert np.all(np.isfinite(log_prob(params, x)))
