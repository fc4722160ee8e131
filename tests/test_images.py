"""What only image families have: channel groups, the blind spot, exact sums over tiny images, cached
sampling on [H, W, C] events, bad image input, and training on image data (binary, and RGB with a
discretized logistic mixture). The generic property tests run for the same families through
`conftest.IMAGE_FAMILIES` (tests/test_properties.py, tests/test_context.py)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import arjax
from arjax import config as config_lib
from arjax import checkpoints, data, heads, models, train
from conftest import (HEADS, IMAGE_FAMILIES, IMAGE_ORDERINGS, IMAGE_SHAPES, SMALL_IMAGE_CONFIGS,
                      all_configurations, dependencies, earlier, make_image_model, random_values)

IMAGE_CASES = [pytest.param(family, shape, id=f"{family}-{name}")
               for family in IMAGE_FAMILIES for name, shape in IMAGE_SHAPES.items()]


@pytest.mark.parametrize("family, event_shape", IMAGE_CASES)
def test_autoregressive_over_pixels_and_channels(family, event_shape):
  """∂params_d/∂x_j is exactly 0 unless j comes before d in the model's ordering ((row, column,
  channel) for the PixelCNNs), and every sub-pixel after the first depends on some earlier one (for
  C = 3: on the earlier channels of its own pixel too)."""
  model = make_image_model(family, "categorical", event_shape)
  # Two inputs: at one of them a saturated tanh (exactly ±1 in float32) can zero a path that exists.
  depends = (dependencies(model, random_values(model.head, event_shape, seed=1))
             | dependencies(model, random_values(model.head, event_shape, seed=2)))
  allowed = earlier(model)
  assert not np.any(depends & ~allowed), "a conditional depends on itself or a later sub-pixel"
  order = np.asarray(model.ordering[...])
  assert np.all(depends[order[1:]].any(axis=1)), "a conditional ignores every earlier sub-pixel"
  channels = event_shape[2]
  for channel in range(1, channels):  # sub-pixel (p, c) sees (p, c') for c' < c
    for pixel in range(model.num_dims // channels):
      assert depends[pixel * channels + channel, pixel * channels:pixel * channels + channel].all()


def missing_dependencies(model, x) -> np.ndarray:
  """Pairs (d_out, d_in) with d_in earlier than d_out that d_in does not reach: `[M, 2]`."""
  return np.argwhere(earlier(model) & ~dependencies(model, x))


@pytest.mark.parametrize("event_shape", IMAGE_SHAPES.values(), ids=IMAGE_SHAPES)
def test_gated_pixelcnn_has_no_blind_spot(event_shape):
  """Its receptive field (7 × 7 first layers, two 3 × 3 gated layers) covers these images: every
  earlier sub-pixel reaches every output."""
  model = make_image_model("gated_pixelcnn", "bernoulli", event_shape)
  x = random_values(model.head, event_shape, seed=2)
  assert missing_dependencies(model, x).size == 0


def test_the_same_check_finds_pixelcnns_blind_spot():
  """A plain PixelCNN never sees the pixels up and to the right beyond its first kernel's reach
  (here: row r − 1, column c + 4 from (r, c)), however deep; the check above fails on it."""
  model = make_image_model("pixelcnn", "bernoulli", (5, 5, 1))
  missing = missing_dependencies(model, random_values(model.head, (5, 5, 1), seed=2))
  assert missing.size > 0
  rows_out, cols_out = np.divmod(missing[:, 0], 5)
  rows_in, cols_in = np.divmod(missing[:, 1], 5)
  assert np.all(rows_in < rows_out) and np.all(cols_in > cols_out), "the blind spot is up and right"
  assert [1 * 5 + 0, 0 * 5 + 4] in missing.tolist()  # (1, 0) misses (0, 4)


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
@pytest.mark.parametrize("head, event_shape", [("bernoulli", (2, 3, 1)), ("categorical", (2, 2, 1)),
                                               ("bernoulli", (1, 2, 3))])
def test_exact_normalization_of_tiny_images(family, head, event_shape):
  model = make_image_model(family, head, event_shape)
  x = all_configurations(model.head, model.num_dims).reshape(-1, *event_shape)  # every image
  total = jnp.exp(jax.nn.logsumexp(arjax.log_prob(model, x)))
  np.testing.assert_allclose(total, 1.0, atol=1e-4)


@pytest.mark.parametrize("family, event_shape", IMAGE_CASES)
@pytest.mark.parametrize("head", ["bernoulli", "dlm"])
def test_cached_sampling_equals_full_pass_and_teacher_forcing(family, event_shape, head):
  model = make_image_model(family, head, event_shape)
  key = jax.random.key(5)
  cached, params = arjax.sample(model, key, 6, use_cache=True, return_conditionals=True)
  full = arjax.sample(model, key, 6, use_cache=False)
  assert cached.shape == (6, *event_shape)
  np.testing.assert_array_equal(cached, full)
  # The one-pixel windows and the full maps sum the same products in another order; float32 leaves
  # ~2e-5 after a few layers.
  np.testing.assert_allclose(params, model.conditionals(cached), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_bad_image_input_raises(family):
  model = make_image_model(family, "bernoulli", (5, 5, 1))
  with pytest.raises(ValueError, match=r"x must have shape \[batch, 5, 5, 1\]"):
    arjax.log_prob(model, jnp.zeros((2, 25)))  # flat vectors for an image model
  with pytest.raises(ValueError, match="values must be 0 or 1"):
    arjax.log_prob(model, jnp.full((2, 5, 5, 1), 2.0))
  with pytest.raises(ValueError, match="NaN"):
    arjax.log_prob(model, jnp.full((2, 5, 5, 1), jnp.nan))
  factory = IMAGE_FAMILIES[family]
  with pytest.raises(ValueError, match=r"event_shape must be \[height, width, channels\]"):
    factory((25,), heads.Bernoulli())
  cls = type(model)
  if family not in IMAGE_ORDERINGS:  # a raster-only family refuses any other ordering
    with pytest.raises(ValueError, match="raster order"):
      cls((5, 5, 1), ordering="random", num_features=6, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="num_features must be"):
    cls((4, 4, 3), num_features=2, rngs=nnx.Rngs(0))


def test_conv_modules_reject_bad_options():
  with pytest.raises(ValueError, match="mask_type must be 'A' or 'B'"):
    models.conv.MaskedConv2D(1, 4, kernel_size=3, mask_type="C", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="kernel_size must be odd"):
    models.conv.HorizontalStackConv(1, 4, kernel_size=4, mask_type="A", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="at least 3 features"):
    models.conv.MaskedConv2D(3, 2, kernel_size=3, mask_type="B", num_channels=3, rngs=nnx.Rngs(0))


def _image_npz(path, images):
  np.savez(path, train=images[:200], valid=images[200:250], test=images[250:300])
  return path


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_training_on_binary_images_beats_uniform(family, tmp_path):
  """The one training loop on [N, H, W, 1] images (`data.layout="image"`): a few epochs of tiny
  8 × 8 images with a bright block already beat the uniform 64 bits by a fifth."""
  rng = np.random.default_rng(0)
  images = (rng.random((300, 8, 8)) < 0.1).astype(np.uint8)
  images[:, 2:6, 2:6] = rng.random((300, 4, 4)) < 0.9
  config = config_lib.Config(
      data=data.DataConfig(name=str(_image_npz(tmp_path / "blocks.npz", images)), layout="image"),
      model=config_lib.models_lib.get_model_config(family, **SMALL_IMAGE_CONFIGS[family]),
      optim=config_lib.OptimConfig(learning_rate=1e-2),
      train=config_lib.TrainConfig(batch_size=50, num_epochs=3, eval_batch_size=50, num_samples=4))
  results = train.train_and_evaluate(config, tmp_path / "run")
  assert results["test_nll_nats"] < 0.8 * 64 * np.log(2)  # uniform: 44.4 nats; the data: ~21
  assert (tmp_path / "run" / "samples" / "best.png").exists()
  model, _, dataset = checkpoints.load_trained_model(tmp_path / "run")
  assert model.event_shape == dataset.event_shape == (8, 8, 1)


def test_rgb_discretized_logistic_pixelcnn_trains(tmp_path):
  """Synthetic colour images (G follows R, B follows G, 8 levels) through the loop with a
  discretized logistic mixture: the NLL falls well below the uniform 3 bits per sub-pixel, which
  needs the channel autoregression (the Jacobian test above proves it is there)."""
  rng = np.random.default_rng(0)
  red = rng.integers(0, 8, (300, 6, 6))
  images = np.stack([red, np.clip(red + rng.integers(-1, 2, red.shape), 0, 7),
                     np.clip(red + rng.integers(-1, 2, red.shape), 0, 7)], -1).astype(np.uint8)
  path = _image_npz(tmp_path / "colour.npz", images * 36)  # 0..252: 8-bit data with 8 levels used
  config = config_lib.Config(
      data=data.DataConfig(name=str(path), layout="image"),
      model=models.PixelCNNConfig(num_blocks=1, num_features=12, head_features=12,
                                  head=heads.DiscretizedLogisticMixture(num_components=3)),
      # At 1e-2 without clipping the loss overflowed to inf in the first steps.
      optim=config_lib.OptimConfig(learning_rate=3e-3, grad_clip_norm=1.0),
      train=config_lib.TrainConfig(batch_size=50, num_epochs=4, eval_batch_size=50, num_samples=4))
  results = train.train_and_evaluate(config, tmp_path / "run")
  metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert metrics[-1]["valid_nll"] < metrics[0]["valid_nll"]
  # Uniform over the 256 levels is 8 bits per sub-pixel: four short epochs of a tiny model must
  # already be below it (7.7 measured), which an infinite or untrained loss is not.
  assert results["test_bits_per_dim"] < 7.9


@pytest.fixture(scope="module")
def trained_on_images(tmp_path_factory):
  """(workdir of an unconditional, workdir of a label-conditional Gated PixelCNN, data path): each
  trained for 2 epochs on labelled 6 × 6 binary stripes (label 0: rows, 1: columns) as images."""
  folder = tmp_path_factory.mktemp("image_uses")
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 400)
  patterns = rng.integers(0, 2, (400, 6))
  images = np.where(labels[:, None, None] == 0, patterns[:, None, :], patterns[:, :, None]).astype(np.uint8)
  path = folder / "stripes.npz"
  np.savez(path, x_train=images[:300], y_train=labels[:300], x_valid=images[300:350],
           y_valid=labels[300:350], x_test=images[350:], y_test=labels[350:])
  workdirs = []
  for context, context_size in (("none", 0), ("label", 2)):
    config = config_lib.Config(
        data=data.DataConfig(name=str(path), layout="image", context=context),
        model=models.GatedPixelCNNConfig(num_layers=2, num_features=8, head_features=8,
                                         context_size=context_size),
        optim=config_lib.OptimConfig(learning_rate=2e-2),
        train=config_lib.TrainConfig(batch_size=25, num_epochs=2, eval_batch_size=50, num_samples=0))
    train.train_and_evaluate(config, folder / f"run_{context}")
    workdirs.append(folder / f"run_{context}")
  return (*workdirs, path)


def test_every_use_works_on_image_events(trained_on_images, tmp_path, capsys):
  """eval, sample, score, ood, inpaint, probe on [H, W, C] events, and classify / per-class samples
  with the label-conditional model, all through the command line."""
  from arjax import __main__ as cli
  unconditional, conditional, path = trained_on_images
  assert cli.main(["eval", str(unconditional)]) == 0
  assert cli.main(["sample", str(unconditional), "--num", "4", "--out", str(tmp_path / "s.png")]) == 0
  assert (tmp_path / "s.png").exists()
  assert cli.main(["score", str(unconditional), str(path), "--out", str(tmp_path / "score")]) == 0
  with np.load(tmp_path / "score" / "scores.npz") as scores:
    assert scores["per_dim_nll"].shape[1:] == (6, 6, 1) or scores["per_dim_nll"].shape[1] == 36
    assert np.all(np.isfinite(scores["nll_nats"]))
  assert cli.main(["ood", str(unconditional), "--ood", "noise", "--ood", "flip",
                   "--out", str(tmp_path / "ood")]) == 0
  assert cli.main(["inpaint", str(unconditional), "--mask", "bottom_half", "--num", "2",
                   "--completions", "2", "--out", str(tmp_path / "inpaint.png")]) == 0
  assert (tmp_path / "inpaint.png").exists()
  capsys.readouterr()
  assert cli.main(["probe", str(unconditional), "--max-train", "200"]) == 0
  probe = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert probe["pixels"]["num_features"] == 36 and probe["features"]["num_features"] == 8
  assert all(0.0 <= probe[kind]["test_accuracy"] <= 1.0 for kind in ("pixels", "features"))
  assert cli.main(["classify", str(conditional)]) == 0
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] > 0.6
  assert cli.main(["sample", str(conditional), "--num", "2", "--label", "1",
                   "--out", str(tmp_path / "one_class.png")]) == 0


def test_inpainting_and_features_on_images_through_the_api(trained_on_images):
  """Completions keep the observed (top) half exactly; features are `[N, F]`."""
  unconditional, _, _ = trained_on_images
  model, _, dataset = checkpoints.load_trained_model(unconditional)
  from arjax import uses
  x = dataset.splits["test"][:3]  # [3, 6, 6, 1]
  observed = np.zeros_like(x, bool)
  observed[:, :3] = True
  completions = uses.inpaint(model, jax.random.key(0), x, observed, num_completions=2)
  assert completions.shape == (2, 3, 6, 6, 1)
  np.testing.assert_array_equal(completions[:, :, :3], np.broadcast_to(x[:, :3], (2, 3, 3, 6, 1)))
  features = arjax.features(model, jnp.asarray(x))
  assert features.shape == (3, 8) and np.all(np.isfinite(features))
