"""The one training loop: `train_and_evaluate(config, workdir)`.

Maximum likelihood with optax; the data sit on the device and each jitted step
gathers its batch there. Every epoch: validation NLL, metrics (JSON lines and
TensorBoard), a PNG grid of samples, and Orbax checkpoints — `latest` (for
resuming) and `best` (lowest validation NLL, for evaluation). Early stopping on
validation; at the end the best checkpoint's test NLL goes into `results.json`.
Running again on the same workdir resumes from `latest`.

Workdir layout:
  config.json            experiment spec, overrides and the full config
  checkpoints/latest/N   state after epoch N (+ loop bookkeeping)
  checkpoints/best/N     state of the best validation epoch N
  metrics.jsonl          one JSON object per epoch
  tb/                    TensorBoard events
  samples/epoch_NNN.png  samples after each epoch
  results.json           final figures

Class-conditional models (`data.context="label"`, a model with `context_size`
K): the one-hot labels of every split are the context of its examples, in
training, validation and test; the sample grids have one row per class; the
NLLs reported are −log p(x | label).

The step is a pure function of (state, data, indices, key) under `jax.jit`
(and of the training contexts, indexed like the data, for a conditional model):
to train data-parallel, place `state` replicated and the data sharded with
`jax.sharding.NamedSharding` and the same step runs unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pathlib
import platform
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from flax import nnx

from arjax import config as config_lib
from arjax import data as data_lib
from arjax import images
from arjax import likelihood
from arjax import sampling


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or infinite; the last good checkpoint is kept."""


# ------------------------------------------------------------------ setup ---


def build_model(config: config_lib.Config, dataset: data_lib.Dataset):
  """The model of `config` for `dataset`; a family whose construction depends on statistics of the
  training split (MADE's "entropy" hidden degrees) gets them through its config's `data_kwargs`,
  so rebuilding from the same config and data gives the same model."""
  data_kwargs = getattr(config.model, "data_kwargs", lambda train_x: {})(dataset.splits["train"])
  return config.model.build(dataset.event_shape, rngs=nnx.Rngs(config.train.seed), **data_kwargs)


def split_contexts(config: config_lib.Config, model, dataset: data_lib.Dataset) -> dict:
  """{split: the contexts `[N, K]` of its examples, or None} for `model` on `dataset`.

  Raises ValueError when the data's context (`config.data.context`) and the
  model's `context_size` do not fit together.
  """
  context_size = model.context_size
  if config.data.context == "none":
    if context_size:
      raise ValueError(
          f"The model conditions on a context of size {context_size} (model.context_size) but the "
          "data give none; set data.context=label (with a labelled dataset) or model.context_size=0.")
    return dict.fromkeys(data_lib.SPLITS)
  if context_size != dataset.num_classes:
    raise ValueError(
        f"data.context={config.data.context!r} gives one-hot labels of {dataset.num_classes} classes; "
        f"build the model with context_size={dataset.num_classes} (model.context_size={context_size} now).")
  return {split: data_lib.split_context(config.data, dataset, split, context_size)
          for split in data_lib.SPLITS}


def make_optimizer(config: config_lib.OptimConfig, steps_per_epoch: int, num_epochs: int):
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
  if config.l1:  # the subgradient of λ·Σ|w|
    chain.append(optax.stateless(
        lambda updates, params: jax.tree.map(lambda u, w: u + config.l1 * jnp.sign(w), updates, params)))
  chain.append(optax.adamw(schedule, weight_decay=config.weight_decay))
  return optax.chain(*chain), schedule


def _git_commit() -> str | None:
  if os.environ.get("ARJAX_GIT_COMMIT"):  # set by scripts that run a copy of the tree without .git
    return os.environ["ARJAX_GIT_COMMIT"]
  here = pathlib.Path(__file__).parent
  try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                            cwd=here, timeout=5).stdout.strip()
    # Uncommitted changes to tracked files: the commit alone does not say what ran.
    changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=here, timeout=5).returncode
  except (OSError, subprocess.SubprocessError):
    return None
  return commit + ("-dirty" if changed else "")


def device_description() -> str:
  device = jax.devices()[0]
  kind = device.device_kind if device.platform != "cpu" else platform.processor() or platform.machine()
  cpu_name = _cpu_name() if device.platform == "cpu" else ""
  return f"{device.platform}: {jax.device_count()}× {kind}{' (' + cpu_name + ')' if cpu_name else ''}"


