"""MADE's own properties: masks, mask draws, the ensemble likelihood.

The generic properties (Jacobian, normalization, sampler = likelihood) run
for MADE through `conftest.FAMILIES`; these tests cover what only MADE has.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import arjax
from arjax import heads, models, orderings
from conftest import perturb, random_values


log_prob = nnx.jit(arjax.log_prob)
conditionals = nnx.jit(lambda model, x: model.conditionals(x))
ensemble_log_prob = nnx.jit(arjax.ensemble_log_prob)


def _made(num_dims=6, **kwargs):
  options = dict(hidden_sizes=(8, 8), ordering="random", ordering_seed=1, num_masks=3)
  return perturb(models.MADE((num_dims,), **{**options, **kwargs}, rngs=nnx.Rngs(0)))


@pytest.mark.parametrize("num_dims, hidden_sizes", [
    (1, (4,)), (2, (1,)), (7, (3,)), (7, (2, 5)), (10, (4, 4, 4)), (10, (30, 30)), (30, (5, 40, 2)),
])
@pytest.mark.parametrize("method", orderings.MADE_DEGREE_METHODS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masks_are_strictly_triangular_and_connect_every_position(num_dims, hidden_sizes, method, seed):
  ordering = orderings.make_ordering("random", num_dims, seed=seed)
  weights = None
  if method == "quantile":  # weights with zeros, as for pixels that never vary
    rng = np.random.default_rng(seed)
    weights = rng.random(num_dims) * (rng.random(num_dims) < 0.6) + (np.arange(num_dims) == 0)
  degrees = orderings.made_degrees(ordering, hidden_sizes, seed=seed, method=method, dim_weights=weights)
  masks = orderings.made_masks(degrees)
  assert [m.shape for m in masks] == list(zip((num_dims, *hidden_sizes), (*hidden_sizes, num_dims)))
  paths = masks[0]
  for mask in masks[1:]:
    paths = paths @ mask  # [D_in, D_out]: number of paths from input j to output d
  position = orderings.inverse(ordering)
  before = position[:, None] < position[None, :]  # input j comes before output d
  assert not np.any((paths > 0) & ~before), "an output is reached by itself or a later input"
  assert np.all(paths[:, position >= 1].sum(0) > 0), "an output at position >= 1 has no path"
  direct = orderings.made_masks(degrees[:1])[0]
  np.testing.assert_array_equal(direct > 0, before)
  if method == "even" and min(hidden_sizes) >= num_dims - 1:
    np.testing.assert_array_equal(paths > 0, before)  # wide enough: every earlier input is seen


def test_hidden_degrees_stay_in_range_and_follow_the_seed():
  ordering = orderings.make_ordering("raster", 20)
  first = orderings.made_degrees(ordering, (50, 50), seed=5)
  again = orderings.made_degrees(ordering, (50, 50), seed=5)
  other = orderings.made_degrees(ordering, (50, 50), seed=6)
  for layer, same in zip(first[1:], again[1:]):
    np.testing.assert_array_equal(layer, same)
    assert layer.min() == 0 and layer.max() <= 18
  assert not np.array_equal(first[1], other[1])


def test_quantile_degrees_go_where_the_weight_is():
  weights = np.zeros(20)
  weights[[5, 6, 7, 8, 9]] = [1.0, 1.0, 1.0, 1.0, 4.0]
  ordering = orderings.make_ordering("reverse", 20)  # dimension d at position 19 - d
  degrees = orderings.made_degrees(ordering, (16,), method="quantile", dim_weights=weights)[1]
  assert degrees[0] == 0 and np.all(np.diff(degrees) >= 0)  # one unit pinned to the lowest degree
  positions = 19 - np.arange(5, 10)  # where the weighted dimensions are generated
  assert set(degrees[1:]) <= set(positions)
  assert np.sum(degrees == 19 - 9) == 7  # half of the weight: half of the other 15 units
  with pytest.raises(ValueError, match="dim_weights"):
    orderings.made_degrees(ordering, (16,), method="quantile")
  with pytest.raises(ValueError, match="nonnegative"):
    orderings.made_degrees(ordering, (16,), method="quantile", dim_weights=-weights)


def test_entropy_degrees_come_from_the_training_data_and_normalize(tmp_path):
  from arjax import config as config_lib, data, experiment
  rng = np.random.default_rng(0)
  images = (rng.random((60, 2, 3)) < [[0.0, 0.5, 0.9], [0.3, 0.0, 0.5]]).astype(np.uint8)
  np.savez(tmp_path / "d.npz", train=images[:40], valid=images[40:50], test=images[50:])
  config = config_lib.Config(data=data.DataConfig(name=str(tmp_path / "d.npz")),
                             model=models.MADEConfig(hidden_sizes=(12,), hidden_degrees="entropy"))
  dataset = data.load_dataset(config.data)
  model = experiment.build_model(config, dataset)
  entropies = models.made.marginal_entropies(dataset.splits["train"], heads.Bernoulli())
  assert entropies[0] == 0 and entropies[4] == 0 and np.all(np.delete(entropies, [0, 4]) > 0)
  degrees = np.asarray(model._hidden_degrees(0)[0])
  assert set(degrees[1:]) == {1, 2, 3}, "no unit should sit at a position that never varies"
  again = experiment.build_model(config, dataset)  # what load_trained_model rebuilds
  np.testing.assert_array_equal(np.asarray(again._hidden_degrees(0)[0]), degrees)
  model = perturb(model)
  from conftest import all_configurations
  total = jax.nn.logsumexp(log_prob(model, all_configurations(model.head, 6)))
  np.testing.assert_allclose(total, 0.0, atol=1e-5)
  with pytest.raises(ValueError, match="degree_weights"):
    models.MADEConfig(hidden_degrees="entropy").build((6,), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="discrete head"):
    models.made.marginal_entropies(images, heads.MixtureOfGaussians(num_components=2))


def test_ensemble_log_prob_is_log_mean_exp_over_masks():
  model = _made()
  x = random_values(model.head, (5, 6), seed=2)
  by_hand = []
  for k in range(model.num_masks):
    model.set_mask(k)
    by_hand.append(log_prob(model, x))
  expected = jax.nn.logsumexp(jnp.stack(by_hand), axis=0) - np.log(model.num_masks)
  model.set_mask(1)  # the ensemble does not depend on the current draw
  np.testing.assert_allclose(ensemble_log_prob(model, x), expected, rtol=1e-5, atol=1e-5)
  assert not np.allclose(by_hand[0], by_hand[1]), "the draws should be different models"


def test_switching_masks_never_changes_the_weights():
  model = _made(direct_connections=True)
  before = jax.tree.map(np.array, nnx.state(model, nnx.Param))
  x = random_values(model.head, (4, 6), seed=3)
  for k in (2, 0, 1):
    model.set_mask(k)
    log_prob(model, x)
  ensemble_log_prob(model, x)
  jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.array, nnx.state(model, nnx.Param)))


def test_set_mask_traced_inside_jit_matches_eager():
  """As a train step would use it: state closed over, the draw a traced index."""
  model = _made()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  x = random_values(model.head, (4, 6), seed=4)

  @jax.jit
  def conditionals_under(index):
    merged = nnx.merge(graphdef, params, rest)
    merged.set_mask(index)
    return merged.conditionals(x), merged.ordering[...]

  for k in range(model.num_masks):
    model.set_mask(k)
    params_k, ordering_k = conditionals_under(jnp.int32(k))
    np.testing.assert_allclose(params_k, conditionals(model, x), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ordering_k, model.ordering[...])
  with pytest.raises(ValueError, match="index"):
    model.set_mask(model.num_masks)


def test_sampler_follows_the_current_mask():
  model = _made(hidden_sizes=(8, 6, 8), head=heads.Categorical(num_classes=3), direct_connections=True)
  model.set_mask(2)
  assert not np.array_equal(model.ordering[...], model.draw_orderings[0])
  np.testing.assert_array_equal(model.ordering[...], model.draw_orderings[2])
  key = jax.random.key(5)
  samples, params = arjax.sample(model, key, 16, return_conditionals=True)
  np.testing.assert_allclose(params, conditionals(model, samples), rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(samples, arjax.sample(model, key, 16, use_cache=False))


@pytest.mark.parametrize("direct_connections", [False, True])
def test_every_mask_is_autoregressive(direct_connections):
  model = _made(num_dims=7, hidden_sizes=(5, 9), activation="tanh", direct_connections=direct_connections)
  x = random_values(model.head, (7,), seed=6)
  jacobian_of = nnx.jit(lambda model, u: jax.jacrev(lambda u: model.conditionals(u[None])[0, :, 0])(u))
  for k in range(model.num_masks):
    model.set_mask(k)
    jacobian = jacobian_of(model, x)  # [D_out, D_in]
    position = orderings.inverse(np.asarray(model.ordering[...]))
    depends = np.abs(np.asarray(jacobian)) > 0
    assert not np.any(depends & ~(position[None, :] < position[:, None])), f"mask {k}"
    assert np.all(depends[position >= 1].any(axis=1)), f"mask {k}: a conditional sees no input"


def test_fixed_ordering_is_shared_by_every_draw():
  model = models.MADE((6,), hidden_sizes=(8,), ordering="reverse", num_masks=3, rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(model.draw_orderings[...], np.tile(np.arange(6)[::-1], (3, 1)))
  degrees = np.asarray(model.draw_hidden_degrees[...])
  assert not np.array_equal(degrees[0], degrees[1]), "connectivity-agnostic draws should differ"


def test_features_are_the_last_hidden_layer():
  model = _made(hidden_sizes=(8, 5))
  x = random_values(model.head, (3, 6), seed=7)
  features = nnx.jit(arjax.features)(model, x)
  assert features.shape == (3, 5)
  assert np.all(np.asarray(features) >= 0)  # ReLU units
