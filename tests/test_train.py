"""The training loop and command line, end to end on small data made here."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from flax import nnx

import arjax
from arjax import __main__ as cli
from arjax import config as config_lib
from arjax import checkpoints, data, evaluation, experiment, models, train
from conftest import noisy_stripes


@pytest.fixture
def stripes(tmp_path):
  """Binary 6×6 images with strong structure (rows copy a random row pattern)."""
  images = noisy_stripes(700)
  path = tmp_path / "stripes.npz"
  np.savez(path, train=images[:500], valid=images[500:600], test=images[600:])
  return path


def _config(path, model=models.NADEConfig(num_hidden=16), **train_options):
  options = dict(batch_size=25, num_epochs=3, eval_batch_size=50, num_samples=4, log_every=5)
  options.update(train_options)
  return config_lib.Config(data=data.DataConfig(name=str(path)), model=model,
                           optim=config_lib.OptimConfig(learning_rate=3e-2),
                           train=config_lib.TrainConfig(**options))


@pytest.mark.parametrize("model", [models.NADEConfig(num_hidden=16), models.FVSBNConfig()],
                         ids=["nade", "fvsbn"])
def test_smoke_training_lowers_validation_nll_and_writes_everything(stripes, tmp_path, model):
  workdir = tmp_path / "run"
  results = train.train_and_evaluate(_config(stripes, model), workdir)
  metrics = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert metrics[-1]["valid_nll"] < metrics[0]["valid_nll"] - 1.0
  assert results["test_nll_nats"] < 36 * np.log(2)  # beats the uniform distribution
  saved = json.loads((workdir / "results.json").read_text())
  assert saved["best_epoch"] == min(metrics, key=lambda m: m["valid_nll"])["epoch"]
  assert (workdir / "samples" / "epoch_003.png").exists() and list((workdir / "tb").iterdir())


def test_samples_every_thins_the_sample_grids_but_keeps_best(stripes, tmp_path):
  workdir = tmp_path / "run"
  train.train_and_evaluate(_config(stripes, num_epochs=5, samples_every=2), workdir)
  assert sorted(p.name for p in (workdir / "samples").iterdir()) == [
      "best.png", "epoch_002.png", "epoch_004.png"]
  with pytest.raises(ValueError, match="samples_every expects an int >= 1"):
    train.train_and_evaluate(_config(stripes, samples_every=0), tmp_path / "zero")


def test_validation_at_the_default_precision_selects_like_highest_on_cpu(stripes, tmp_path):
  highest = train.train_and_evaluate(_config(stripes), tmp_path / "highest")
  default = train.train_and_evaluate(_config(stripes, valid_precision="default"), tmp_path / "default")
  assert default["best_epoch"] == highest["best_epoch"]
  np.testing.assert_allclose(default["test_nll_nats"], highest["test_nll_nats"], rtol=1e-6)
  with pytest.raises(ValueError, match="highest"):
    config_lib.apply_overrides(_config(stripes), ["train.valid_precision=tf32"])


def test_checkpoints_written_in_the_background_are_complete(stripes, tmp_path):
  """Saves return before their files are written; each one (and the last, when the run
  ends) still holds exactly the parameters of its epoch."""
  workdir = tmp_path / "run"
  results = train.train_and_evaluate(_config(stripes, num_epochs=3), workdir)
  for which, epoch in (("latest", 3), ("best", results["best_epoch"])):
    assert checkpoints.manager(workdir, which).latest_step() == epoch
  checkpoints.load_trained_model(workdir, which="latest")  # complete: it restores
  best, _, _ = checkpoints.load_trained_model(workdir, which="best")
  x = np.asarray(data.load_dataset(_config(stripes).data).splits["test"], np.float32)
  np.testing.assert_allclose(-np.mean(np.asarray(arjax.log_prob(best, x))), results["test_nll_nats"],
                             rtol=1e-5)


def test_resume_continues_from_the_latest_checkpoint(stripes, tmp_path):
  workdir = tmp_path / "run"
  train.train_and_evaluate(_config(stripes, num_epochs=2), workdir)
  results = train.train_and_evaluate(_config(stripes, num_epochs=3), workdir)
  epochs = [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert epochs == [1, 2, 3] and results["epochs_run"] == 3
  assert results["wall_time_all_invocations_s"] > results["wall_time_s"]


def test_resuming_an_early_stopped_run_trains_no_further(stripes, tmp_path):
  workdir = tmp_path / "run"
  first = train.train_and_evaluate(_config(stripes, num_epochs=50, patience=1), workdir)
  assert first["stopped_early"] and first["epochs_run"] < 50
  again = train.train_and_evaluate(_config(stripes, num_epochs=50, patience=1), workdir)
  assert again["epochs_run"] == first["epochs_run"] and again["stopped_early"]
  assert again["test_nll_nats"] == first["test_nll_nats"]


@pytest.mark.parametrize("ema_decay", [0.0, 0.9], ids=["plain", "ema"])
def test_resume_matches_an_uninterrupted_run(stripes, tmp_path, ema_decay):
  def config(num_epochs):
    plain = _config(stripes, num_epochs=num_epochs)
    return dataclasses.replace(plain, optim=dataclasses.replace(plain.optim, ema_decay=ema_decay))
  once = train.train_and_evaluate(config(2), tmp_path / "once")
  train.train_and_evaluate(config(1), tmp_path / "twice")
  twice = train.train_and_evaluate(config(2), tmp_path / "twice")
  np.testing.assert_allclose(twice["test_nll_nats"], once["test_nll_nats"], rtol=1e-5)


def test_ema_tracks_the_average_of_the_iterates(stripes, tmp_path):
  config = _config(stripes, num_epochs=1)
  dataset = data.load_dataset(config.data)
  model = experiment.build_model(config, dataset)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx, _ = train.make_optimizer(config.optim, 10, 1)
  step = train._make_train_step(graphdef, rest, tx, config.data, ema_decay=0.5)
  state = {"params": params, "opt_state": tx.init(params), "step": jax.numpy.zeros((), jax.numpy.int32),
           "ema": jax.tree.map(jax.numpy.copy, params)}
  train_data = jax.numpy.asarray(dataset.splits["train"])
  copy = lambda tree: jax.tree.map(np.array, tree)  # the step donates (deletes) its input state
  iterates, averages = [copy(params)], [copy(params)]
  for i in range(3):
    state, _ = step(state, train_data, jax.numpy.arange(25) + 25 * i, jax.random.key(0))
    iterates.append(copy(state["params"]))
    averages.append(copy(state["ema"]))
  for t in range(3):  # decay min(0.5, (1 + t)/(10 + t)): 0.1, 0.18…, 0.25
    d = min(0.5, (1 + t) / (10 + t))
    expected = jax.tree.map(lambda a, p: d * a + (1 - d) * p, averages[t], iterates[t + 1])
    jax.tree.map(lambda e, a: np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7), expected, averages[t + 1])
  assert not np.allclose(jax.tree.leaves(averages[-1])[0], jax.tree.leaves(iterates[-1])[0])
  with pytest.raises(ValueError, match="ema_decay expects a finite number >= 0 and < 1; got 1.0"):
    bad = dataclasses.replace(config, optim=dataclasses.replace(config.optim, ema_decay=1.0))
    train.train_and_evaluate(bad, tmp_path / "bad")


def test_warm_start_begins_at_the_source_runs_best_parameters(stripes, tmp_path):
  source = train.train_and_evaluate(_config(stripes, num_epochs=3), tmp_path / "source")
  config = _config(stripes, num_epochs=1, init_from=str(tmp_path / "source"))
  frozen = dataclasses.replace(config, optim=config_lib.OptimConfig(learning_rate=0.0))
  warm = train.train_and_evaluate(frozen, tmp_path / "warm")  # no step moves the parameters
  np.testing.assert_allclose(warm["best_valid_nll_nats"], source["best_valid_nll_nats"], rtol=1e-5)
  cold = train.train_and_evaluate(dataclasses.replace(frozen, train=_config(stripes, num_epochs=1).train),
                                  tmp_path / "cold")
  assert cold["best_valid_nll_nats"] > source["best_valid_nll_nats"] + 1.0
  with pytest.raises(ValueError, match="another model shape"):
    train.train_and_evaluate(_config(stripes, models.NADEConfig(num_hidden=8), num_epochs=1,
                                     init_from=str(tmp_path / "source")), tmp_path / "other")
  with pytest.raises(FileNotFoundError, match="no best checkpoint"):
    train.train_and_evaluate(_config(stripes, num_epochs=1, init_from=str(tmp_path / "nowhere")),
                             tmp_path / "none")


def test_nan_loss_stops_with_clear_error_and_keeps_checkpoint(stripes, tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  train.train_and_evaluate(_config(stripes, num_epochs=1), workdir)
  real_step = train._make_train_step

  def poisoned(*args, **kwargs):
    step = real_step(*args, **kwargs)

    def nan_step(state, *rest):
      state, loss = step(state, *rest)
      return state, loss * np.nan
    return nan_step
  monkeypatch.setattr(train, "_make_train_step", poisoned)
  with pytest.raises(train.NonFiniteLossError, match="last good checkpoint"):
    train.train_and_evaluate(_config(stripes, num_epochs=2), workdir)
  model, _, _ = checkpoints.load_trained_model(workdir, which="latest")
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert json.loads((workdir / "results.json").read_text())["epochs_run"] == 1


def test_a_different_config_refuses_to_reuse_a_workdir(stripes, tmp_path):
  train.train_and_evaluate(_config(stripes, num_epochs=1), tmp_path / "run")
  with pytest.raises(ValueError, match="different config"):
    train.train_and_evaluate(_config(stripes, models.NADEConfig(num_hidden=8), num_epochs=1),
                             tmp_path / "run")


def test_data_that_does_not_fit_the_head_is_rejected_before_training(tmp_path):
  np.savez(tmp_path / "grey.npz", train=np.full((50, 4), 7, np.uint8), valid=np.zeros((5, 4), np.uint8),
           test=np.zeros((5, 4), np.uint8))
  with pytest.raises(ValueError, match="binarize"):
    train.train_and_evaluate(_config(tmp_path / "grey.npz"), tmp_path / "run")


def test_cli_train_eval_sample(stripes, tmp_path, capsys):
  workdir = tmp_path / "cli"
  assert cli.main(["train", "nade_binarized_mnist:smoke", "--workdir", str(workdir),
                   f"data.name={stripes}", "train.num_epochs=1", "train.batch_size=20"]) == 0
  assert cli.main(["eval", str(workdir)]) == 0
  evaluation = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  results = json.loads((workdir / "results.json").read_text())
  np.testing.assert_allclose(evaluation["nll_nats"], results["test_nll_nats"], rtol=1e-5)
  assert cli.main(["sample", str(workdir), "--num", "4", "--out", str(tmp_path / "s.png")]) == 0
  assert (tmp_path / "s.png").stat().st_size > 0


@pytest.mark.parametrize("overrides, message", [
    (["model.no_such_field=1"], "Unknown config field"),
    (["model=transformerxl"], "Unknown model family"),
    (["model.num_hidden=abc"], "expects an int"),
    (["optim.schedule=linear"], "must be one of"),
    (["model.head=poisson"], "unknown head|Unknown head"),
    (["num_hidden"], "field.subfield=value"),
])
def test_bad_overrides_raise_clear_errors(overrides, message):
  _, config = config_lib.load_experiment("nade_binarized_mnist:smoke")
  with pytest.raises(ValueError, match=message):
    config_lib.apply_overrides(config, overrides)


def test_overrides_parse_types_and_heads():
  _, config = config_lib.load_experiment("nade_binarized_mnist")
  config = config_lib.apply_overrides(config, [
      "model.num_hidden=64", "optim.learning_rate=1", "model.head=categorical(num_classes=256)",
      "model.ordering=random", "train.patience=None"])
  assert config.model.num_hidden == 64 and config.optim.learning_rate == 1.0
  assert config.model.head == arjax.heads.Categorical(num_classes=256)
  assert config.model.ordering == "random" and config.train.patience is None
  assert isinstance(config_lib.apply_overrides(config, ["model=fvsbn"]).model, models.FVSBNConfig)


def test_unknown_experiment_and_variant():
  with pytest.raises(ValueError, match="known experiments"):
    config_lib.load_experiment("no_such_experiment")
  with pytest.raises(ValueError, match="Unknown variant"):
    config_lib.load_experiment("nade_binarized_mnist:huge")


@pytest.mark.parametrize("family", ["nade", "fvsbn"])
def test_bad_inputs_to_the_public_functions(family):
  model = models.get_model_config(family).build((10,), rngs=nnx.Rngs(0))
  good = np.zeros((2, 10), np.float32)
  arjax.log_prob(model, good)
  with pytest.raises(ValueError, match=r"shape \[batch, 10\]"):
    arjax.log_prob(model, np.zeros((2, 11), np.float32))
  with pytest.raises(ValueError, match=r"shape \[batch, 10\]"):
    arjax.log_prob(model, np.zeros((10,), np.float32))
  with pytest.raises(ValueError, match="0 or 1"):
    arjax.log_prob(model, good + 0.5)
  with pytest.raises(ValueError, match="NaN"):
    arjax.log_prob(model, np.where(np.eye(2, 10) > 0, np.nan, good))
  with pytest.raises(ValueError, match="together"):
    arjax.sample(model, jax.random.key(0), 2, given=good)
  with pytest.raises(ValueError, match="0 or 1"):
    arjax.sample(model, jax.random.key(0), 2, given=good + 2, given_mask=good == 0)
  with pytest.raises(ValueError, match="unconditional"):
    arjax.log_prob(model, good, context=np.zeros((2, 3)))


def test_unknown_family_and_ordering():
  with pytest.raises(ValueError, match="Unknown model family"):
    models.get_model_config("pixelsnail")
  with pytest.raises(ValueError, match="Unknown ordering"):
    models.NADE((4,), ordering="zigzag", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="permutation"):
    models.NADE((4,), ordering=(0, 1, 1, 2), rngs=nnx.Rngs(0))


def test_order_agnostic_training_uses_every_mask_and_evaluates_the_ensemble(stripes, tmp_path):
  made = models.MADEConfig(hidden_sizes=(32,), ordering="random", num_masks=4)
  results = train.train_and_evaluate(_config(stripes, made, num_epochs=2), tmp_path / "run")
  model, _, dataset = checkpoints.load_trained_model(tmp_path / "run")
  x = dataset.splits["test"]
  single = [float(-np.mean(arjax.log_prob(_with_mask(model, k), x))) for k in range(4)]
  ensemble = float(-np.mean(arjax.ensemble_log_prob(model, x)))
  np.testing.assert_allclose(results["test_nll_nats"], ensemble, rtol=1e-5)
  assert ensemble < min(single) + 0.5 and max(single) < 36 * np.log(2)  # every draw was trained


def test_deep_nade_evaluates_with_more_orderings_than_trained_and_made_refuses(stripes, tmp_path):
  deep = models.DeepNADEConfig(hidden_sizes=(16,), num_masks=2)
  train.train_and_evaluate(_config(stripes, deep, num_epochs=1), tmp_path / "deep")
  trained, _, dataset = checkpoints.load_trained_model(tmp_path / "deep")
  wider, config, _ = checkpoints.load_trained_model(tmp_path / "deep", num_masks=5)
  assert wider.num_masks == config.model.num_masks == 5
  x = dataset.splits["test"][:6]
  per_draw = np.asarray(arjax.mask_log_probs(wider, x))  # [5, 6]
  # The first two orderings are the trained ensemble's, with the same parameters.
  np.testing.assert_allclose(per_draw[:2], arjax.mask_log_probs(trained, x), rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(arjax.ensemble_log_prob(wider, x),
                             jax.nn.logsumexp(per_draw, axis=0) - np.log(5), rtol=1e-5, atol=1e-4)
  assert np.ptp(per_draw, axis=0).max() > 1e-3, "different orderings should give different likelihoods"
  script = _script("ensemble_size")
  curve = {row["num_orderings"]: row for row in script.ensemble_curve(per_draw.T, reference=2)}
  assert sorted(curve) == [1, 2, 4, 5]
  np.testing.assert_allclose(curve[5]["nll_nats"], -np.mean(arjax.ensemble_log_prob(wider, x)), rtol=1e-5)
  np.testing.assert_allclose(curve[2]["nll_nats"], -np.mean(arjax.ensemble_log_prob(trained, x)), rtol=1e-5)
  assert curve[2]["minus_reference_nats"] == 0.0
  script.main([str(tmp_path / "deep"), "--num-masks", "5", "--examples", "6", "--out", str(tmp_path / "e.json")])
  report = json.loads((tmp_path / "e.json").read_text())
  assert report["trained_num_orderings"] == 2 and report["num_examples"] == 6
  assert [row["num_orderings"] for row in report["ensembles"]] == [1, 2, 4, 5]
  assert report["reference_num_orderings"] == 2
  script.main([str(tmp_path / "deep"), "--num-masks", "5", "--reference", "4", "--examples", "6",
               "--out", str(tmp_path / "e4.json")])
  rows = {row["num_orderings"]: row for row in json.loads((tmp_path / "e4.json").read_text())["ensembles"]}
  assert rows[4]["minus_reference_nats"] == 0.0 and rows[2]["minus_reference_nats"] != 0.0

  made = models.MADEConfig(hidden_sizes=(32,), ordering="random", num_masks=2)
  train.train_and_evaluate(_config(stripes, made, num_epochs=1), tmp_path / "made")
  with pytest.raises(ValueError, match="fixed by training"):
    checkpoints.load_trained_model(tmp_path / "made", num_masks=4)
  with pytest.raises(ValueError, match="must be >= 1"):
    checkpoints.load_trained_model(tmp_path / "deep", num_masks=0)


def test_validation_estimate_draws_anew_in_every_batch_and_is_reproducible():
  model = models.DeepNADE((12,), hidden_sizes=(8,), rngs=nnx.Rngs(0))
  x = np.tile(np.random.default_rng(0).integers(0, 2, (1, 12)).astype(np.float32), (8, 1))
  estimate = evaluation.validation_log_prob(model, x, batch_size=4)  # two batches of one example, repeated
  np.testing.assert_array_equal(estimate, evaluation.validation_log_prob(model, x, batch_size=4))
  assert not np.allclose(estimate[:4], estimate[4:]), "batch 2 should not repeat batch 1's draws"


def _script(name):
  """A module of scripts/ (not a package), loaded from its file."""
  import importlib.util
  import pathlib

  spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).parent.parent / "scripts" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _with_mask(model, index):
  model = nnx.clone(model)
  model.set_mask(index)
  return model


def test_l1_pulls_each_weight_towards_zero_by_its_sign():
  tx, _ = train.make_optimizer(config_lib.OptimConfig(learning_rate=0.1, l1=1e-3), 10, 1)
  params = {"w": jax.numpy.array([-2.0, 0.0, 3.0])}
  updates, _ = tx.update({"w": jax.numpy.zeros(3)}, tx.init(params), params)
  # No data gradient: Adam normalizes the penalty's λ·sign(w) to a step of lr against the sign.
  np.testing.assert_allclose(updates["w"], [0.1, 0.0, -0.1], rtol=1e-3)


def test_checkpoint_every_saves_latest_less_often_and_resume_redoes_the_rest(stripes, tmp_path, monkeypatch):
  with pytest.raises(ValueError, match="checkpoint_every expects an int >= 1"):
    train.train_and_evaluate(_config(stripes, checkpoint_every=0), tmp_path / "zero")
  once = train.train_and_evaluate(_config(stripes, num_epochs=4), tmp_path / "once")
  workdir = tmp_path / "run"
  real_step = train._make_train_step

  def fails_in_epoch_4(*args, **kwargs):  # 20 steps per epoch: epochs 1-3 complete, epoch 4 does not
    step = real_step(*args, **kwargs)

    def maybe_nan(state, *rest):
      state, loss = step(state, *rest)
      return state, loss * np.nan if int(state["step"]) > 60 else loss
    return maybe_nan
  monkeypatch.setattr(train, "_make_train_step", fails_in_epoch_4)
  with pytest.raises(train.NonFiniteLossError, match=r"last good checkpoint \(epoch 2\)"):
    train.train_and_evaluate(_config(stripes, num_epochs=4, checkpoint_every=2), workdir)
  assert checkpoints.manager(workdir, "latest").latest_step() == 2  # epoch 3 completed but was not saved
  monkeypatch.setattr(train, "_make_train_step", real_step)
  resumed = train.train_and_evaluate(_config(stripes, num_epochs=4, checkpoint_every=2), workdir)
  epochs = [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert epochs == [1, 2, 3, 4]  # epoch 3's first record was dropped when it ran again
  assert checkpoints.manager(workdir, "latest").latest_step() == 4  # the last epoch is always saved
  np.testing.assert_allclose(resumed["test_nll_nats"], once["test_nll_nats"], rtol=1e-5)