def _cpu_name() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
  except OSError:
    pass
  return ""


# ---------------------------------------------------------- jitted steps ---


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


def _make_train_step(graphdef, rest, tx, data_config, num_levels=None, ema_decay=0.0):
  def loss_fn(params, x, context, mask_key):
    return jnp.mean(training_nll(nnx.merge(graphdef, params, rest), x, mask_key, context=context))

  @functools.partial(jax.jit, donate_argnums=0)
  def train_step(state, train_data, indices, key, train_context=None):
    """One Adam step on the examples `indices [B]` of `train_data [N, D]` (and their rows of
    `train_context [N, C]`, a conditional model's contexts)."""
    key = jax.random.fold_in(key, state["step"])  # resumed runs draw the same numbers
    data_key, mask_key = jax.random.split(key)
    x = data_lib.prepare_batch(data_config, jnp.take(train_data, indices, axis=0), data_key,
                               num_levels=num_levels)
    context = None if train_context is None else jnp.take(train_context, indices, axis=0)  # [B, C]
    loss, grads = jax.value_and_grad(loss_fn)(state["params"], x, context, mask_key)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    new_state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
    if ema_decay:
      new_state["ema"] = optax.incremental_update(
          params, state["ema"], 1.0 - _ema_decay(ema_decay, state["step"]))
    return new_state, loss

  return train_step


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _batch_log_prob(graphdef, state, x, context=None):
  return likelihood.ensemble_log_prob(nnx.merge(graphdef, state), x, context=context)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _batch_log_prob_current_mask(graphdef, state, x, context=None):
  return likelihood.log_prob(nnx.merge(graphdef, state), x, context=context)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _batch_objective(graphdef, state, x, context=None, *, offset):
  # A key of its own for each batch (from its first example's index): under one key for
  # every batch, example i of each batch drew the same ordering and split, so a whole
  # split's estimate rested on one batch's worth of draws and moved by ~±2 nats with the key.
  key = jax.random.fold_in(jax.random.key(0), offset)
  return -nnx.merge(graphdef, state).training_objective(x, key, context=context)


def dataset_log_prob(model, x: np.ndarray, *, context: np.ndarray | None = None, batch_size: int = 1000,
                     ensemble: bool = True, precision: str = "highest") -> np.ndarray:
  """log p(x) `[N]` over a whole array, in fixed-size jitted batches (the last one padded);
  log p(x | context) given a conditional model's `context [N, C]`.

  For models with several mask draws (orderings) this is the ensemble's
  likelihood, or with `ensemble=False` that of the current draw alone. Matrix
  products run in full float32 (`highest` precision), also on GPUs whose
  default is TF32, so reported likelihoods do not depend on the card;
  `precision="default"` uses the device's default instead (faster there).
  """
  with jax.default_matmul_precision(precision):
    return likelihood.map_batches(_batch_log_prob if ensemble else _batch_log_prob_current_mask,
                                  model, x, batch_size, context=context)


def validation_log_prob(model, x: np.ndarray, *, context: np.ndarray | None = None,
                        batch_size: int = 1000, precision: str = "highest") -> np.ndarray:
  """What early stopping watches, `[N]`: `dataset_log_prob`, or for a family with its own
  training objective minus that estimate under fixed keys, one per batch (the exact likelihood
  of such a model can cost D passes, too many to run every epoch). `precision` as in
  `dataset_log_prob`."""
  if not model.has_training_objective:
    return dataset_log_prob(model, x, context=context, batch_size=batch_size, precision=precision)
  with jax.default_matmul_precision(precision):
    return likelihood.map_batches(_batch_objective, model, x, batch_size, context=context, pass_offset=True)


# ----------------------------------------------------------- checkpoints ---


