"""The one training loop: `train_and_evaluate(config, workdir)`.

Maximum likelihood with optax; the data sit on the device and each jitted step
gathers its batch there. Every epoch — or, with `train.eval_every_steps` /
`eval_every_seconds`, after the epoch that completes that many steps or seconds since
the last, for small data whose epochs are a few steps: validation NLL, metrics (JSON
lines and TensorBoard), a PNG grid of samples, and Orbax checkpoints — `latest` (for
resuming) and `best` (lowest validation NLL, for evaluation). The run's length is
`train.num_epochs`, or `train.num_steps` steps (schedules then span the same steps on
any data size). On a terminal a progress bar shows the steps; in a log file there is one
plain line per validation. Early stopping on
validation; at the end the best checkpoint's test NLL goes into `results.json`.
Running again on the same workdir resumes from `latest`.

`train_and_evaluate` reads as its phases: `_prepare` (check the config, load the
data, build the model, the optimizer and the step — before anything is written),
`_start` (write config.json; resume from `latest` or warm-start), `_train_epochs`
(the epochs, validation, checkpoints, metrics) and `_finish` (test NLL of `best`,
results.json). Checkpointing is in `arjax.checkpoints`, evaluation over whole arrays
in `arjax.evaluation`.

Workdir layout:
  config.json            experiment spec, overrides and the full config
  checkpoints/latest/N   state after epoch N (+ loop bookkeeping)
  checkpoints/best/N     state of the best validation epoch N
  metrics.jsonl          one JSON object per validation (every epoch by default)
  tb/                    TensorBoard events
  samples/epoch_NNN.png  samples after the validations (image data only)
  results.json           final figures

Class-conditional models (`data.context="label"`, a model with `context_size`
K): the one-hot labels of every split are the context of its examples, in
training, validation and test; the sample grids have one row per class; the
NLLs reported are −log p(x | label).

The step is a pure function of (state, data, indices, key) under `jax.jit`
(and of the training contexts, indexed like the data, for a conditional model).
Data parallel (arjax.sharding): with several devices the state is placed replicated (or
FSDP-split, `train.shard_params`) and each step's indices and each evaluation batch are split
over the mesh axis "data"; the same step runs unchanged. Streamed input (arjax.streaming,
`train.input_pipeline`) gives the step the batch itself instead of (data, indices).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import pathlib
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
from flax import nnx

from arjax import checkpoints
from arjax import config as config_lib
from arjax import data as data_lib
from arjax import evaluation
from arjax import experiment as experiment_lib
from arjax import likelihood
from arjax import run_info
from arjax import sharding
from arjax import streaming


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or infinite; the last good checkpoint is kept."""


class _NoSummaries:
  """The TensorBoard writer of a process that writes no files (not process 0)."""

  def add_scalar(self, *args, **kwargs):
    pass

  def close(self):
    pass


# -------------------------------------------------------------- optimizer ---


def make_optimizer(config: config_lib.OptimConfig, steps_per_epoch: int, num_epochs: int, *,
                   num_train: int | None = None):
  """(optax transformation, learning-rate schedule) for a run of `num_epochs` epochs of
  `steps_per_epoch` steps on `num_train` examples (needed when `config.prior_l2` > 0)."""
  total_steps = steps_per_epoch * num_epochs
  warmup_steps = int(config.warmup_epochs * steps_per_epoch)
  if config.schedule == "constant":
    decay = optax.constant_schedule(config.learning_rate)
  elif config.schedule == "cosine":
    decay = optax.cosine_decay_schedule(config.learning_rate, max(total_steps - warmup_steps, 1))
  elif config.schedule == "exponential":
    decay = optax.exponential_decay(config.learning_rate, steps_per_epoch, config.decay_rate)
  else:
    raise ValueError(f"Unknown schedule {config.schedule!r}")
  schedule = optax.join_schedules(
      [optax.linear_schedule(0.0, config.learning_rate, warmup_steps), decay], [warmup_steps])
  chain = [optax.clip_by_global_norm(config.grad_clip_norm)] if config.grad_clip_norm else []
  if config.l2:
    chain.append(optax.add_decayed_weights(config.l2))
  if config.prior_l2:
    if not num_train:
      raise ValueError("optim.prior_l2 needs the number of training examples (num_train)")
    chain.append(optax.add_decayed_weights(config.prior_l2 / num_train))
  if config.l1:  # the subgradient of λ·Σ|w|
    chain.append(optax.stateless(
        lambda updates, params: jax.tree.map(lambda u, w: u + config.l1 * jnp.sign(w), updates, params)))
  chain.append(optax.adamw(schedule, weight_decay=config.weight_decay))
  return optax.chain(*chain), schedule


