"""Chunked NADE kernel vs. the plain cumsum reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arjax.models.nade_kernel import nade_conditionals, nade_conditionals_reference

# (B, D, H, P, chunk_size): D not divisible by C, C=1 (every chunk a single
# position), C > D (one padded chunk).
SHAPES = [
  (3, 10, 7, 1, 4),
  (5, 33, 11, 3, 8),
  (4, 7, 6, 3, 1),
  (2, 5, 4, 1, 16),
]


def _inputs(B, D, H, P, seed=0):
  k = jax.random.split(jax.random.PRNGKey(seed), 5)
  # Real-valued x so that gradients w.r.t. x are tested at generic points.
  x = jax.random.normal(k[0], (B, D))
  W = jax.random.normal(k[1], (D, H))
  c = jax.random.normal(k[2], (H,))
  V = jax.random.normal(k[3], (D, H, P))
  b = jax.random.normal(k[4], (D, P))
  return x, W, c, V, b


@pytest.mark.parametrize("B,D,H,P,C", SHAPES)
def test_values_and_gradients_match_reference(B, D, H, P, C):
  args = _inputs(B, D, H, P)
  # A random linear functional of the outputs probes the full VJP.
  probe = jax.random.normal(jax.random.PRNGKey(1), (B, D, P))

  @jax.jit
  def values_and_grads(*a):
    def vjp(fn):
      out, pullback = jax.vjp(fn, *a)
      return out, pullback(probe)

    return vjp(lambda *a: nade_conditionals(*a, chunk_size=C)), vjp(nade_conditionals_reference)

  (got, got_grads), (want, want_grads) = values_and_grads(*args)
  assert got.shape == (B, D, P)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  for name, g, w in zip("xWcVb", got_grads, want_grads):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=name)


def test_autoregressive_jacobian():
  B, D, H, P, C = 2, 11, 6, 3, 4
  x, W, c, V, b = _inputs(B, D, H, P)
  jac = jax.jacrev(lambda x: nade_conditionals(x, W, c, V, b, chunk_size=C))(x)
  # Examples are independent, so keep the within-example block [D, P, D].
  per_example = jnp.stack([jac[n, :, :, n, :] for n in range(B)])  # [B, D, P, D]
  d = jnp.arange(D)[:, None, None]
  j = jnp.arange(D)[None, None, :]
  assert jnp.all(jnp.where(j >= d, per_example, 0.0) == 0.0)
  assert jnp.any(jnp.abs(jnp.where(j < d, per_example, 0.0)) > 0.0)
  # Nor does any output depend on another example's inputs.
  other = jnp.arange(B)[:, None, None, None] != jnp.arange(B)[None, None, :, None]  # [B, 1, B, 1]
  assert jnp.all(jnp.where(other[:, :, None], jac, 0.0) == 0.0)


def test_vmap_matches_batched_call():
  B, D, H, P, C = 3, 9, 5, 1, 4
  x, W, c, V, b = _inputs(B, D, H, P)
  batched = nade_conditionals(x, W, c, V, b, chunk_size=C)
  mapped = jax.vmap(lambda xi: nade_conditionals(xi[None], W, c, V, b, chunk_size=C)[0])(x)
  np.testing.assert_allclose(mapped, batched, rtol=1e-6, atol=1e-6)
