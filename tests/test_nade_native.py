"""NADE's fused CPU kernel (a C++ XLA custom call) vs. the plain cumsum reference."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import arjax
from arjax import models
from arjax.models import nade_native
from arjax.models.nade_kernel import nade_conditionals_reference

HAS_COMPILER = shutil.which(os.environ.get("CXX", "g++")) is not None
pytestmark = pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler: the fused kernel cannot be built")


@pytest.fixture(scope="module", autouse=True)
def built():
  # With a compiler present, a failed build is a bug, not a reason to skip.
  assert nade_native.available(), nade_native.unavailable_reason()


def _inputs(B, D, H, P, *, per_example_bias=False, seed=0):
  k = jax.random.split(jax.random.key(seed), 6)
  # Real-valued x with exact zeros (the kernel skips those updates) at generic points.
  x = jax.random.normal(k[0], (B, D)) * jax.random.bernoulli(k[5], 0.6, (B, D))
  W = jax.random.normal(k[1], (D, H))
  c = jax.random.normal(k[2], (B, H) if per_example_bias else (H,))
  V = jax.random.normal(k[3], (D, H, P))
  b = jax.random.normal(k[4], (D, P))
  return x, W, c, V, b


# (B, D, H, P, per-example bias): D below, at and across the 16-position chunks; a batch
# that is not a multiple of the 8-example tiles; several parameters per position.
SHAPES = [(3, 10, 7, 1, False), (9, 33, 11, 3, False), (1, 16, 5, 1, True), (17, 50, 12, 2, True)]


@pytest.mark.parametrize("B,D,H,P,per_example_bias", SHAPES)
def test_values_and_gradients_match_reference(B, D, H, P, per_example_bias):
  args = _inputs(B, D, H, P, per_example_bias=per_example_bias)
  probe = jax.random.normal(jax.random.key(1), (B, D, P))  # a random linear functional: the full VJP

  @jax.jit
  def values_and_grads(*a):
    def vjp(fn):
      out, pullback = jax.vjp(fn, *a)
      return out, pullback(probe)

    return vjp(nade_native.nade_conditionals_fused), vjp(nade_conditionals_reference)

  (got, got_grads), (want, want_grads) = values_and_grads(*args)
  assert got.shape == (B, D, P)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  for name, g, w in zip("xWcVb", got_grads, want_grads):
    assert g.shape == w.shape, name
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=name)


def test_autoregressive_jacobian():
  B, D, H, P = 2, 19, 6, 2
  x, W, c, V, b = _inputs(B, D, H, P)
  jac = jax.jacrev(lambda x: nade_native.nade_conditionals_fused(x, W, c, V, b))(x)  # [B, D, P, B, D]
  per_example = jnp.stack([jac[n, :, :, n, :] for n in range(B)])  # [B, D, P, D]
  d, j = jnp.arange(D)[:, None, None], jnp.arange(D)[None, None, :]
  assert jnp.all(jnp.where(j >= d, per_example, 0.0) == 0.0)
  assert jnp.any(jnp.abs(jnp.where(j < d, per_example, 0.0)) > 0.0)
  other = jnp.arange(B)[:, None, None, None] != jnp.arange(B)[None, None, :, None]
  assert jnp.all(jnp.where(other[:, :, None], jac, 0.0) == 0.0)


def test_vmap_matches_batched_call():
  x, W, c, V, b = _inputs(3, 9, 5, 1)
  batched = nade_native.nade_conditionals_fused(x, W, c, V, b)
  mapped = jax.vmap(lambda xi: nade_native.nade_conditionals_fused(xi[None], W, c, V, b)[0])(x)
  np.testing.assert_allclose(mapped, batched, rtol=1e-6, atol=1e-6)


def test_nan_propagates():
  x, W, c, V, b = _inputs(2, 20, 4, 1)
  x = x.at[:, 3].set(jnp.array([1.0, 0.0]))
  out = np.asarray(nade_native.nade_conditionals_fused(x, W.at[3, 0].set(jnp.nan), c, V, b))
  # A NaN weight of position 3 reaches every later position of example 0 (x_3 = 1), and
  # nothing of example 1 (x_3 = 0), as in the reference.
  assert np.isnan(out[0, 4:]).all() and not np.isnan(out[0, :4]).any() and not np.isnan(out[1]).any()


def test_nade_auto_uses_it_on_cpu_and_agrees_with_the_chunked_kernel():
  x = (jax.random.uniform(jax.random.key(0), (6, 40)) < 0.3).astype(jnp.float32)
  fused = models.NADE((40,), num_hidden=9, kernel="auto", rngs=nnx.Rngs(0))
  chunked = models.NADE((40,), num_hidden=9, kernel="chunked", rngs=nnx.Rngs(0))
  assert "arjax_nade_forward" in str(jax.make_jaxpr(lambda x: arjax.log_prob(fused, x))(x))
  np.testing.assert_allclose(arjax.log_prob(fused, x), arjax.log_prob(chunked, x), rtol=1e-5)
  loss = lambda model: -arjax.log_prob(model, x).mean()
  for got, want in zip(jax.tree.leaves(nnx.grad(loss)(fused)), jax.tree.leaves(nnx.grad(loss)(chunked))):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_auto_keeps_the_chunked_kernel_for_heads_with_several_parameters():
  model = models.NADE((12,), num_hidden=5, head=arjax.heads.Categorical(num_classes=4), rngs=nnx.Rngs(0))
  x = jnp.zeros((2, 12), jnp.int32)
  assert "arjax_nade_forward" not in str(jax.make_jaxpr(lambda x: arjax.log_prob(model, x))(x))


def test_auto_falls_back_to_the_chunked_kernel_with_a_warning(monkeypatch):
  monkeypatch.setattr(nade_native, "available", lambda: False)
  monkeypatch.setattr(nade_native, "unavailable_reason", lambda: "RuntimeError: no compiler (test)")
  nade_native.warn_unavailable.cache_clear()
  model = models.NADE((12,), num_hidden=5, rngs=nnx.Rngs(0))
  x = jnp.ones((2, 12))
  with pytest.warns(RuntimeWarning, match="no compiler"):
    jaxpr = str(jax.make_jaxpr(lambda x: arjax.log_prob(model, x))(x))
  assert "arjax_nade_forward" not in jaxpr
  nade_native.warn_unavailable.cache_clear()


def test_a_missing_compiler_is_a_clear_error(monkeypatch):
  monkeypatch.setenv("CXX", "no-such-compiler-arjax")
  with pytest.raises(RuntimeError, match="no C.. compiler 'no-such-compiler-arjax'"):
    nade_native._build.__wrapped__()
