"""Edges: bad option values, empty batches, malformed data files, values outside a head's support
under jit, and the smaller entry-point checks (issue 18 items 7-11)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FAMILIES, HEADS, random_values
from flax import nnx

import arjax
from arjax import config as config_lib
from arjax import data, heads, models, validation

# ------------------------------------------------- item 7: option values ---

BAD_OVERRIDES = [
    ("train.batch_size=0", "train.batch_size expects an int >= 1; got 0"),
    ("train.batch_size=-5", "train.batch_size expects an int >= 1; got -5"),
    ("train.num_epochs=0", "train.num_epochs expects an int >= 1; got 0"),
    ("train.num_epochs=-1", "train.num_epochs expects an int >= 1; got -1"),
    ("train.patience=0", "train.patience expects None or an int >= 1; got 0"),
    ("data.max_train_examples=0", "data.max_train_examples expects None or an int >= 1; got 0"),
    ("model.num_hidden=0", "model.num_hidden expects an int >= 1; got 0"),
    ("model.num_hidden=-5", "model.num_hidden expects an int >= 1; got -5"),
    ("model.chunk_size=0", "model.chunk_size expects an int >= 1; got 0"),
    ("optim.learning_rate=-0.01", "optim.learning_rate expects a finite number >= 0; got -0.01"),
    ("optim.learning_rate=nan", "optim.learning_rate expects a float"),
    ("optim.grad_clip_norm=-1", "optim.grad_clip_norm expects None or a finite number > 0; got -1"),
    ("optim.ema_decay=1.0", "optim.ema_decay expects a finite number >= 0 and < 1; got 1.0"),
    ("train.batch_size=2.5", "train.batch_size expects an int; got '2.5'"),
    ("model.head=discretized_logistic_mixture(num_bins=0)",
     "model.head: cannot build a head from 'discretized_logistic_mixture(num_bins=0)': "
     "DiscretizedLogisticMixture.num_bins expects an int >= 2; got 0"),
]


@pytest.mark.parametrize("override, message", BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_bad_override_names_the_dotted_field_and_its_range(override, message):
  _, config = config_lib.load_experiment("nade_binarized_mnist:smoke")
  with pytest.raises(ValueError, match=re.escape(message)):
    config_lib.apply_overrides(config, [override])


def test_deep_nade_and_rnn_overrides_are_checked_too():
  _, config = config_lib.load_experiment("nade_binarized_mnist:smoke")
  with pytest.raises(ValueError, match=r"model\.positions_per_pass expects an int >= 1; got 0"):
    config_lib.apply_overrides(config, ["model=deep_nade", "model.positions_per_pass=0"])
  with pytest.raises(ValueError, match=r"model\.num_hidden expects an int >= 1; got 0"):
    config_lib.apply_overrides(config, ["model=rnn", "model.num_hidden=0"])


BAD_CONSTRUCTIONS = {
    "NADE.num_hidden": lambda: models.NADE((4,), num_hidden=0, rngs=nnx.Rngs(0)),
    "NADE.chunk_size": lambda: models.NADE((4,), num_hidden=3, chunk_size=0, rngs=nnx.Rngs(0)),
    "NADEConfig.num_hidden": lambda: models.NADEConfig(num_hidden=-5),
    "DeepNADE.positions_per_pass": lambda: models.DeepNADE((4,), positions_per_pass=0, rngs=nnx.Rngs(0)),
    "DeepNADEConfig.hidden_sizes": lambda: models.DeepNADEConfig(hidden_sizes=(8, 0)),
    "RNN.num_hidden": lambda: models.RNN((4,), num_hidden=0, rngs=nnx.Rngs(0)),
    "RNNConfig.num_layers": lambda: models.RNNConfig(num_layers=0),
    "MADE.num_masks": lambda: models.MADE((4,), hidden_sizes=(8,), num_masks=0, rngs=nnx.Rngs(0)),
    "FVSBN.context_size": lambda: models.FVSBN((4,), context_size=-1, rngs=nnx.Rngs(0)),
    "FVSBN.head": lambda: models.FVSBN((4,), head="bernoulli", rngs=nnx.Rngs(0)),
    "DiscretizedLogisticMixture.num_bins": lambda: heads.DiscretizedLogisticMixture(num_bins=0),
    "Categorical.num_classes": lambda: heads.Categorical(num_classes=2.5),
    "MixtureOfGaussians.min_scale": lambda: heads.MixtureOfGaussians(min_scale=0.0),
    "OptimConfig.learning_rate": lambda: config_lib.OptimConfig(learning_rate=-0.01),
    "OptimConfig.grad_clip_norm": lambda: config_lib.OptimConfig(grad_clip_norm=-1.0),
    "TrainConfig.batch_size": lambda: config_lib.TrainConfig(batch_size=0),
    "TrainConfig.patience": lambda: config_lib.TrainConfig(patience=0),
    "TrainConfig.num_epochs": lambda: config_lib.TrainConfig(num_epochs=True),
    "DataConfig.max_train_examples": lambda: data.DataConfig(max_train_examples=0),
    "DataConfig.logit_lambda": lambda: data.DataConfig(logit_lambda=float("nan")),
}


@pytest.mark.parametrize("field", BAD_CONSTRUCTIONS)
def test_python_constructors_check_their_options(field):
  with pytest.raises(validation.FieldError, match=f"^{re.escape(field)} expects "):
    BAD_CONSTRUCTIONS[field]()


def test_the_defaults_and_a_saved_config_pass_the_checks():
  _, config = config_lib.load_experiment("nade_binarized_mnist")
  assert config_lib.from_dict(config_lib.to_dict(config)) == config
  for family in models.MODEL_CONFIGS.values():
    family()


@pytest.mark.parametrize("temperature", [float("nan"), 0.0, -1.0, float("inf")])
def test_sample_refuses_a_temperature_outside_its_range(temperature):
  model = models.FVSBN((4,), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="temperature expects a finite number > 0"):
    arjax.sample(model, jax.random.key(0), 2, temperature=temperature)


def test_sample_refuses_a_negative_count():
  with pytest.raises(ValueError, match="num_samples expects an int >= 0; got -1"):
    arjax.sample(models.FVSBN((4,), rngs=nnx.Rngs(0)), jax.random.key(0), -1)


# -------------------------------------------------- item 8: empty batches ---


@pytest.mark.parametrize("family", FAMILIES)
def test_an_empty_batch_gives_empty_results_of_the_right_shape(family):
  model = FAMILIES[family]((6,), HEADS["bernoulli"], "raster")
  x = np.zeros((0, 6), np.float32)
  assert arjax.log_prob(model, x).shape == (0,)
  assert arjax.log_prob_per_dim(model, x).shape == (0, 6)
  assert arjax.ensemble_log_prob(model, x).shape == (0,)
  assert arjax.mask_log_probs(model, x).shape == (model.num_masks, 0)
  assert arjax.bits_per_dim(model, x).shape == (0,)
  features = jax.eval_shape(lambda x: model.features(x), jnp.zeros((2, 6)))  # [2, F], traced only
  assert arjax.features(model, x).shape == (0, features.shape[1])
  samples, params = arjax.sample(model, jax.random.key(0), 0, return_conditionals=True)
  assert samples.shape == (0, 6) and samples.dtype == model.head.value_dtype
  assert params.shape == (0, 6, 1)


def test_an_empty_batch_of_a_conditional_model_still_checks_its_context():
  model = models.NADE((6,), num_hidden=4, context_size=3, rngs=nnx.Rngs(0))
  assert arjax.log_prob(model, np.zeros((0, 6)), context=np.zeros((0, 3))).shape == (0,)
  with pytest.raises(ValueError, match="is conditional"):
    arjax.log_prob(model, np.zeros((0, 6)))
  assert arjax.sample(model, jax.random.key(0), 0, context=np.zeros((0, 3))).shape == (0, 6)


# ------------------------------------------------------ item 9: data files ---


def _write(tmp_path, name, **arrays):
  np.savez(tmp_path / f"{name}.npz", **arrays)
  return data.DataConfig(name=name, data_dir=str(tmp_path))


def test_data_files_with_bad_splits_name_the_file_the_split_and_the_expectation(tmp_path):
  ok = np.zeros((100, 20), np.uint8)
  cases = {
      "width": (dict(train=ok, valid=np.zeros((10, 19), np.uint8), test=ok),
                r"width\.npz: the splits' examples differ in shape \(train \(20,\), valid \(19,\), test \(20,\)\)"),
      "flat": (dict(train=np.zeros(100, np.uint8), valid=ok, test=ok),
               r"flat\.npz: split 'train' has shape \(100,\); expected an array \[N, \.\.\.\]"),
      "empty": (dict(train=ok, valid=ok, test=np.zeros((0, 20), np.uint8)),
                r"empty\.npz: split 'test' is empty \(shape \(0, 20\)\)"),
      "labels": (dict(x_train=ok, y_train=np.zeros(99), x_valid=ok, y_valid=np.zeros(100), x_test=ok,
                      y_test=np.zeros(100)),
                 r"labels\.npz: split 'train' has 100 examples but 99 labels"),
  }
  for name, (arrays, message) in cases.items():
    with pytest.raises(ValueError, match=message):
      data.load_dataset(_write(tmp_path, name, **arrays))


def test_a_file_that_is_not_a_zip_says_so(tmp_path):
  (tmp_path / "text.npz").write_text("train,valid,test\n0,1,0\n")
  with pytest.raises(ValueError, match=r"text\.npz is not an \.npz file \(a zip archive") as error:
    data.load_dataset(data.DataConfig(name="text", data_dir=str(tmp_path)))
  assert "pickle" not in str(error.value)


# ---------------------------------------- item 10: support inside jax.jit ---

OUTSIDE = {"bernoulli": [-1.0, 0.5, 2.0], "categorical": [7, -1, 3], "dlm": [4, -5, 9]}


@pytest.mark.parametrize("head", sorted(OUTSIDE))
@pytest.mark.parametrize("family", ["nade", "fvsbn"])
def test_under_jit_a_value_outside_the_support_has_probability_zero(family, head):
  model = FAMILIES[family]((4,), HEADS[head], "raster")
  x = np.array(random_values(HEADS[head], (3, 4)))
  x[:, 2] = OUTSIDE[head]  # one bad value per example
  with pytest.raises(ValueError):  # outside jit: the host-side check
    arjax.log_prob(model, x)
  per_dim, log_p = jax.jit(lambda x: (arjax.log_prob_per_dim(model, x), arjax.log_prob(model, x)))(
      jnp.asarray(x))
  assert np.all(np.asarray(per_dim[:, 2]) == -np.inf) and np.all(np.asarray(log_p) == -np.inf)
  assert np.all(np.isfinite(np.asarray(per_dim[:, :2])))  # the earlier dimensions are untouched


@pytest.mark.parametrize("head", sorted(HEADS))
def test_under_jit_nan_stays_nan(head):
  model = FAMILIES["nade"]((4,), HEADS[head], "raster")
  x = np.array(random_values(HEADS[head], (2, 4)), np.float32)
  x[0, 3] = np.nan
  log_p = np.asarray(jax.jit(lambda x: arjax.log_prob(model, x))(jnp.asarray(x)))
  assert np.isnan(log_p[0]) and np.isfinite(log_p[1])


def test_the_support_mask_leaves_valid_values_and_gradients_alone():
  head = heads.Categorical(num_classes=4)
  params = jax.random.normal(jax.random.key(0), (5, 4))
  x = jnp.array([0, 1, 2, 3, 1])
  np.testing.assert_allclose(head.log_prob(params, x),
                             jax.nn.log_softmax(params)[jnp.arange(5), x], rtol=1e-6)
  grad = jax.grad(lambda p: head.log_prob(p, x).sum())(params)
  np.testing.assert_allclose(grad, jax.nn.one_hot(x, 4) - jax.nn.softmax(params), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------ item 11: smaller ---


def test_a_non_integer_clamp_is_refused_before_it_is_truncated():
  model = models.NADE((4,), num_hidden=3, head=heads.Categorical(num_classes=4), rngs=nnx.Rngs(0))
  given = np.array([3.5, 0, 0, 0])
  with pytest.raises(ValueError, match="non-integer floats such as \\[3.5\\]"):
    arjax.sample(model, jax.random.key(0), 2, given=given, given_mask=np.array([True, False, False, False]))


def test_sample_takes_an_int_seed_and_says_what_a_key_is():
  model = models.FVSBN((5,), rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(arjax.sample(model, 0, 4), arjax.sample(model, jax.random.key(0), 4))
  np.testing.assert_array_equal(arjax.sample(model, np.int64(3), 2), arjax.sample(model, jax.random.key(3), 2))
  for bad in ["0", 0.5, jnp.zeros(3)]:
    with pytest.raises(ValueError, match=r"jax\.random\.key\(seed\)"):
      arjax.sample(model, bad, 2)


@pytest.mark.parametrize("kernel", ["auto", "chunked"])
def test_jacfwd_of_a_nade_with_a_custom_vjp_kernel_says_what_to_use(kernel):
  model = models.NADE((6,), num_hidden=4, kernel=kernel, rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match="reverse mode only.*kernel='cumsum'"):
    jax.jacfwd(lambda x: model.conditionals(x))(jnp.ones((1, 6)))
  cumsum = models.NADE((6,), num_hidden=4, kernel="cumsum", rngs=nnx.Rngs(0))
  assert jax.jacfwd(lambda x: cumsum.conditionals(x))(jnp.ones((1, 6))).shape == (1, 6, 1, 1, 6)


def test_sample_given_checks_its_temperature_and_takes_an_int_seed():
  model = models.DeepNADE((4,), hidden_sizes=(4,), rngs=nnx.Rngs(0))
  x, observed = np.zeros((2, 4), np.float32), np.array([True, False, False, False])
  with pytest.raises(ValueError, match="temperature expects a finite number > 0"):
    arjax.sample_given(model, jax.random.key(0), x, observed, temperature=float("nan"))
  np.testing.assert_array_equal(arjax.sample_given(model, 5, x, observed),
                                arjax.sample_given(model, jax.random.key(5), x, observed))