def _manager(workdir: pathlib.Path, name: str, *, background: bool = False) -> ocp.CheckpointManager:
  """Orbax manager of `workdir/checkpoints/name`, keeping one step. With `background`, a save
  returns once the arrays are copied to host memory and the files are written while training
  goes on (a step is committed atomically; the next save, and `wait_until_finished`, wait for
  it)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True,
                                         enable_async_checkpointing=background)
  return ocp.CheckpointManager((workdir / "checkpoints" / name).absolute(), options=options)


def _save(manager, epoch: int, meta: dict, **items):
  """Saves pytrees `items` (e.g. params=..., optimizer=...) and the JSON `meta` as step `epoch`."""
  manager.save(epoch, args=ocp.args.Composite(
      meta=ocp.args.JsonSave(meta), **{name: ocp.args.StandardSave(item) for name, item in items.items()}))


def _optimizer_items(state):
  """The part of the train state beside the parameters that `latest` keeps for resuming: the
  optimizer state, the step and (with `optim.ema_decay`) the averaged parameters."""
  return {name: value for name, value in state.items() if name != "params"}


def _restore(manager, **abstract_items):
  """(meta, {name: pytree}) of the manager's latest step; restores only the items named."""
  restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
      meta=ocp.args.JsonRestore(),
      **{name: ocp.args.StandardRestore(item) for name, item in abstract_items.items()}))
  return restored["meta"], {name: restored[name] for name in abstract_items}


def load_trained_model(workdir, *, which: str = "best", num_masks: int | None = None):
  """(model, config, dataset) from a training workdir's `best` or `latest` checkpoint.

  `num_masks` N rebuilds the model with an ensemble of N orderings instead of the
  config's (draw k from seed `ordering_seed + k`, so the first ones are the trained
  config's); only for families whose training covers every ordering
  (`every_ordering_trained`, deep order-agnostic NADE), where any ensemble is a
  trained model. The returned config says N.
  """
  workdir = pathlib.Path(workdir)
  config_path = workdir / "config.json"
  if not config_path.exists():
    raise FileNotFoundError(f"{workdir} is not a training workdir (no config.json); run `train` first")
  config = config_lib.from_dict(json.loads(config_path.read_text())["config"])
  if num_masks is not None:
    config = _with_num_masks(config, num_masks)
  dataset = data_lib.load_dataset(config.data)
  model = build_model(config, dataset)
  if num_masks is not None and not model.every_ordering_trained:
    raise _fixed_ensemble_error(config)
  manager = _manager(workdir, which)
  if manager.latest_step() is None:
    raise FileNotFoundError(f"No {which!r} checkpoint in {workdir / 'checkpoints'}")
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  _, restored = _restore(manager, params=params)
  return nnx.merge(graphdef, restored["params"], rest), config, dataset


def _with_num_masks(config: config_lib.Config, num_masks: int) -> config_lib.Config:
  if int(num_masks) < 1:
    raise ValueError(f"num_masks (orderings in the ensemble) must be >= 1, got {num_masks}")
  if not hasattr(config.model, "num_masks"):
    raise _fixed_ensemble_error(config)
  return dataclasses.replace(config, model=dataclasses.replace(config.model, num_masks=int(num_masks)))


def _fixed_ensemble_error(config: config_lib.Config) -> ValueError:
  return ValueError(
      f"{type(config.model).__name__}: its orderings are fixed by training (it was trained over "
      f"{getattr(config.model, 'num_masks', 1)}, and any others were never trained), so it cannot be "
      "evaluated with another ensemble size; only families trained over every ordering can "
      "(deep order-agnostic NADE)")


def _warm_start_params(source, params):
  """The best-checkpoint parameters of the training workdir `source`, shaped like `params`."""
  manager = _manager(pathlib.Path(source), "best")
  if manager.latest_step() is None:
    raise FileNotFoundError(f"train.init_from={str(source)!r}: no best checkpoint in "
                            f"{pathlib.Path(source) / 'checkpoints'}; name the workdir of a finished run")
  try:
    _, restored = _restore(manager, params=params)
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"train.init_from={str(source)!r} holds parameters of another model shape; "
                     f"warm-start only from a run of the same model config ({e})") from e
  return restored["params"]


# ------------------------------------------------------------------ loop ---


# Fields a resumed run may change: how long to train, not what is trained.
_RESUMABLE_FIELDS = ("num_epochs", "patience", "log_every", "num_samples", "samples_every",
                     "checkpoint_every", "valid_precision", "max_train_minutes")


def _resumable_view(config_dict: dict) -> dict:
  train = {k: v for k, v in config_dict["train"].items() if k not in _RESUMABLE_FIELDS}
  return {**config_dict, "train": train}


