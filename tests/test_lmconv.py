"""LMConv: every property under every one of its orderings, the mixture over orderings, and exact
inpainting of any side of an image."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import arjax
from arjax import heads, uses
from arjax.models import lmconv
from conftest import all_configurations, perturb, random_values

ORDERINGS = range(len(lmconv.PIXEL_ORDERINGS))


def make_lmconv(image_shape=(5, 4, 1), head=heads.Bernoulli(), **options):
  """A small LMConv with tanh (no flat regions: a Jacobian shows every allowed dependence) and
  parameters pushed away from their initial values."""
  options = {"num_features": 6, "num_layers": 2, "first_kernel_size": 3, "activation": "tanh",
             **options}
  return perturb(lmconv.LMConv(image_shape, head=head, rngs=nnx.Rngs(0), **options))


def test_pixel_orderings_are_the_named_paths():
  np.testing.assert_array_equal(lmconv.pixel_ordering("raster", 2, 3), [0, 1, 2, 3, 4, 5])
  np.testing.assert_array_equal(lmconv.pixel_ordering("s_curve", 2, 3), [0, 1, 2, 5, 4, 3])
  np.testing.assert_array_equal(lmconv.pixel_ordering("transposed", 2, 3), [0, 3, 1, 4, 2, 5])
  np.testing.assert_array_equal(lmconv.pixel_ordering("reverse_transposed_s_curve", 2, 3),
                                [0, 3, 4, 1, 2, 5][::-1])
  for name in lmconv.PIXEL_ORDERINGS:
    assert sorted(lmconv.pixel_ordering(name, 3, 4)) == list(range(12)), name


# Every ordering on a grey image; RGB (channel autoregression inside a pixel) under a raster-type
# and an S-curve ordering and their reversals.
JACOBIAN_CASES = ([pytest.param(index, (5, 4, 1), id=f"{index}-5x4x1") for index in ORDERINGS]
                  + [pytest.param(index, (4, 4, 3), id=f"{index}-4x4x3") for index in (0, 3, 4, 7)])


@pytest.mark.parametrize("index, image_shape", JACOBIAN_CASES)
def test_jacobian_exactly_zero_on_and_after_each_position(index, image_shape):
  model = make_lmconv(image_shape)
  model.set_mask(index)
  num_dims = model.num_dims
  x = random_values(model.head, (1, *model.event_shape), seed=1)
  jacobian = jax.jacrev(lambda u: model.conditionals(u[None])[0])(x[0])  # [H, W, C, P, H, W, C]
  depends = np.abs(np.asarray(jacobian).reshape(num_dims, -1, num_dims)).sum(1) > 0  # [D_out, D_in]
  ordering = np.asarray(model.ordering[...])
  height, width, channels = image_shape
  pixels = lmconv.pixel_ordering(lmconv.PIXEL_ORDERINGS[index], height, width)
  np.testing.assert_array_equal(ordering, (pixels[:, None] * channels + np.arange(channels)).ravel())
  position = np.argsort(ordering)
  allowed = position[None, :] < position[:, None]
  assert not np.any(depends & ~allowed), "a conditional depends on itself or a later pixel"
  needs_inputs = np.arange(num_dims) != ordering[0]
  assert np.all(depends[needs_inputs].any(axis=1)), "a conditional ignores every earlier pixel"


@pytest.mark.parametrize("head, image_shape", [(heads.Bernoulli(), (2, 3, 1)),
                                               (heads.Categorical(num_classes=3), (2, 2, 1))])
def test_exact_normalization_by_enumeration(head, image_shape):
  model = make_lmconv(image_shape, head)
  x = all_configurations(head, int(np.prod(image_shape))).reshape(-1, *image_shape)
  for index in ORDERINGS:
    model.set_mask(index)
    total = jnp.exp(jax.nn.logsumexp(arjax.log_prob(model, x)))
    np.testing.assert_allclose(total, 1.0, atol=1e-4, err_msg=f"ordering {index}")
  np.testing.assert_allclose(jnp.exp(jax.nn.logsumexp(arjax.ensemble_log_prob(model, x))), 1.0, atol=1e-4)


@pytest.mark.parametrize("index", ORDERINGS)
@pytest.mark.parametrize("head, image_shape", [(heads.Bernoulli(), (5, 4, 1)),
                                               (heads.Categorical(num_classes=3), (3, 4, 3))],
                         ids=["bernoulli-5x4x1", "categorical-3x4x3"])
def test_cached_sampling_equals_full_pass_and_teacher_forcing(index, head, image_shape):
  model = make_lmconv(image_shape, head, kernel_size=3, first_kernel_size=5)
  model.set_mask(index)
  key = jax.random.key(3)
  cached, params = arjax.sample(model, key, 6, use_cache=True, return_conditionals=True)
  full = arjax.sample(model, key, 6, use_cache=False)
  np.testing.assert_array_equal(cached, full)
  np.testing.assert_allclose(params, model.conditionals(cached), atol=1e-5, rtol=1e-5)


def test_ensemble_is_log_mean_exp_of_the_orderings():
  model = make_lmconv(num_orderings=5)
  x = random_values(model.head, (7, *model.event_shape), seed=2)
  per_ordering = []
  for index in range(5):
    model.set_mask(index)
    per_ordering.append(np.asarray(arjax.log_prob(model, x), np.float64))
  model.set_mask(0)
  direct = np.logaddexp.reduce(np.stack(per_ordering), axis=0) - np.log(5)
  np.testing.assert_allclose(arjax.ensemble_log_prob(model, x), direct, rtol=1e-5)
  # A mixture, not one of its components, and not the likelihood of averaged logits.
  assert np.max(np.abs(direct - per_ordering[0])) > 1e-3
  assert int(model.mask_index[...]) == 0, "the ensemble left the caller's model under another ordering"


def _right_half(image_shape, num):
  height, width, _ = image_shape
  observed = np.broadcast_to(np.arange(width)[None, :, None] >= width // 2, image_shape)
  return np.broadcast_to(observed.reshape(-1), (num, height * width)).copy()


SIDES = {"top_half": 0, "bottom_half": 1, "left_half": 2, "right_half": 3}  # -> the exact ordering


@pytest.mark.parametrize("side", SIDES)
def test_inpainting_any_side_is_exact(side):
  image_shape = (2, 4, 1)
  model = make_lmconv(image_shape)
  observed = (_right_half(image_shape, 3) if side == "right_half"
              else uses.observed_mask(side, image_shape, 3))  # [N, D]
  assert uses.exact_draw(model, observed) == SIDES[side]
  x = random_values(model.head, (3, *image_shape), seed=4)
  completions = uses.inpaint(model, jax.random.key(5), x, observed, num_completions=2)  # [2, N, H, W, 1]
  assert int(model.mask_index[...]) == 0, "inpaint left the caller's model under another ordering"
  flat_observed = observed.reshape(3, *image_shape)
  np.testing.assert_array_equal(completions[:, flat_observed], np.broadcast_to(x[flat_observed], (2, flat_observed.sum())))

  # Under the chosen ordering the sampler's conditionals are the teacher-forced ones, and the
  # observed pixels come first: the sum of their conditionals is the exact marginal log p(x_obs),
  # checked against enumerating every completion.
  model.set_mask(SIDES[side])
  _, params = arjax.sample(model, jax.random.key(5), 6, given=np.tile(x, (2, 1, 1, 1)),
                           given_mask=np.tile(flat_observed, (2, 1, 1, 1)), return_conditionals=True)
  completed = np.asarray(completions).reshape(6, *image_shape)
  np.testing.assert_allclose(params, model.conditionals(completed), atol=1e-5)
  every = all_configurations(model.head, model.num_dims).reshape(-1, *image_shape)  # [2^D, H, W, 1]
  mask = flat_observed[0]
  log_joint = np.asarray(arjax.log_prob(model, every))
  for example in range(3):
    consistent = np.all(np.asarray(every)[:, mask] == np.asarray(x[example])[mask], axis=1)
    marginal = np.logaddexp.reduce(log_joint[consistent])
    per_pixel = np.asarray(model.head.log_prob(model.conditionals(x[example:example + 1]), x[example:example + 1]))[0]
    np.testing.assert_allclose(per_pixel[mask].sum(), marginal, atol=1e-4)


def test_context_reaches_every_path():
  model = make_lmconv(context_size=3)
  x = random_values(model.head, (4, *model.event_shape), seed=6)
  context = jax.nn.one_hot(jnp.array([0, 1, 2, 0]), 3)
  params = model.conditionals(x, context=context)
  other_class = model.conditionals(x[:1], context=context[1:2])  # example 0 as class 1
  assert np.max(np.abs(np.asarray(other_class - params[:1]))) > 1e-4
  key = jax.random.key(0)
  cached = arjax.sample(model, key, 4, context=context, use_cache=True)
  np.testing.assert_array_equal(cached, arjax.sample(model, key, 4, context=context, use_cache=False))
  with pytest.raises(ValueError, match="context"):
    model.conditionals(x)


@pytest.mark.parametrize("event_shape, options, message", [
    ((5, 4, 3), {"num_features": 2}, "at least 3 features"),
    ((20,), {}, r"\[height, width, channels\]"),
    ((5, 4, 1), {"num_orderings": 9}, "num_orderings"),
    ((5, 4, 1), {"kernel_size": 4}, "odd"),
    ((5, 4, 1), {"activation": "swish"}, "activation"),
])
def test_bad_options_raise(event_shape, options, message):
  with pytest.raises(ValueError, match=message):
    lmconv.LMConv(event_shape, rngs=nnx.Rngs(0), **options)


def test_set_mask_outside_the_orderings_raises():
  with pytest.raises(ValueError, match="set_mask"):
    make_lmconv(num_orderings=4).set_mask(4)
