"""RNN-specific checks; the generic properties run for "lstm" and "gru" in test_properties.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import arjax
from arjax import heads, models
from conftest import random_values


def _two_layer_rnn(cell):
  return models.RNN((6,), cell=cell, num_hidden=8, num_layers=2, ordering="random",
                    ordering_seed=3, head=heads.Categorical(num_classes=3), rngs=nnx.Rngs(0))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_two_layers_autoregressive(cell):
  model = _two_layer_rnn(cell)
  x = random_values(model.head, (1, 6), seed=1).astype(jnp.float32)
  jacobian = jax.jacrev(lambda u: model.conditionals(u[None])[0])(x[0])  # [D, P, D]
  position = np.argsort(np.asarray(model.ordering[...]))
  depends = np.abs(np.asarray(jacobian)).sum(axis=1) > 0  # [D_out, D_in]
  assert not np.any(depends & ~(position[None, :] < position[:, None])), "a conditional sees the future"
  first = np.asarray(model.ordering[...])[0]
  assert np.all(depends[np.arange(6) != first].any(axis=1)), "the second layer cuts the inputs off"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_unrolled_steps_equal_scan(cell):
  """The Python loop step(t) / observe(t, x_t) over the data reproduces the teacher-forced scan."""
  model = _two_layer_rnn(cell)
  x = random_values(model.head, (5, 6), seed=2)
  cache = model.init_cache(5)
  unrolled = []
  for t in range(model.num_dims):
    params, cache = model.step(cache, t)  # [B, P]
    unrolled.append(params)
    cache = model.observe(cache, t, x[:, model.ordering[t]])
  unrolled = jnp.stack(unrolled, axis=1)  # [B, D, P], position order
  teacher_forced = model.conditionals(x)[:, model.ordering[...]]  # [B, D, P], position order
  np.testing.assert_allclose(unrolled, teacher_forced, atol=1e-6, rtol=1e-6)


def test_features_are_the_state_after_the_last_input():
  model = _two_layer_rnn("gru")
  x = random_values(model.head, (3, 6), seed=4)
  features = arjax.features(model, x)  # [B, H]
  assert features.shape == (3, 8)
  changed = x.at[:, model.ordering[-1]].set((x[:, model.ordering[-1]] + 1) % 3)
  assert not np.allclose(arjax.features(model, changed), features), "features ignore the last dimension"


def test_bad_cell_name_raises():
  with pytest.raises(ValueError, match="RNN.cell expects one of .*lstm.*gru.*got 'rnn'"):
    models.RNN((4,), cell="rnn", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="num_layers"):
    models.RNN((4,), num_layers=0, rngs=nnx.Rngs(0))


def test_config_builds_and_is_registered():
  config = models.get_model_config("rnn", cell="gru", num_hidden=4)
  model = config.build((2, 2), rngs=nnx.Rngs(0))
  assert isinstance(model, models.RNN) and isinstance(model.cells[0], nnx.GRUCell)
  assert model.conditionals(jnp.zeros((1, 2, 2))).shape == (1, 2, 2, 1)
