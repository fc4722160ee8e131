"""The Transformer on image events [H, W, C] with row/column position embeddings (flat events run
in the generic tests of test_properties.py through conftest.FAMILIES)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import arjax
from arjax import heads, models
from conftest import all_configurations, perturb, random_values


def make_transformer(image_shape=(2, 3, 2), head=heads.Bernoulli(), ordering="raster", **options):
  options = {"num_layers": 2, "num_heads": 2, "embed_dim": 8, "position_embedding": "row_column",
             **options}
  return perturb(models.Transformer(image_shape, head=head, ordering=ordering, ordering_seed=1,
                                    rngs=nnx.Rngs(0), **options))


@pytest.mark.parametrize("ordering", ["raster", "random"])
def test_jacobian_exactly_zero_on_and_after_each_sub_pixel(ordering):
  model = make_transformer(ordering=ordering)
  num_dims = model.num_dims
  x = random_values(model.head, (1, *model.event_shape), seed=1)
  jacobian = jax.jacrev(lambda u: model.conditionals(u[None])[0])(x[0])  # [H, W, C, P, H, W, C]
  depends = np.abs(np.asarray(jacobian).reshape(num_dims, -1, num_dims)).sum(1) > 0
  position = np.argsort(np.asarray(model.ordering[...]))
  allowed = position[None, :] < position[:, None]
  assert not np.any(depends & ~allowed), "a conditional depends on itself or a later sub-pixel"
  needs_inputs = np.arange(num_dims) != np.asarray(model.ordering[...])[0]
  assert np.all(depends[needs_inputs].any(axis=1)), "a conditional ignores every earlier sub-pixel"


@pytest.mark.parametrize("head, image_shape", [(heads.Bernoulli(), (2, 3, 1)),
                                               (heads.Categorical(num_classes=3), (2, 2, 1))])
def test_exact_normalization_by_enumeration(head, image_shape):
  model = make_transformer(image_shape, head)
  x = all_configurations(head, int(np.prod(image_shape))).reshape(-1, *image_shape)
  np.testing.assert_allclose(jnp.exp(jax.nn.logsumexp(arjax.log_prob(model, x))), 1.0, atol=1e-4)


@pytest.mark.parametrize("context_size", [0, 3])
def test_kv_cache_sampling_equals_full_pass_and_teacher_forcing(context_size):
  model = make_transformer(head=heads.Categorical(num_classes=3), context_size=context_size)
  context = jax.nn.one_hot(jnp.arange(5) % 3, 3) if context_size else None
  key = jax.random.key(2)
  cached, params = arjax.sample(model, key, 5, context=context, use_cache=True,
                                return_conditionals=True)
  np.testing.assert_array_equal(cached, arjax.sample(model, key, 5, context=context, use_cache=False))
  np.testing.assert_allclose(params, model.conditionals(cached, context=context), atol=1e-5, rtol=1e-5)


def test_kv_cache_shape():
  model = make_transformer()
  cache = model.init_cache(4)
  assert cache["keys"].shape == (2, 4, model.num_dims, 2, 4)  # [layers, B, T, heads, head_dim]


@pytest.mark.parametrize("event_shape, options, message", [
    ((12,), {"position_embedding": "row_column"}, r"\[height, width, channels\]"),
    ((2, 3, 2), {"embed_dim": 6, "num_heads": 4}, "multiple"),
    ((2, 3, 2), {"position_embedding": "sinusoid"}, "position_embedding"),
    ((2, 3, 2), {"num_layers": 0}, "num_layers"),
])
def test_bad_options_raise(event_shape, options, message):
  with pytest.raises(ValueError, match=message):
    models.Transformer(event_shape, rngs=nnx.Rngs(0), **options)