# ---------------------------------------------------------- jitted step ---


def training_nll(model, x, key, *, context=None):
  """What training minimizes, per example `[B]`: the exact NLL, under a new draw of the
  masks every step for models trained over several, or the family's own estimate
  (`training_objective`, e.g. deep order-agnostic NADE's); given `context [B, C]` for a
  conditional model."""
  if model.has_training_objective:
    return model.training_objective(x, key, context=context)
  if model.num_masks > 1:  # order/connectivity-agnostic training (MADE)
    model.set_mask(jax.random.randint(key, (), 0, model.num_masks))
  return -likelihood.log_prob(model, x, context=context)


def _ema_decay(decay: float, step):
  """The averaging decay after `step` updates: `decay`, capped at (1 + step)/(10 + step) so the
  first steps do not drag the average towards the initial parameters (TensorFlow's
  ExponentialMovingAverage with num_updates)."""
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def _make_train_step(graphdef, rest, tx, data_config, num_levels=None, ema_decay=0.0, *,
                     out_shardings=None):
  def loss_fn(params, x, context, mask_key):
    return jnp.mean(training_nll(nnx.merge(graphdef, params, rest), x, mask_key, context=context))

  # Sharded runs pin the new state to the layout of the old (arjax.sharding), so the donated
  # buffers are reused and the second step does not compile again for another layout.
  @functools.partial(jax.jit, donate_argnums=0, out_shardings=out_shardings)
  def train_step(state, train_data, indices, key, train_context=None):
    """One Adam step on the examples `indices [B]` of `train_data [N, D]` (and their rows of
    `train_context [N, C]`, a conditional model's contexts); with `indices` None, `train_data`
    is the batch `[B, D]` itself (and `train_context` its contexts), as streamed input gives it."""
    key = jax.random.fold_in(key, state["step"])  # resumed runs draw the same numbers
    data_key, mask_key = jax.random.split(key)
    def rows(array):  # [B, ...]
      return array if indices is None or array is None else jnp.take(array, indices, axis=0)

    x = data_lib.prepare_batch(data_config, rows(train_data), data_key, num_levels=num_levels)
    context = rows(train_context)  # [B, C]
    loss, grads = jax.value_and_grad(loss_fn)(state["params"], x, context, mask_key)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    new_state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
    if ema_decay:
      new_state["ema"] = optax.incremental_update(
          params, state["ema"], 1.0 - _ema_decay(ema_decay, state["step"]))
    return new_state, loss

  return train_step


# ------------------------------------------------------------------ loop ---


# Fields a resumed run may change: how long to train, not what is trained.
_RESUMABLE_FIELDS = ("num_epochs", "patience", "log_every", "num_samples", "samples_every",
                     "checkpoint_every", "valid_precision", "max_train_minutes", "eval_every_steps",
                     "eval_every_seconds",
                     # where the arrays live, not what is computed (arjax.sharding, arjax.streaming)
                     "num_devices", "shard_params", "input_pipeline", "stream_above_mb")


