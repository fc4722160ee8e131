"""Class-conditional models: every family with `context_size` C > 0, the label as context in the
training loop, and the generative classifier."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import arjax
from arjax import __main__ as cli
from arjax import config as config_lib
from arjax import checkpoints, data, models, train, uses
from arjax.models.nade_kernel import nade_conditionals, nade_conditionals_reference
from conftest import HEADS, IMAGE_FAMILIES, all_configurations, event_shape_for, perturb, random_values

CONTEXT_SIZE = 3

FAMILIES = {
    "fvsbn": lambda event_shape, head, context_size: models.FVSBN(
        event_shape, head=head, ordering="random", ordering_seed=3, context_size=context_size,
        rngs=nnx.Rngs(0)),
    "nade": lambda event_shape, head, context_size: models.NADE(
        event_shape, head=head, ordering="random", ordering_seed=3, num_hidden=8, chunk_size=4,
        context_size=context_size, rngs=nnx.Rngs(0)),
    "lstm": lambda event_shape, head, context_size: models.RNN(
        event_shape, cell="lstm", head=head, ordering="random", ordering_seed=3, num_hidden=8,
        context_size=context_size, rngs=nnx.Rngs(0)),
    "made": lambda event_shape, head, context_size: models.MADE(
        event_shape, head=head, ordering="random", ordering_seed=3, hidden_sizes=(8, 8),
        activation="tanh", direct_connections=True, context_size=context_size, rngs=nnx.Rngs(0)),
    "deep_nade": lambda event_shape, head, context_size: models.DeepNADE(
        event_shape, head=head, ordering="random", ordering_seed=3, hidden_sizes=(8, 8),
        activation="tanh", positions_per_pass=4, context_size=context_size, rngs=nnx.Rngs(0)),
    **IMAGE_FAMILIES,  # events [H, W, 1] of the same D pixels (conftest.event_shape_for)
}


def make_conditional(family, head="bernoulli", num_dims=6, context_size=CONTEXT_SIZE):
  return perturb(FAMILIES[family](event_shape_for(family, num_dims), HEADS[head], context_size))


def random_context(batch_size, seed=0):
  """Real-valued contexts [B, C]: the models take any vector, not only one-hot labels."""
  return jnp.asarray(np.random.default_rng(seed).normal(size=(batch_size, CONTEXT_SIZE)), jnp.float32)


@pytest.mark.parametrize("family", FAMILIES)
def test_autoregressive_given_context_and_every_conditional_sees_the_context(family):
  model = make_conditional(family)
  x = random_values(model.head, model.event_shape, seed=1)
  context = random_context(1)[0]
  # [D, P, D] and [D, P, C]: every conditional's params against x and against the context.
  jacobian_x, jacobian_context = jax.jit(jax.jacrev(
      lambda u, z: model.conditionals(u[None], context=z[None])[0], argnums=(0, 1)))(x, context)
  position = np.argsort(np.asarray(model.ordering[...]))
  num_dims = model.num_dims
  depends = np.abs(np.asarray(jacobian_x).reshape(num_dims, -1, num_dims)).sum(axis=1) > 0  # [D_out, D_in]
  jacobian_context = np.asarray(jacobian_context).reshape(num_dims, -1, CONTEXT_SIZE)
  assert not np.any(depends & ~(position[None, :] < position[:, None])), "a conditional sees the future"
  assert np.all(np.abs(np.asarray(jacobian_context)).sum(axis=(1, 2)) > 0), "a conditional ignores the context"


@pytest.mark.parametrize("family", FAMILIES)
def test_exact_normalization_for_each_context(family, num_dims=6):
  model = make_conditional(family, "bernoulli", num_dims)
  x = all_configurations(model.head, num_dims).reshape(-1, *model.event_shape)  # [K^D, *event_shape]
  log_probs = [arjax.log_prob(model, x, context=jnp.broadcast_to(random_context(1, seed), (len(x), CONTEXT_SIZE)))
               for seed in (0, 1)]
  for log_prob in log_probs:
    np.testing.assert_allclose(jnp.exp(jax.nn.logsumexp(log_prob)), 1.0, atol=1e-4)
  assert np.max(np.abs(log_probs[0] - log_probs[1])) > 1e-2, "two contexts give the same distribution"


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_sampling_with_context_equals_full_pass_and_likelihood(family):
  model = make_conditional(family, "categorical")  # P = 3 params per dimension
  context = random_context(8, seed=2)  # a different context per sample
  key = jax.random.key(3)
  cached, params = arjax.sample(model, key, 8, context=context, use_cache=True, return_conditionals=True)
  full = arjax.sample(model, key, 8, context=context, use_cache=False)
  np.testing.assert_allclose(cached, full, atol=1e-5)
  np.testing.assert_allclose(params, model.conditionals(cached, context=context), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_contexts_raise(family):
  model = make_conditional(family)
  x = random_values(model.head, (4, *model.event_shape))
  with pytest.raises(ValueError, match="is conditional"):
    arjax.log_prob(model, x)
  with pytest.raises(ValueError, match="is conditional"):
    arjax.sample(model, jax.random.key(0), 4)
  for bad in (random_context(3), random_context(4)[:, :2], random_context(4)[0]):
    with pytest.raises(ValueError, match=r"context must have shape \[batch, context_size\]"):
      arjax.log_prob(model, x, context=bad)
    with pytest.raises(ValueError, match=r"context must have shape"):
      arjax.sample(model, jax.random.key(0), 4, context=bad)
  unconditional = FAMILIES[family](model.event_shape, HEADS["bernoulli"], 0)
  with pytest.raises(ValueError, match="unconditional"):
    arjax.log_prob(unconditional, x, context=random_context(4))
  assert not any("context" in str(path) for path, _ in nnx.to_flat_state(nnx.state(unconditional))), \
      "context_size=0 must add no parameters"


def test_nade_kernel_takes_a_hidden_bias_per_example():
  keys = jax.random.split(jax.random.key(0), 5)
  x, c = jax.random.normal(keys[0], (3, 10)), jax.random.normal(keys[1], (3, 7))  # c: [B, H]
  W, V, b = (jax.random.normal(keys[2], (10, 7)), jax.random.normal(keys[3], (10, 7, 2)),
             jax.random.normal(keys[4], (10, 2)))
  probe = jax.random.normal(jax.random.key(1), (3, 10, 2))

  @jax.jit
  def values_and_grads(*args):
    def value_and_vjp(fn):
      out, pullback = jax.vjp(fn, *args)
      return out, pullback(probe)
    return value_and_vjp(lambda *a: nade_conditionals(*a, chunk_size=4)), value_and_vjp(nade_conditionals_reference)

  (chunked_values, chunked_grads), (values, grads) = values_and_grads(x, W, c, V, b)
  np.testing.assert_allclose(chunked_values, values, atol=1e-5, rtol=1e-5)
  for chunked, reference in zip(chunked_grads, grads):
    np.testing.assert_allclose(chunked, reference, atol=1e-4, rtol=1e-4)


@pytest.fixture
def two_classes(tmp_path):
  """Binary 4×4 images of two well-separated classes: class 0 mostly off, class 1 mostly on."""
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 800)
  images = (rng.random((800, 16)) < np.where(labels[:, None] == 1, 0.85, 0.15)).astype(np.uint8)
  path = tmp_path / "two_classes.npz"
  np.savez(path, x_train=images[:600], y_train=labels[:600], x_valid=images[600:700],
           y_valid=labels[600:700], x_test=images[700:], y_test=labels[700:])
  return path


def test_label_conditional_training_sampling_and_generative_classifier(two_classes, tmp_path, capsys):
  config = config_lib.Config(
      data=data.DataConfig(name=str(two_classes), context="label"),
      model=models.NADEConfig(num_hidden=8, context_size=2),
      optim=config_lib.OptimConfig(learning_rate=3e-2),
      train=config_lib.TrainConfig(batch_size=50, num_epochs=3, eval_batch_size=100, num_samples=8, log_every=4))
  workdir = tmp_path / "run"
  results = train.train_and_evaluate(config, workdir)
  metrics = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert metrics[-1]["valid_nll"] < metrics[0]["valid_nll"] - 0.5
  assert results["test_nll_nats"] < 16 * np.log(2)  # beats the uniform distribution
  assert (workdir / "samples" / "best.png").exists()

  model, _, dataset = checkpoints.load_trained_model(workdir)
  x, labels = dataset.splits["test"], dataset.labels["test"]
  predictions, log_posterior = uses.generative_classifier(model, x, 2)
  assert log_posterior.shape == (100, 2)
  np.testing.assert_allclose(np.exp(log_posterior).sum(1), 1.0, atol=1e-6)
  assert np.mean(predictions == labels) > 0.95
  prior_only, _ = uses.generative_classifier(model, x, 2, log_prior=np.log([1.0, 1e-30]))
  assert np.all(prior_only == 0), "an overwhelming prior decides"
  with pytest.raises(ValueError, match="context_size=2"):
    uses.generative_classifier(model, x, 3)

  capsys.readouterr()
  assert cli.main(["classify", str(workdir)]) == 0
  assert json.loads(capsys.readouterr().out)["accuracy"] > 0.95
  assert cli.main(["sample", str(workdir), "--num", "4", "--label", "1"]) == 0
  assert cli.main(["probe", str(workdir)]) == 2  # a probe on label-conditioned features is refused
  assert "class-conditional" in capsys.readouterr().err


def test_label_context_needs_labels_and_a_matching_model(tmp_path):
  path = tmp_path / "unlabelled.npz"
  images = np.zeros((30, 4), np.uint8)
  np.savez(path, train=images[:10], valid=images[10:20], test=images[20:])
  with pytest.raises(ValueError, match="needs class labels.*name='mnist', binarize='static'"):
    data.load_dataset(data.DataConfig(name=str(path), context="label"))
