"""Continuous data: MAF's dequantization and logit transform, bits per 8-bit pixel, 2-D toys."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from arjax import config as config_lib
from arjax import checkpoints, data, evaluation, heads, models, toy, train

LAMBDA = 1e-6


def _to_pixels(y, logit_lambda=LAMBDA):
  """Inverse of the transform in float64: x + u = 256·(sigmoid(y) − λ)/(1 − 2λ)."""
  y = np.asarray(y, np.float64)
  return 256.0 * (1.0 / (1.0 + np.exp(-y)) - logit_lambda) / (1.0 - 2.0 * logit_lambda)


def _write_8bit(tmp_path, num_dims=4):
  rng = np.random.default_rng(0)
  arrays = {split: rng.integers(0, 256, (n, num_dims)).astype(np.uint8)
            for split, n in (("train", 200), ("valid", 40), ("test", 40))}
  np.savez(tmp_path / "grey.npz", **arrays)
  return tmp_path / "grey.npz", arrays


# --------------------------------------------------------- dequantization ---


def test_dequantization_inverts_to_the_pixel_value_within_its_bin():
  rng = np.random.default_rng(0)
  x = np.repeat(np.arange(256.0), 20)  # every 8-bit value, 20 noise draws each
  noise = rng.uniform(1e-3, 1 - 1e-3, x.shape)
  y = data.logit_dequantize(x, noise, logit_lambda=LAMBDA)
  np.testing.assert_allclose(_to_pixels(y), x + noise, atol=1e-9)  # exact inverse in float64
  stored = y.astype(np.float32)  # what load_dataset keeps for valid/test
  np.testing.assert_array_equal(np.floor(_to_pixels(stored)), x)
  assert np.all(np.isfinite(data.logit_dequantize(np.array([0.0, 255.0]), np.array([0.0, 1 - 1e-12]),
                                                  logit_lambda=LAMBDA)))


def test_prepare_batch_draws_fresh_noise_per_key_and_stays_in_the_bin():
  config = data.DataConfig(name="mnist", dequantize="logit")
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, 50)), jnp.uint8)
  first = np.asarray(data.prepare_batch(config, x, jax.random.key(0)))
  again = np.asarray(data.prepare_batch(config, x, jax.random.key(0)))
  other = np.asarray(data.prepare_batch(config, x, jax.random.key(1)))
  np.testing.assert_array_equal(first, again)
  assert first.dtype == np.float32 and np.all(np.isfinite(first))
  assert np.mean(first != other) > 0.99
  values = np.asarray(x, np.float64)
  for batch in (first, other):
    pixels = _to_pixels(batch)
    assert np.all(pixels > values - 1e-3) and np.all(pixels < values + 1 + 1e-3)


def test_loading_dequantizes_valid_and_test_once_with_a_fixed_seed(tmp_path):
  path, arrays = _write_8bit(tmp_path)
  config = data.DataConfig(name=str(path), dequantize="logit")
  first, second = data.load_dataset(config), data.load_dataset(config)
  assert first.num_levels is None and first.splits["train"].dtype == np.uint8
  np.testing.assert_array_equal(first.splits["train"], arrays["train"])  # noise comes per step
  for split in ("valid", "test"):
    assert first.splits[split].dtype == np.float32
    np.testing.assert_array_equal(first.splits[split], second.splits[split])
    np.testing.assert_array_equal(np.floor(_to_pixels(first.splits[split])), arrays[split])
  assert not np.allclose(first.splits["valid"][:40], first.splits["test"][:40])


def test_dequantizing_anything_but_8_bit_data_is_an_error(tmp_path):
  binary = np.random.default_rng(0).integers(0, 2, (30, 4)).astype(np.uint8)
  np.savez(tmp_path / "b.npz", train=binary, valid=binary, test=binary)
  with pytest.raises(ValueError, match="8-bit"):
    data.load_dataset(data.DataConfig(name=str(tmp_path / "b.npz"), dequantize="logit"))
  with pytest.raises(ValueError, match="8-bit"):
    data.load_dataset(data.DataConfig(name="toy:two_moons", dequantize="logit"))
  path, _ = _write_8bit(tmp_path)
  with pytest.raises(ValueError, match="alternatives"):
    data.load_dataset(data.DataConfig(name=str(path), dequantize="logit", binarize="static"))
  with pytest.raises(ValueError, match="logit_lambda"):
    data.load_dataset(data.DataConfig(name=str(path), dequantize="logit", logit_lambda=0.0))


# -------------------------------------------------------- bits per pixel ---


def _factorized_gaussian_log_prob(y, means, scales):
  """A model that is independent N(mean_d, scale_d²) in logit space: `[B, D]` -> `[B]`."""
  return stats.norm.logpdf(y, means, scales).sum(-1)


def test_bits_per_pixel_matches_finite_differences_of_the_transform():
  rng = np.random.default_rng(1)
  num_dims = 6
  x = rng.integers(0, 256, (5, num_dims)).astype(np.float64)
  x[0] = [0, 255, 0, 255, 1, 254]  # the steep ends of the logit
  noise = rng.uniform(0.05, 0.95, x.shape)
  means, scales = rng.normal(size=num_dims), rng.uniform(1.0, 4.0, num_dims)

  def transform(p):  # p = (x + u)/256 -> y
    return data.logit_dequantize(256.0 * p, 0.0, logit_lambda=LAMBDA)

  p = (x + noise) / 256.0
  y = transform(p)
  step = 1e-5 * np.minimum(p, 1 - p)
  slope = (transform(p + step) - transform(p - step)) / (2 * step)  # dy_d/dp_d, [B, D]
  log_prob_logit = _factorized_gaussian_log_prob(y, means, scales)
  expected = -(log_prob_logit + np.log(slope).sum(-1)) / (num_dims * np.log(2)) + 8
  actual = data.logit_space_to_pixel_bits_per_dim(log_prob_logit, y, logit_lambda=LAMBDA)
  assert actual.shape == (5,)
  np.testing.assert_allclose(actual, expected, rtol=1e-7)


def test_bits_per_pixel_bounds_the_exact_discrete_mass():
  """E_U[bits] ≥ −log₂ P(x), with P(x) the logit-space Gaussian's mass on x's bin; tight mid-range."""
  mean, scale = 0.3, 2.0
  x = np.arange(256.0)
  edges = data.logit_dequantize(np.arange(257.0), 0.0, logit_lambda=LAMBDA)  # bin edges in logit space
  exact_bits = -np.log2(np.diff(stats.norm.cdf(edges, mean, scale)))  # [256]
  noise = (np.arange(4000) + 0.5) / 4000  # midpoint rule over U in [0, 1)
  y = data.logit_dequantize(x[:, None], noise[None, :], logit_lambda=LAMBDA).reshape(-1, 1)  # [256·4000, 1]
  bits = data.logit_space_to_pixel_bits_per_dim(
      stats.norm.logpdf(y[:, 0], mean, scale), y, logit_lambda=LAMBDA)
  expected_bits = bits.reshape(256, 4000).mean(1)  # [256]
  assert np.all(expected_bits >= exact_bits - 1e-6)
  np.testing.assert_allclose(expected_bits[64:192], exact_bits[64:192], atol=1e-3)


# ------------------------------------------------------------- toy data ---


@pytest.mark.parametrize("name", sorted(toy.GENERATORS))
def test_toy_datasets_load_with_the_right_shapes_and_are_deterministic(name):
  first = data.load_dataset(data.DataConfig(name=f"toy:{name}"))
  second = data.load_dataset(data.DataConfig(name=f"toy:{name}"))
  assert {s: a.shape for s, a in first.splits.items()} == {
      "train": (10_000, 2), "valid": (2_000, 2), "test": (2_000, 2)}
  assert first.event_shape == (2,) and first.image_shape is None and first.num_levels is None
  for split in data.SPLITS:
    assert first.splits[split].dtype == np.float32
    np.testing.assert_array_equal(first.splits[split], second.splits[split])
  assert not np.allclose(first.splits["valid"], first.splits["test"])
  assert np.all(np.abs(first.splits["train"].mean(0)) < 0.1)
  assert np.all((first.splits["train"].std(0) > 0.8) & (first.splits["train"].std(0) < 1.2))


def test_unknown_toy_lists_the_known_ones():
  with pytest.raises(ValueError, match="toy:two_moons"):
    data.load_dataset(data.DataConfig(name="toy:spirals"))


# ------------------------------------------------------------- training ---


def _config(data_config, num_epochs):
  return config_lib.Config(
      data=data_config,
      model=models.NADEConfig(num_hidden=16, head=heads.MixtureOfGaussians(num_components=4)),
      optim=config_lib.OptimConfig(learning_rate=1e-2),
      train=config_lib.TrainConfig(batch_size=50, num_epochs=num_epochs, eval_batch_size=500,
                                   num_samples=0, log_every=10))


def test_smoke_training_on_two_moons_lowers_the_validation_nll(tmp_path):
  config = _config(data.DataConfig(name="toy:two_moons", max_train_examples=2000, max_eval_examples=500),
                   num_epochs=3)
  results = train.train_and_evaluate(config, tmp_path / "run")
  metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert metrics[-1]["valid_nll"] < metrics[0]["valid_nll"] - 0.05
  assert "test_bits_per_pixel_8bit" not in results


def test_training_on_dequantized_data_reports_bits_per_8_bit_pixel(tmp_path):
  path, _ = _write_8bit(tmp_path)
  config = _config(data.DataConfig(name=str(path), dequantize="logit"), num_epochs=1)
  results = train.train_and_evaluate(config, tmp_path / "run")
  model, _, dataset = checkpoints.load_trained_model(tmp_path / "run")
  expected = data.logit_space_to_pixel_bits_per_dim(
      evaluation.dataset_log_prob(model, dataset.splits["test"]), dataset.splits["test"], logit_lambda=LAMBDA)
  np.testing.assert_allclose(results["test_bits_per_pixel_8bit"], expected.mean(), rtol=1e-5)
  assert np.isfinite(results["test_bits_per_pixel_8bit"])