def write_json(path: pathlib.Path, value) -> None:
  """Writes `value` as JSON atomically, so an interrupted run never leaves a half-written file."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(value, indent=2) + "\n")
  tmp.replace(path)


def sample_grid(model, key, num_samples: int, *, temperature: float = 1.0) -> tuple[np.ndarray, int | None]:
  """(samples `[N, D]`, columns of their grid): `num_samples` samples, or for a class-conditional
  model ⌈num_samples / K⌉ of every class, one row per class (None: a square grid)."""
  if not model.context_size:
    return np.asarray(sampling.sample(model, key, num_samples, temperature=temperature)), None
  num_per_class = -(-num_samples // model.context_size)
  context = sampling.per_class_context(model.context_size, num_per_class)  # [K·n, K]
  samples = sampling.sample(model, key, len(context), temperature=temperature, context=context)
  return np.asarray(samples), num_per_class


def _save_samples(model, dataset, path, key, num_samples):
  if dataset.image_shape is None or num_samples <= 0:
    return None
  samples, num_columns = sample_grid(model, key, num_samples)
  return images.save_grid(path, samples, dataset.image_shape, num_levels=dataset.num_levels,
                          num_columns=num_columns)


def train_and_evaluate(config: config_lib.Config, workdir, *, experiment: str = "",
                       overrides: tuple[str, ...] = ()) -> dict:
  """Trains `config` in `workdir` (resuming if it has a checkpoint); returns the results dict."""
  start_time = time.time()
  git_commit = _git_commit()  # the code that runs, not what is checked out when it ends
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  train_config = config.train
  if train_config.samples_every < 1:  # before the data load: bad input fails in seconds
    raise ValueError(f"train.samples_every must be >= 1 (epochs between sample grids; "
                     f"train.num_samples=0 turns them off); got {train_config.samples_every}")
  if train_config.checkpoint_every < 1:
    raise ValueError(f"train.checkpoint_every must be >= 1 (epochs between resumable "
                     f"checkpoints); got {train_config.checkpoint_every}")

  dataset = data_lib.load_dataset(config.data)
  model = build_model(config, dataset)
  for split in ("valid", "test") + (() if config.data.binarize == "dynamic" else ("train",)):
    try:
      likelihood.check_input(model, dataset.splits[split][:2])
      model.head.validate(dataset.splits[split])
    except ValueError as e:
      raise ValueError(f"Dataset {config.data.name!r}, split {split!r} does not fit the model: {e}") from e
  contexts = split_contexts(config, model, dataset)  # {split: [N, K] one-hot labels, or None}

  train_data = jnp.asarray(dataset.splits["train"])
  train_context = None if contexts["train"] is None else jnp.asarray(contexts["train"])
  num_train = len(train_data)
  batch_size = min(train_config.batch_size, num_train)
  steps_per_epoch = num_train // batch_size
  tx, schedule = make_optimizer(config.optim, steps_per_epoch, train_config.num_epochs)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
  ema_decay = config.optim.ema_decay
  if not 0.0 <= ema_decay < 1.0:
    raise ValueError(f"optim.ema_decay must be in [0, 1) (0 turns averaging off); got {ema_decay}")
  if ema_decay:
    state["ema"] = jax.tree.map(jnp.copy, params)  # its own buffers: the step donates both
  num_params = sum(p.size for p in jax.tree.leaves(params))
  train_step = _make_train_step(graphdef, rest, tx, config.data, dataset.num_levels, ema_decay)
  evaluated = "ema" if ema_decay else "params"  # the parameters validation, `best` and test use

  saved_config = {"experiment": experiment, "overrides": list(overrides), "config": config_lib.to_dict(config)}
  config_path = workdir / "config.json"
  if config_path.exists():
    previous = json.loads(config_path.read_text())
    # Round-trip through the classes so fields added since that run compare at their defaults.
    previous_config = config_lib.to_dict(config_lib.from_dict(previous["config"]))
    if _resumable_view(previous_config) != _resumable_view(saved_config["config"]):
      raise ValueError(f"{workdir} holds a run of a different config; use a new --workdir "
                       "(or delete the old one) instead of mixing two experiments")
  write_json(config_path, saved_config)

  loop = {"epoch": 0, "best_valid_nll": math.inf, "best_epoch": None, "bad_epochs": 0,
          "train_seconds": 0.0}
  if (previous := _manager(workdir, "latest")).latest_step() is not None:
    loop, restored = _restore(previous, params=state["params"], optimizer=_optimizer_items(state))
    state = {"params": restored["params"], **restored["optimizer"]}
    print(f"Resuming from {workdir / 'checkpoints/latest'} after epoch {loop['epoch']}", flush=True)
  elif train_config.init_from is not None:
    state["params"] = _warm_start_params(train_config.init_from, state["params"])
    if ema_decay:
      state["ema"] = jax.tree.map(jnp.copy, state["params"])
    print(f"Starting from the best parameters of {train_config.init_from}", flush=True)
  # Saves from here on write in the background (the managers above only read).
  latest, best = _manager(workdir, "latest", background=True), _manager(workdir, "best", background=True)
  # Wall time of earlier invocations up to their last saved epoch (0 in checkpoints older than this).
  earlier_wall_seconds = loop.get("wall_seconds", 0.0)

  key = jax.random.key(train_config.seed)
  shuffle_key, step_key, sample_key = jax.random.split(key, 3)
  metrics_path = workdir / "metrics.jsonl"
  if metrics_path.exists():  # epochs after the resumed checkpoint (train.checkpoint_every > 1) run again
    kept = [line for line in metrics_path.read_text().splitlines()
            if line and json.loads(line)["epoch"] <= loop["epoch"]]
    metrics_path.write_text("".join(line + "\n" for line in kept))
  metrics_file = open(metrics_path, "a")
  from tensorboardX import SummaryWriter
  writer = SummaryWriter(str(workdir / "tb"))
  def patience_spent():
    return train_config.patience is not None and loop["bad_epochs"] >= train_config.patience

  # A resumed run that had already stopped early is only evaluated again, not trained further.
  stopped_early = patience_spent()
  stopped_for_time = False
  last_epoch = loop["epoch"] if stopped_early else train_config.num_epochs
  saved_epoch = loop["epoch"]  # the epoch that checkpoints/latest holds
  try:
    for epoch in range(loop["epoch"] + 1, last_epoch + 1):
      epoch_start = time.time()
      order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), num_train)
      batches = order[:steps_per_epoch * batch_size].reshape(steps_per_epoch, batch_size)
      losses = []
      progress = tqdm.tqdm(range(steps_per_epoch), desc=f"epoch {epoch}", leave=False,
                           dynamic_ncols=True, mininterval=2.0)
      for i in progress:
        state, loss = train_step(state, train_data, batches[i], step_key, train_context)
        losses.append(loss)
        if (i + 1) % train_config.log_every == 0 or i + 1 == steps_per_epoch:
          recent = float(jnp.mean(jnp.stack(losses[-train_config.log_every:])))
          if not math.isfinite(recent):
            raise NonFiniteLossError(
                f"Training loss became {recent} at epoch {epoch}, step {int(state['step'])}. "
                f"The last good checkpoint (epoch {saved_epoch}) in {workdir / 'checkpoints'} is "
                "untouched. Lower optim.learning_rate or set optim.grad_clip_norm, then rerun "
                "with a new workdir (or delete checkpoints/latest to restart this one).")
          progress.set_postfix(nll=f"{recent:.2f}")
      train_nll = float(jnp.mean(jnp.stack(losses)))
      loop["train_seconds"] += time.time() - epoch_start

      model = nnx.merge(graphdef, state[evaluated], rest)
      valid_nll = -float(np.mean(validation_log_prob(model, dataset.splits["valid"], context=contexts["valid"],
                                                     batch_size=train_config.eval_batch_size,
                                                     precision=train_config.valid_precision)))
      if not math.isfinite(valid_nll):
        raise NonFiniteLossError(f"Validation NLL is {valid_nll} at epoch {epoch}; "
                                 f"the checkpoint of epoch {saved_epoch} is kept.")
      improved = valid_nll < loop["best_valid_nll"]
      loop.update(epoch=epoch, bad_epochs=0 if improved else loop["bad_epochs"] + 1,
                  wall_seconds=earlier_wall_seconds + time.time() - start_time)
      if improved:
        loop.update(best_valid_nll=valid_nll, best_epoch=epoch)
        _save(best, epoch, {"epoch": epoch, "valid_nll": valid_nll}, params=state[evaluated])
      stopped_early = patience_spent()
      stopped_for_time = (not stopped_early and train_config.max_train_minutes is not None
                          and time.time() - start_time > 60 * train_config.max_train_minutes)
      if (epoch % train_config.checkpoint_every == 0 or epoch == last_epoch
          or stopped_early or stopped_for_time):
        _save(latest, epoch, loop, params=state["params"], optimizer=_optimizer_items(state))
        saved_epoch = epoch

      record = {"epoch": epoch, "step": int(state["step"]), "train_nll": train_nll,
                "valid_nll": valid_nll, "best_valid_nll": loop["best_valid_nll"],
                "learning_rate": float(schedule(int(state["step"]))),
                "epoch_seconds": time.time() - epoch_start}
      metrics_file.write(json.dumps(record) + "\n")
      metrics_file.flush()
      for name in ("train_nll", "valid_nll", "learning_rate"):
        writer.add_scalar(name, record[name], epoch)
      if epoch % train_config.samples_every == 0:
        _save_samples(model, dataset, workdir / "samples" / f"epoch_{epoch:03d}.png",
                      sample_key, train_config.num_samples)
      print(f"epoch {epoch}: train {train_nll:.3f}  valid {valid_nll:.3f}  "
            f"(best {loop['best_valid_nll']:.3f} @ {loop['best_epoch']})  {record['epoch_seconds']:.1f}s",
            flush=True)
      if stopped_early:
        print(f"Early stopping: no better validation NLL for {train_config.patience} epochs", flush=True)
        break
      if stopped_for_time:
        print(f"Stopping: the time budget of {train_config.max_train_minutes} min is spent", flush=True)
        break
  finally:
    metrics_file.close()
    writer.close()
    for manager in (latest, best):  # also on an error: the last save completes, none is lost
      manager.wait_until_finished()

  best_meta, restored = _restore(best, params=state["params"])
  model = nnx.merge(graphdef, restored["params"], rest)
  test_log_prob = dataset_log_prob(model, dataset.splits["test"], context=contexts["test"],
                                   batch_size=train_config.eval_batch_size)
  test_nll = -float(np.mean(test_log_prob))
  extra = {}
  if model.num_masks > 1:  # the ensemble above; one draw of the masks (ordering) alone:
    single = dataset_log_prob(model, dataset.splits["test"], context=contexts["test"],
                              batch_size=train_config.eval_batch_size, ensemble=False)
    extra["test_nll_single_mask_nats"] = -float(np.mean(single))
  if model.has_training_objective:
    extra["valid_metric"] = "training objective (an upper bound estimate), fixed key per batch"
  if model.context_size:
    extra["likelihood"] = ("class-conditional: NLLs are −log p(x | label); `python -m arjax classify` "
                           "gives the generative classifier's accuracy")
  results = {
      "experiment": experiment,
      "overrides": list(overrides),
      "test_nll_nats": test_nll,
      "test_nll_stderr": float(np.std(test_log_prob) / math.sqrt(len(test_log_prob))),
      "test_bits_per_dim": likelihood.nats_to_bits_per_dim(test_nll, model.num_dims),
      "best_valid_nll_nats": best_meta["valid_nll"],
      "best_epoch": best_meta["epoch"],
      "epochs_run": loop["epoch"],
      "stopped_early": stopped_early,
      "stopped_for_time": stopped_for_time,
      **extra,
      "num_params": int(num_params),
      "num_test_examples": len(test_log_prob),
      "train_seconds": loop["train_seconds"],
      "wall_time_s": time.time() - start_time,  # this invocation
      "wall_time_all_invocations_s": earlier_wall_seconds + time.time() - start_time,
      "device": device_description(),
      "jax_version": jax.__version__,
      "git_commit": git_commit,
      "config": config_lib.to_dict(config),
  }
  if config.data.dequantize == "logit":  # the NLL above is in logit space; this is per 8-bit pixel
    results["test_bits_per_pixel_8bit"] = float(np.mean(data_lib.logit_space_to_pixel_bits_per_dim(
        test_log_prob, dataset.splits["test"], logit_lambda=config.data.logit_lambda)))
  write_json(workdir / "results.json", results)
  _save_samples(model, dataset, workdir / "samples" / "best.png", sample_key, train_config.num_samples)
  print(f"test NLL {test_nll:.3f} nats ({results['test_bits_per_dim']:.4f} bits/dim) at best epoch "
        f"{best_meta['epoch']}; results in {workdir / 'results.json'}", flush=True)
  return results