def run_epochs(train_config: config_lib.TrainConfig, steps_per_epoch: int) -> int:
  """Epochs of the run: `num_epochs`, or enough epochs for `num_steps` steps when that is set."""
  if train_config.num_steps is None:
    return train_config.num_epochs
  return -(-train_config.num_steps // steps_per_epoch)


def _resumable_view(config_dict: dict) -> dict:
  train = {k: v for k, v in config_dict["train"].items() if k not in _RESUMABLE_FIELDS}
  return {**config_dict, "train": train}


@dataclasses.dataclass
class _Run:
  """What the phases of one invocation share."""

  config: config_lib.Config
  workdir: pathlib.Path
  dataset: data_lib.Dataset
  contexts: dict  # {split: [N, K] one-hot labels, or None}
  graphdef: Any
  rest: Any  # the model's state beside its parameters (orderings, masks)
  state: dict  # {"params", "opt_state", "step"[, "ema"]}: the jitted step's pytree
  schedule: Callable
  train_step: Callable
  evaluated: str  # the parameters validation, `best` and test use: "params" or "ema"
  num_params: int
  start_time: float
  loop: dict = dataclasses.field(default_factory=lambda: {
      "epoch": 0, "best_valid_nll": math.inf, "best_epoch": None, "bad_epochs": 0, "train_seconds": 0.0})
  earlier_wall_seconds: float = 0.0  # of earlier invocations, up to their last saved epoch
  placement: sharding.Placement | None = None  # the devices the batches are split over
  streamed: bool = False  # the training set is streamed from the host (arjax.streaming)

  def model(self, which: str | None = None):
    return nnx.merge(self.graphdef, self.state[which or self.evaluated], self.rest)

  def patience_spent(self) -> bool:
    patience = self.config.train.patience
    return patience is not None and self.loop["bad_epochs"] >= patience


def _prepare(config: config_lib.Config, workdir: pathlib.Path, start_time: float) -> _Run:
  """Checks the config, loads the data and builds the model, the optimizer and the jitted step.
  Writes nothing: a config or data that do not fit fail here and leave the workdir as it was."""
  train_config = config.train  # its values were checked when the config was made (arjax.validation)
  ema_decay = config.optim.ema_decay

  dataset = data_lib.load_dataset(config.data)
  model = experiment_lib.build_model(config, dataset)
  for split in ("valid", "test") + (() if config.data.binarize == "dynamic" else ("train",)):
    try:
      likelihood.check_input(model, dataset.splits[split][:2])
      model.head.validate(dataset.splits[split])
    except ValueError as e:
      raise ValueError(f"Dataset {config.data.name!r}, split {split!r} does not fit the model: {e}") from e
  contexts = experiment_lib.split_contexts(config, model, dataset)

  num_train = len(dataset.splits["train"])
  steps_per_epoch = num_train // min(train_config.batch_size, num_train)
  tx, schedule = make_optimizer(config.optim, steps_per_epoch, run_epochs(train_config, steps_per_epoch),
                                num_train=num_train)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  checkpoints.check_savable(params, f"model ({type(model).__name__})")
  state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
  if ema_decay:
    state["ema"] = jax.tree.map(jnp.copy, params)  # its own buffers: the step donates both
  placement = sharding.Placement.create(num_devices=train_config.num_devices,
                                        shard_params=train_config.shard_params)
  placement.check_divisible(min(train_config.batch_size, num_train), "train.batch_size")
  out_shardings = None
  if not placement.trivial:
    state, rest = placement.put_state(state), placement.put_replicated(rest)
    out_shardings = (placement.state_shardings(state), placement.sharding())
  train_step = _make_train_step(graphdef, rest, tx, config.data, dataset.num_levels, ema_decay,
                                out_shardings=out_shardings)
  streamed = streaming.use_streaming(train_config, dataset.splits["train"])
  if streamed:
    train_step = streaming.streaming_step(train_step)
  return _Run(config=config, workdir=workdir, dataset=dataset, contexts=contexts, graphdef=graphdef,
              rest=rest, state=state, schedule=schedule, train_step=train_step, streamed=streamed,
              evaluated="ema" if ema_decay else "params",
              num_params=int(sum(p.size for p in jax.tree.leaves(params))), start_time=start_time,
              placement=placement)


def _check_same_experiment(workdir: pathlib.Path, saved_config: dict) -> None:
  """Raises ValueError when `workdir` holds a run of another config (only how long to train may
  change between invocations)."""
  config_path = workdir / "config.json"
  if not config_path.exists():
    return
  previous = json.loads(config_path.read_text())
  # Round-trip through the classes so fields added since that run compare at their defaults.
  previous_config = config_lib.to_dict(config_lib.from_dict(previous["config"]))
  if _resumable_view(previous_config) != _resumable_view(saved_config["config"]):
    raise ValueError(f"{workdir} holds a run of a different config; use a new --workdir "
                     "(or delete the old one) instead of mixing two experiments")


def _start(run: _Run, saved_config: dict) -> None:
  """Resumes from `latest` (its newest sound step) or warm-starts from `train.init_from`, then
  writes config.json: a resume or warm start that fails leaves the workdir as it was."""
  if (run.workdir / "checkpoints" / "latest").is_dir() and (
      previous := checkpoints.manager(run.workdir, "latest")).latest_step() is not None:
    run.loop, restored = checkpoints.restore(previous, fall_back=True, params=run.state["params"],
                                             optimizer=checkpoints.optimizer_items(run.state))
    checkpoints.drop_steps_after(previous, run.loop["epoch"])
    previous.close()
    run.state = {"params": restored["params"], **restored["optimizer"]}
    run.earlier_wall_seconds = run.loop.get("wall_seconds", 0.0)  # 0 in checkpoints older than this
    print(f"Resuming from {run.workdir / 'checkpoints/latest'} after epoch {run.loop['epoch']}", flush=True)
  elif (init_from := run.config.train.init_from) is not None:
    run.state["params"] = checkpoints.warm_start_params(init_from, run.state["params"])
    if "ema" in run.state:
      run.state["ema"] = jax.tree.map(jnp.copy, run.state["params"])
    print(f"Starting from the best parameters of {init_from}", flush=True)
  run.workdir.mkdir(parents=True, exist_ok=True)
  if sharding.is_writer():
    run_info.write_json(run.workdir / "config.json", saved_config)


def _open_metrics(run: _Run):
  """metrics.jsonl for appending, cut back to the resumed epoch (epochs after the resumed
  checkpoint, with train.checkpoint_every > 1, run again)."""
  metrics_path = run.workdir / "metrics.jsonl"
  if metrics_path.exists():
    kept = [line for line in metrics_path.read_text().splitlines()
            if line and json.loads(line)["epoch"] <= run.loop["epoch"]]
    metrics_path.write_text("".join(line + "\n" for line in kept))
  return open(metrics_path, "a")


def _train_one_epoch(run: _Run, epoch: int, batches, step_key, train_data, train_context,
                     saved_epoch: int) -> float:
  """Runs the steps of one epoch over `batches [S, B]` of indices (host, device or streamed rows);
  returns the mean training loss."""
  log_every = run.config.train.log_every
  losses = []
  # A bar only on a terminal: in a log file its carriage returns would leave fragments on every
  # line; there the one line per validation that `_train_epochs` prints is the log.
  progress = tqdm.tqdm(range(len(batches)), desc=f"epoch {epoch}", leave=False, dynamic_ncols=True,
                       mininterval=2.0, disable=not sys.stderr.isatty())
  for i in progress:
    run.state, loss = run.train_step(run.state, train_data, batches[i], step_key, train_context)
    losses.append(loss)
    if (i + 1) % log_every == 0 or i + 1 == len(batches):
      recent = float(jnp.mean(jnp.stack(losses[-log_every:])))
      if not math.isfinite(recent):
        kept = (f"The last good checkpoint (epoch {saved_epoch}) in {run.workdir / 'checkpoints'} is "
                "untouched." if saved_epoch else "No checkpoint had been saved yet.")
        raise NonFiniteLossError(
            f"Training loss became {recent} at epoch {epoch}, step {int(run.state['step'])}. {kept} "
            "Lower optim.learning_rate or set optim.grad_clip_norm, then rerun "
            "with a new workdir (or delete checkpoints/latest to restart this one).")
      progress.set_postfix(nll=f"{recent:.2f}")
  return float(jnp.mean(jnp.stack(losses)))


def _validation(run: _Run) -> tuple[Callable[[], float], str, str | None]:
  """(a function giving the current validation NLL, its label in the log, what it is for
  metrics.jsonl or None for the exact NLL of the whole split).

  The exact NLL, except for a family with its own training objective, whose objective under
  fixed keys stands in (its exact NLL costs D passes) unless `train.valid_exact_orderings` K
  asks for the exact NLL of a K-ordering ensemble on the first `train.valid_exact_examples`.
  """
  train_config = run.config.train
  valid, context = run.dataset.splits["valid"], run.contexts["valid"]
  options = {"batch_size": train_config.eval_batch_size, "precision": train_config.valid_precision,
             "placement": run.placement}

  def default():
    return -float(np.mean(evaluation.validation_log_prob(run.model(), valid, context=context, **options)))

  if not run.model().has_training_objective:
    return default, "valid", None
  if not (num_orderings := train_config.valid_exact_orderings):
    return default, "valid objective", "training objective (an upper bound estimate), fixed key per batch"
  if not hasattr(run.config.model, "num_masks"):
    raise ValueError("train.valid_exact_orderings needs a family with several orderings (model.num_masks)")
  ensemble_config = dataclasses.replace(run.config, model=dataclasses.replace(run.config.model,
                                                                              num_masks=num_orderings))
  graphdef, _, rest = nnx.split(experiment_lib.build_model(ensemble_config, run.dataset), nnx.Param, ...)
  num = min(train_config.valid_exact_examples, len(valid))
  subset_context = None if context is None else context[:num]

  def exact():
    ensemble = nnx.merge(graphdef, run.state[run.evaluated], rest)
    return -float(np.mean(evaluation.dataset_log_prob(ensemble, valid[:num], context=subset_context,
                                                      **options)))

  return exact, f"valid exact ({num_orderings} orderings, {num} examples)", (
      f"exact NLL of the {num_orderings}-ordering ensemble on the first {num} validation examples")


def _validation_due(train_config: config_lib.TrainConfig, since_validation: dict) -> bool:
  """Whether the epoch just run ends with a validation: every epoch by default, or once
  `train.eval_every_steps` steps or `train.eval_every_seconds` seconds have passed since the last."""
  every_steps, every_seconds = train_config.eval_every_steps, train_config.eval_every_seconds
  if every_steps is None and every_seconds is None:
    return True
  return ((every_steps is not None and since_validation["steps"] >= every_steps) or
          (every_seconds is not None and time.time() - since_validation["time"] >= every_seconds))


def _train_epochs(run: _Run, sample_key) -> dict:
  """The epochs: steps, validation, `best`/`latest` checkpoints, metrics and sample grids, until
  `train.num_epochs`, early stopping or the time budget. Returns how training stopped."""
  train_config, loop, workdir = run.config.train, run.loop, run.workdir
  placement = run.placement
  num_train = len(run.dataset.splits["train"])
  if run.streamed:  # the training set stays on the host; Grain feeds each step its batch
    train_data = train_context = None
  else:
    train_data = placement.put_replicated(run.dataset.splits["train"])
    train_context = None if run.contexts["train"] is None else placement.put_replicated(run.contexts["train"])
  batch_size = min(train_config.batch_size, num_train)
  steps_per_epoch = num_train // batch_size
  shuffle_key, step_key = jax.random.split(jax.random.key(train_config.seed), 3)[:2]

  # Saves write in the background (a step is committed atomically; the next save waits).
  latest = checkpoints.manager(workdir, "latest", background=True)
  best = checkpoints.manager(workdir, "best", background=True)
  from tensorboardX import SummaryWriter
  if sharding.is_writer():
    metrics_file, writer = _open_metrics(run), SummaryWriter(str(workdir / "tb"))
  else:  # the other processes of a multi-process run compute the same figures and write none
    metrics_file, writer = open(os.devnull, "w"), _NoSummaries()

  # A resumed run that had already stopped early is only evaluated again, not trained further.
  stopped = {"stopped_early": run.patience_spent(), "stopped_for_time": False}
  last_epoch = loop["epoch"] if stopped["stopped_early"] else run_epochs(train_config, steps_per_epoch)
  saved_epoch = loop["epoch"]  # the epoch that checkpoints/latest holds
  validate, valid_label, valid_metric = _validation(run)
  if run.dataset.image_shape is None and train_config.num_samples and loop["epoch"] < last_epoch:
    print(f"The data are not images (examples of shape {run.dataset.event_shape}): no sample grids; "
          "`python -m arjax sample WORKDIR` writes samples as .npy", flush=True)
  since_validation = {"steps": 0, "time": time.time(), "train_nll": [], "seconds": 0.0}
  try:
    for epoch in range(loop["epoch"] + 1, last_epoch + 1):
      epoch_start = time.time()
      order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), num_train)
      # The index rows on the host: on one device the steps read them as they are (slicing a
      # device array would cost one more dispatch per step).
      batches = np.asarray(order[:steps_per_epoch * batch_size]).reshape(steps_per_epoch, batch_size)
      if run.streamed:  # the same index rows, gathered on the host
        batches = streaming.EpochBatches(run.dataset.splits["train"], batches,
                                         context=run.contexts["train"], placement=placement)
      elif not placement.trivial:  # each step's indices split over the devices
        batches = placement.put_batch(batches, axis=1)  # [S, B], B split
      train_nll = _train_one_epoch(run, epoch, batches, step_key, train_data, train_context, saved_epoch)
      loop["train_seconds"] += time.time() - epoch_start
      since_validation["steps"] += steps_per_epoch
      since_validation["train_nll"].append(train_nll)
      since_validation["seconds"] += time.time() - epoch_start
      out_of_time = (train_config.max_train_minutes is not None
                     and time.time() - run.start_time > 60 * train_config.max_train_minutes)
      if not (_validation_due(train_config, since_validation) or epoch == last_epoch or out_of_time):
        continue
      validation_start = time.time()
      train_nll = float(np.mean(since_validation["train_nll"]))  # over the epochs since the last one
      epochs_seconds = since_validation["seconds"]
      since_validation.update(steps=0, time=time.time(), train_nll=[], seconds=0.0)

      model = run.model()
      valid_nll = validate()
      if not math.isfinite(valid_nll):
        raise NonFiniteLossError(f"Validation NLL is {valid_nll} at epoch {epoch}; " + (
            f"the checkpoint of epoch {saved_epoch} is kept." if saved_epoch else "no checkpoint had been saved yet."))
      improved = valid_nll < loop["best_valid_nll"]
      loop.update(epoch=epoch, bad_epochs=0 if improved else loop["bad_epochs"] + 1,
                  wall_seconds=run.earlier_wall_seconds + time.time() - run.start_time)
      if improved:
        loop.update(best_valid_nll=valid_nll, best_epoch=epoch)
        checkpoints.save(best, epoch, {"epoch": epoch, "valid_nll": valid_nll},
                         params=run.state[run.evaluated])
      stopped["stopped_early"] = run.patience_spent()
      stopped["stopped_for_time"] = not stopped["stopped_early"] and out_of_time
      if epoch % train_config.checkpoint_every == 0 or epoch == last_epoch or any(stopped.values()):
        checkpoints.save(latest, epoch, loop, params=run.state["params"],
                         optimizer=checkpoints.optimizer_items(run.state))
        saved_epoch = epoch

      record = {"epoch": epoch, "step": int(run.state["step"]), "train_nll": train_nll,
                "valid_nll": valid_nll, "best_valid_nll": loop["best_valid_nll"],
                "learning_rate": float(run.schedule(int(run.state["step"]))),
                "epoch_seconds": time.time() - epoch_start,
                "train_seconds_since_last": epochs_seconds,
                "validation_seconds": time.time() - validation_start}
      if valid_metric:
        record["valid_metric"] = valid_metric
      metrics_file.write(json.dumps(record) + "\n")
      metrics_file.flush()
      for name in ("train_nll", "valid_nll", "learning_rate"):
        writer.add_scalar(name, record[name], epoch)
      if epoch % train_config.samples_every == 0:
        evaluation.save_samples(model, run.dataset, workdir / "samples" / f"epoch_{epoch:03d}.png",
                                sample_key, train_config.num_samples,
                                caption=f"{type(model).__name__} samples after epoch {epoch} (step {record['step']})")
      print(f"epoch {epoch} (step {record['step']}): train {train_nll:.3f}  {valid_label} {valid_nll:.3f}  "
            f"(best {loop['best_valid_nll']:.3f} @ epoch {loop['best_epoch']})  {epochs_seconds:.1f}s",
            flush=True)
      if stopped["stopped_early"]:
        print(f"Early stopping: no better validation NLL for {train_config.patience} validations", flush=True)
        break
      if stopped["stopped_for_time"]:
        print(f"Stopping: the time budget of {train_config.max_train_minutes} min is spent", flush=True)
        break
  except BaseException:
    # The last save completes and Orbax's threads end, or they would keep the process alive;
    # the training error, not a failure to close, is the one to report.
    with contextlib.suppress(Exception):
      checkpoints.close(latest, best)
    raise
  finally:
    metrics_file.close()
    writer.close()
  checkpoints.close(latest, best)
  return stopped


