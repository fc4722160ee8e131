"""Shared factories: every family × head × ordering the generic property tests run over."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arjax import heads, models

FAMILIES = {
    "fvsbn": lambda event_shape, head, ordering: models.FVSBN(
        event_shape, head=head, ordering=ordering, ordering_seed=3, rngs=nnx.Rngs(0)),
    "nade": lambda event_shape, head, ordering: models.NADE(
        event_shape, head=head, ordering=ordering, ordering_seed=3, num_hidden=8, chunk_size=4,
        rngs=nnx.Rngs(0)),
    "lstm": lambda event_shape, head, ordering: models.RNN(
        event_shape, cell="lstm", head=head, ordering=ordering, ordering_seed=3, num_hidden=8,
        rngs=nnx.Rngs(0)),
    "gru": lambda event_shape, head, ordering: models.RNN(
        event_shape, cell="gru", head=head, ordering=ordering, ordering_seed=3, num_hidden=8,
        rngs=nnx.Rngs(0)),
    "made": lambda event_shape, head, ordering: models.MADE(
        event_shape, head=head, ordering=ordering, ordering_seed=3, hidden_sizes=(8, 8),
        activation="tanh", rngs=nnx.Rngs(0)),
    "deep_nade": lambda event_shape, head, ordering: models.DeepNADE(
        event_shape, head=head, ordering=ordering, ordering_seed=3, hidden_sizes=(8, 8),
        activation="tanh", positions_per_pass=4, rngs=nnx.Rngs(0)),
    "transformer": lambda event_shape, head, ordering: models.Transformer(
        event_shape, head=head, ordering=ordering, ordering_seed=3, num_layers=2, num_heads=2,
        embed_dim=8, rngs=nnx.Rngs(0)),
}

HEADS = {
    "bernoulli": heads.Bernoulli(),
    "categorical": heads.Categorical(num_classes=3),
    "mog": heads.MixtureOfGaussians(num_components=2),
    "mol": heads.MixtureOfLogistics(num_components=2),
    "dlm": heads.DiscretizedLogisticMixture(num_components=2, num_bins=4),
}
DISCRETE_HEADS = ("bernoulli", "categorical", "dlm")
ORDERINGS = ("raster", "reverse", "random")


def make_model(family: str, head: str, ordering="raster", num_dims: int = 6, *, scale: float = 0.7):
  """A small model whose parameters are pushed away from their (near-uniform) initial values,
  so that every property test sees a distribution with real structure."""
  return perturb(FAMILIES[family]((num_dims,), HEADS[head], ordering), scale)


def perturb(model, scale: float = 0.7):
  """The model with every parameter moved by scale·N(0, 1) (fixed seed)."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(42), len(leaves))
  leaves = [leaf + scale * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)]
  return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves), rest)


def random_values(head, shape, seed=0):
  """Valid values for `head` of the given shape."""
  rng = np.random.default_rng(seed)
  if isinstance(head, heads.Bernoulli):
    return jnp.asarray(rng.integers(0, 2, shape), jnp.float32)
  if isinstance(head, heads.Categorical):
    return jnp.asarray(rng.integers(0, head.num_classes, shape), jnp.int32)
  if isinstance(head, heads.DiscretizedLogisticMixture):
    return jnp.asarray(rng.integers(0, head.num_bins, shape), jnp.int32)
  return jnp.asarray(rng.normal(size=shape), jnp.float32)


def all_configurations(head, num_dims):
  """Every point of a discrete head's support in D dimensions: [K^D, D]."""
  levels = {heads.Bernoulli: 2}.get(type(head)) or getattr(head, "num_classes", None) or head.num_bins
  grid = np.array(list(itertools.product(range(levels), repeat=num_dims)))
  return jnp.asarray(grid, head.value_dtype)


# Orderings and heads are independent of each other, so every ordering runs with the
# Bernoulli head and every other head with the random ordering: every family meets
# every ordering and every head without the full product (which triples the suite).
MODEL_CASES = [pytest.param(f, h, o, id=f"{f}-{h}-{o}")
               for f in FAMILIES
               for h, o in [("bernoulli", o) for o in ORDERINGS] + [(h, "random") for h in HEADS if h != "bernoulli"]]
