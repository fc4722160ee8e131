"""Orbax checkpoints of a training workdir, and the trained model they hold.

  checkpoints/latest/N   state after epoch N (+ the loop's bookkeeping): what a run resumes from
  checkpoints/best/N     parameters of the best validation epoch N: what evaluation and the uses load

`save` and `restore` take named pytrees (e.g. params=..., optimizer=...) beside a JSON `meta`;
`load_trained_model` rebuilds a workdir's model from its config.json and restores its parameters.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import orbax.checkpoint as ocp
from flax import nnx

from arjax import config as config_lib
from arjax import data as data_lib
from arjax import experiment


def manager(workdir: pathlib.Path, name: str, *, background: bool = False) -> ocp.CheckpointManager:
  """Orbax manager of `workdir/checkpoints/name`, keeping one step. With `background`, a save
  returns once the arrays are copied to host memory and the files are written while training
  goes on (a step is committed atomically; the next save, and `wait_until_finished`, wait for
  it)."""
  options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True,
                                         enable_async_checkpointing=background)
  return ocp.CheckpointManager((workdir / "checkpoints" / name).absolute(), options=options)


def save(manager, epoch: int, meta: dict, **items):
  """Saves pytrees `items` (e.g. params=..., optimizer=...) and the JSON `meta` as step `epoch`."""
  manager.save(epoch, args=ocp.args.Composite(
      meta=ocp.args.JsonSave(meta), **{name: ocp.args.StandardSave(item) for name, item in items.items()}))


def optimizer_items(state):
  """The part of the train state beside the parameters that `latest` keeps for resuming: the
  optimizer state, the step and (with `optim.ema_decay`) the averaged parameters."""
  return {name: value for name, value in state.items() if name != "params"}


def restore(manager, **abstract_items):
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
  model = experiment.build_model(config, dataset)
  if num_masks is not None and not model.every_ordering_trained:
    raise _fixed_ensemble_error(config)
  saved = manager(workdir, which)
  if saved.latest_step() is None:
    raise FileNotFoundError(f"No {which!r} checkpoint in {workdir / 'checkpoints'}")
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  _, restored = restore(saved, params=params)
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


def warm_start_params(source, params):
  """The best-checkpoint parameters of the training workdir `source`, shaped like `params`."""
  saved = manager(pathlib.Path(source), "best")
  if saved.latest_step() is None:
    raise FileNotFoundError(f"train.init_from={str(source)!r}: no best checkpoint in "
                            f"{pathlib.Path(source) / 'checkpoints'}; name the workdir of a finished run")
  try:
    _, restored = restore(saved, params=params)
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"train.init_from={str(source)!r} holds parameters of another model shape; "
                     f"warm-start only from a run of the same model config ({e})") from e
  return restored["params"]