def _finish(run: _Run, stopped: dict, sample_key, *, experiment: str, overrides: tuple[str, ...],
            git_commit: str | None) -> dict:
  """The test NLL of the `best` checkpoint, written with the run's figures to results.json."""
  config, dataset, contexts, loop = run.config, run.dataset, run.contexts, run.loop
  eval_batch_size = config.train.eval_batch_size
  best_manager = checkpoints.manager(run.workdir, "best", create=False)
  best_meta, restored = checkpoints.restore(best_manager, params=run.state["params"])
  best_manager.close()
  model = nnx.merge(run.graphdef, restored["params"], run.rest)
  test_log_prob = evaluation.dataset_log_prob(model, dataset.splits["test"], context=contexts["test"],
                                              batch_size=eval_batch_size, placement=run.placement)
  test_nll = -float(np.mean(test_log_prob))
  extra = {}
  if model.num_masks > 1:  # the ensemble above; one draw of the masks (ordering) alone:
    single = evaluation.dataset_log_prob(model, dataset.splits["test"], context=contexts["test"],
                                         batch_size=eval_batch_size, ensemble=False,
                                         placement=run.placement)
    extra["test_nll_single_mask_nats"] = -float(np.mean(single))
  if model.has_training_objective:
    extra["valid_metric"] = _validation(run)[2]
  if model.context_size:
    extra["likelihood"] = ("class-conditional: NLLs are −log p(x | label); `python -m arjax classify` "
                           "gives the generative classifier's accuracy")
  now = time.time()
  results = {
      "experiment": experiment,
      "overrides": list(overrides),
      "test_nll_nats": test_nll,
      "test_nll_stderr": float(np.std(test_log_prob) / math.sqrt(len(test_log_prob))),
      "test_bits_per_dim": likelihood.nats_to_bits_per_dim(test_nll, model.num_dims),
      "best_valid_nll_nats": best_meta["valid_nll"],
      "best_epoch": best_meta["epoch"],
      "epochs_run": loop["epoch"],
      **stopped,
      **extra,
      "num_params": run.num_params,
      "num_test_examples": len(test_log_prob),
      "train_seconds": loop["train_seconds"],
      "wall_time_s": now - run.start_time,  # this invocation
      "wall_time_all_invocations_s": run.earlier_wall_seconds + now - run.start_time,
      "device": run_info.device_description(),
      "jax_version": jax.__version__,
      "git_commit": git_commit,
      "config": config_lib.to_dict(config),
  }
  if config.data.dequantize == "logit":  # the NLL above is in logit space; this is per 8-bit pixel
    results["test_bits_per_pixel_8bit"] = float(np.mean(data_lib.logit_space_to_pixel_bits_per_dim(
        test_log_prob, dataset.splits["test"], logit_lambda=config.data.logit_lambda)))
  if sharding.is_writer():
    run_info.write_json(run.workdir / "results.json", results)
  evaluation.save_samples(model, dataset, run.workdir / "samples" / "best.png", sample_key,
                          config.train.num_samples,
                          caption=f"{type(model).__name__} samples, best epoch {best_meta['epoch']}")
  print(f"test NLL {test_nll:.3f} nats ({results['test_bits_per_dim']:.4f} bits/dim) at best epoch "
        f"{best_meta['epoch']}; results in {run.workdir / 'results.json'}", flush=True)
  return results


def train_and_evaluate(config: config_lib.Config, workdir, *, experiment: str = "",
                       overrides: tuple[str, ...] = ()) -> dict:
  """Trains `config` in `workdir` (resuming if it has a checkpoint); returns the results dict."""
  start_time = time.time()
  git_commit = run_info.git_commit()  # the code that runs, not what is checked out when it ends
  workdir = pathlib.Path(workdir)
  saved_config = {"experiment": experiment, "overrides": list(overrides),
                  "config": config_lib.to_dict(config)}
  run = _prepare(config, workdir, start_time)
  _check_same_experiment(workdir, saved_config)
  _start(run, saved_config)
  sample_key = jax.random.split(jax.random.key(config.train.seed), 3)[2]
  stopped = _train_epochs(run, sample_key)
  return _finish(run, stopped, sample_key, experiment=experiment, overrides=overrides,
                 git_commit=git_commit)
