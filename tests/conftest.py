"""Shared factories: every family × head × ordering the generic property tests run over."""

import itertools
import os

# The suite compiles hundreds of small programs and runs most of them for milliseconds: LLVM's
# optimizations cost more than they save there (on the 2-core CPU, the MADE property tests took
# 37 s instead of 48 s without them, the image training tests 47 s instead of 80 s). Set before
# JAX starts its backend; subprocesses inherit it.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

import jax  # noqa: E402 - after XLA_FLAGS
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

# Image families: events [H, W, C]; a pixel's channels are consecutive positions of the ordering
# (R before G before B). PixelCNN and Gated PixelCNN generate in raster order, the one order their
# masks implement; LMConv in the ordering its current mask picks. A factory takes (event_shape, head, context_size); further image
# families (e.g. an order-agnostic PixelCNN) add an entry here and every generic test runs for them.
IMAGE_FAMILIES = {
    "pixelcnn": lambda event_shape, head, context_size=0: models.PixelCNN(
        event_shape, head=head, num_blocks=2, num_features=6, head_features=6, activation="tanh",
        context_size=context_size, rngs=nnx.Rngs(0)),
    "gated_pixelcnn": lambda event_shape, head, context_size=0: models.GatedPixelCNN(
        event_shape, head=head, num_layers=2, num_features=6, head_features=6, activation="tanh",
        context_size=context_size, rngs=nnx.Rngs(0)),
    # One network over all 8 pixel orderings; the generic tests see the one that `set_mask` picks,
    # the reversed S-curve (no row or column of it runs the raster way).
    "lmconv": lambda event_shape, head, context_size=0: _with_mask(models.LMConv(
        event_shape, head=head, num_layers=2, num_features=6, kernel_size=3, first_kernel_size=3,
        activation="tanh", context_size=context_size, rngs=nnx.Rngs(0)), 5),
}
#: The families whose ordering is not raster, and the one the generic tests use.
IMAGE_ORDERINGS = {"lmconv": "reverse_s_curve"}
#: Each image family's config options for a small model that the training tests can afford.
SMALL_IMAGE_CONFIGS = {"pixelcnn": {"num_features": 8, "head_features": 8},
                       "gated_pixelcnn": {"num_features": 8, "head_features": 8},
                       "lmconv": {"num_features": 8, "num_layers": 2}}
#: The small images the image-specific tests use: one grey channel, and RGB (channel groups).
IMAGE_SHAPES = {"5x5x1": (5, 5, 1), "4x4x3": (4, 4, 3)}
ALL_FAMILIES = [*FAMILIES, *IMAGE_FAMILIES]


def _with_mask(model, index: int):
  model.set_mask(index)
  return model


def image_shape_for(num_dims: int) -> tuple[int, int, int]:
  """A one-channel image of D pixels for the generic tests' D: two rows when D is even."""
  return (2, num_dims // 2, 1) if num_dims % 2 == 0 and num_dims > 2 else (1, num_dims, 1)


def event_shape_for(family: str, num_dims: int) -> tuple[int, ...]:
  """The event shape a generic test of D dimensions uses for `family`: [D], or an image of D pixels."""
  return image_shape_for(num_dims) if family in IMAGE_FAMILIES else (num_dims,)


def make_image_model(family: str, head: str, event_shape, *, context_size: int = 0, scale: float = 0.7):
  """A small image model with perturbed parameters (see `make_model`)."""
  return perturb(IMAGE_FAMILIES[family](tuple(event_shape), HEADS[head], context_size), scale)


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
  if family in IMAGE_FAMILIES:  # each has its own ordering (IMAGE_ORDERINGS): `ordering` does not apply
    return make_image_model(family, head, image_shape_for(num_dims), scale=scale)
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
MODEL_CASES += [pytest.param(f, h, "raster", id=f"{f}-{h}-{IMAGE_ORDERINGS.get(f, 'raster')}")
                for f in IMAGE_FAMILIES for h in HEADS]


def dependencies(model, x, *, context=None) -> np.ndarray:
  """`[D_out, D_in]` bool: whether any param of flat dimension d_out has a nonzero derivative with
  respect to input d_in at `x [*event_shape]` (exactly nonzero: masked paths must give 0.0)."""
  x = jnp.asarray(x, jnp.float32)  # differentiate the float network input; discrete heads cast it
  context = None if context is None else context[None]
  jacobian = jax.jacrev(lambda u: model.conditionals(u[None], context=context)[0])(x)  # [*E, P, *E]
  jacobian = np.asarray(jacobian).reshape(model.num_dims, model.head.num_params, model.num_dims)
  return np.abs(jacobian).sum(axis=1) > 0


def earlier(model) -> np.ndarray:
  """`[D_out, D_in]` bool: input d_in comes before output d_out in the model's ordering."""
  position = np.argsort(np.asarray(model.ordering[...]))
  return position[None, :] < position[:, None]


def noisy_stripes(num: int) -> np.ndarray:
  """`[num, 6, 6]` uint8 binary images with strong structure: every row copies one random row
  pattern, 5% of the pixels flipped (seed 0, so every caller gets the same images)."""
  rng = np.random.default_rng(0)
  rows = rng.integers(0, 2, (num, 1, 6))
  return (np.repeat(rows, 6, axis=1) ^ (rng.random((num, 6, 6)) < 0.05)).astype(np.uint8)

