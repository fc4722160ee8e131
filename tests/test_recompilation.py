"""Nothing compiles again after the first step: training, evaluation and sampling.

XLA reports every backend compilation as the monitoring event
`/jax/core/compile/backend_compile_duration`; the tests count those events while the loop runs
its second and later epochs (the first epoch compiles the step, validation and the sampler),
and while evaluation and sampling run again on new data, keys and temperatures.
"""

import contextlib

import jax
import numpy as np
import pytest
from flax import nnx
from jax._src import monitoring

from arjax import config as config_lib
from arjax import data, evaluation, models, sampling, train
from conftest import noisy_stripes

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_compiles: list[str] = []


def _listener(event, duration_secs, **kwargs):
  if event == _COMPILE_EVENT:
    _compiles.append(kwargs.get("fun_name", "?"))


@pytest.fixture(scope="module", autouse=True)
def compile_counter():
  monitoring.register_event_duration_secs_listener(_listener)
  yield
  monitoring.unregister_event_duration_listener(_listener)


@contextlib.contextmanager
def no_compilation(what: str):
  before = len(_compiles)
  yield
  assert _compiles[before:] == [], f"{what} compiled again: {_compiles[before:]}"


@pytest.fixture
def stripes(tmp_path):
  images = noisy_stripes(400)
  path = tmp_path / "stripes.npz"
  np.savez(path, train=images[:250], valid=images[250:330], test=images[330:])
  return path


def test_the_counter_sees_a_compilation():
  before = len(_compiles)
  jax.jit(lambda x: x * 3 + 1)(np.arange(7.0))
  assert len(_compiles) > before


@pytest.mark.parametrize("model", [models.NADEConfig(num_hidden=8),
                                   models.MADEConfig(hidden_sizes=(16,), num_masks=2)],
                         ids=["nade", "made-2-masks"])
def test_training_epochs_after_the_first_compile_nothing(stripes, tmp_path, monkeypatch, model):
  config = config_lib.Config(
      data=data.DataConfig(name=str(stripes)), model=model,
      optim=config_lib.OptimConfig(learning_rate=1e-2),
      train=config_lib.TrainConfig(batch_size=25, num_epochs=3, eval_batch_size=40, num_samples=4,
                                   log_every=3))
  counts = []
  one_epoch = train._train_one_epoch

  def counted(run, epoch, *args, **kwargs):
    counts.append(len(_compiles))  # before the epoch's steps
    return one_epoch(run, epoch, *args, **kwargs)

  monkeypatch.setattr(train, "_train_one_epoch", counted)
  train_epochs = train._train_epochs

  def counted_epochs(run, sample_key):
    stopped = train_epochs(run, sample_key)
    counts.append(len(_compiles))  # after the last epoch's validation, checkpoints and samples
    return stopped

  monkeypatch.setattr(train, "_train_epochs", counted_epochs)
  train.train_and_evaluate(config, tmp_path / "run")
  assert len(counts) == 4
  assert counts[1] > counts[0]  # the first epoch compiled the step, validation and the sampler
  assert counts[3] == counts[1], f"epochs 2-3 compiled: {_compiles[counts[1]:counts[3]]}"


def test_evaluation_and_sampling_compile_once(stripes):
  dataset = data.load_dataset(data.DataConfig(name=str(stripes)))
  model = models.NADEConfig(num_hidden=8).build(dataset.event_shape, rngs=nnx.Rngs(0))
  evaluation.dataset_log_prob(model, dataset.splits["valid"], batch_size=32)
  with no_compilation("evaluation of another split (another size, the same batch)"):
    evaluation.dataset_log_prob(model, dataset.splits["test"], batch_size=32)
  sampling.sample(model, jax.random.key(0), 8)
  with no_compilation("sampling with another key and temperature"):
    sampling.sample(model, jax.random.key(1), 8, temperature=0.5)
