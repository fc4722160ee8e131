"""Orbax checkpoints of a training workdir, and the trained model they hold.

  checkpoints/latest/N   state after epoch N (+ the loop's bookkeeping): what a run resumes from
  checkpoints/best/N     parameters of the best validation epoch N: what evaluation and the uses load

`save` and `restore` take named pytrees (e.g. params=..., optimizer=...) beside a JSON `meta`;
`load_trained_model` rebuilds a workdir's model from its config.json and restores its parameters.

Integrity: Orbax records no checksum of the arrays (flipped bytes in a data file restore as
other numbers, or as NaN, without a word), so `save` writes a CRC-32 of every array's bytes
into the step's `meta`, committed atomically with the arrays, and `restore` recomputes and
compares them, and refuses non-finite parameters. `latest` keeps two steps: when the newest
is damaged (a checksum that does not match, a file that cannot be read, NaN/Inf parameters),
`restore(..., fall_back=True)` warns and takes the one before. `best` keeps one; a damaged
`best` is a `DamagedCheckpointError` naming the step's directory and the array.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import warnings
import zlib

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from arjax import config as config_lib
from arjax import data as data_lib
from arjax import experiment


#: Steps each manager keeps: `latest` two, so that a damaged newest one has one to fall back to.
KEEP = {"latest": 2, "best": 1}
_CHECKSUMS = "_arjax_checksums"  # the key of the arrays' CRC-32s in a step's meta


class DamagedCheckpointError(ValueError):
  """A checkpoint step whose arrays do not match their checksums, cannot be read, or hold
  non-finite parameters; the message names the step's directory and what is wrong."""


def manager(workdir: pathlib.Path, name: str, *, background: bool = False,
            create: bool = True) -> ocp.CheckpointManager:
  """Orbax manager of `workdir/checkpoints/name`, keeping `KEEP[name]` steps (one for other
  names). With `background`, a save returns once the arrays are copied to host memory and the
  files are written while training goes on (a step is committed atomically; the next save, and
  `wait_until_finished`, wait for it). `create=False` for readers: nothing is made in a
  workdir that is only read."""
  directory = (pathlib.Path(workdir) / "checkpoints" / name).absolute()
  # With several processes, Orbax synchronizes each save at barriers named after the step; two
  # managers saving the same step in the background ("latest" and "best" after an improving
  # epoch) would meet at the same barriers from different threads and deadlock, unless each
  # manager's barrier names carry its own prefix.
  options = ocp.CheckpointManagerOptions(
      max_to_keep=KEEP.get(name, 1), create=create, enable_async_checkpointing=background,
      read_only=not create, multiprocessing_options=ocp.options.MultiprocessingOptions(
          barrier_sync_key_prefix=f"arjax_{name}"))
  return ocp.CheckpointManager(directory, options=options)


def close(*managers) -> None:
  """Waits for every manager's pending save and closes it (its threads end), all of them even
  when one fails; then raises the first error. An Orbax thread left running keeps the process
  alive after the error that stopped training."""
  first_error = None
  for each in managers:
    for finish in (each.wait_until_finished, each.close):
      try:
        finish()
      except Exception as error:  # noqa: BLE001 - collected, re-raised below
        first_error = first_error or error
  if first_error is not None:
    raise first_error


def check_savable(params, where: str = "model") -> None:
  """Raises ValueError naming the array when `params` holds an empty one: Orbax cannot save
  arrays of zero size, and would fail only at the first checkpoint, after an epoch of work."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if np.size(leaf) == 0:
      raise ValueError(f"{where}: parameter {jax.tree_util.keystr(path)} has zero size (shape "
                       f"{np.shape(leaf)}); every option that sets a size must be >= 1")


def _checksums(tree) -> dict[str, int | None]:
  """CRC-32 of every array's bytes by its key path (None for arrays this process cannot see
  whole, e.g. split over several processes)."""
  sums = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
      sums[jax.tree_util.keystr(path)] = None
      continue
    sums[jax.tree_util.keystr(path)] = zlib.crc32(np.ascontiguousarray(jax.device_get(leaf)).tobytes())
  return sums


def save(manager, epoch: int, meta: dict, **items):
  """Saves pytrees `items` (e.g. params=..., optimizer=...) and the JSON `meta` as step `epoch`,
  with a CRC-32 of every array in the meta (computed now: the train step donates its buffers)."""
  meta = {**meta, _CHECKSUMS: {name: _checksums(item) for name, item in items.items()}}
  manager.save(epoch, args=ocp.args.Composite(
      meta=ocp.args.JsonSave(meta), **{name: ocp.args.StandardSave(item) for name, item in items.items()}))


def optimizer_items(state):
  """The part of the train state beside the parameters that `latest` keeps for resuming: the
  optimizer state, the step and (with `optim.ema_decay`) the averaged parameters."""
  return {name: value for name, value in state.items() if name != "params"}


def _restore_step(manager, step: int, abstract_items: dict):
  """(meta, items) of `step`, verified; DamagedCheckpointError when it is not sound."""
  where = pathlib.Path(str(manager.directory)) / str(step)
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore(),
        **{name: ocp.args.StandardRestore(item) for name, item in abstract_items.items()}))
  except Exception as error:  # noqa: BLE001 - tensorstore, JSON and Orbax errors alike: unreadable
    if isinstance(error, (KeyError, TypeError)) or (
        isinstance(error, ValueError) and any(word in str(error) for word in ("shape", "structure"))):
      raise  # a sound checkpoint of another model: the caller says what to do
    detail = str(error).split(" See full TensorStore details")[0][:300]
    raise DamagedCheckpointError(f"checkpoint {where} cannot be read; its files under {where} are "
                                 f"damaged or incomplete ({type(error).__name__}: {detail})") from error
  meta = dict(restored["meta"])
  recorded = meta.pop(_CHECKSUMS, None)  # None: written before checksums were recorded
  items = {name: restored[name] for name in abstract_items}
  for name, item in items.items():
    if recorded is not None:
      if name not in recorded:
        raise DamagedCheckpointError(f"checkpoint {where}: no checksums recorded for {name!r}")
      for path, crc in _checksums(item).items():
        if crc is not None and recorded[name].get(path) not in (None, crc):
          raise DamagedCheckpointError(
              f"checkpoint {where}: array {name}{path} does not match the checksum recorded when "
              f"it was saved (the files under {where / name} are damaged)")
    if name == "params":
      for path, leaf in jax.tree_util.tree_leaves_with_path(item):
        if np.issubdtype(leaf.dtype, np.inexact) and (not isinstance(leaf, jax.Array)
                                                      or leaf.is_fully_addressable):
          if not np.all(np.isfinite(jax.device_get(leaf))):
            raise DamagedCheckpointError(
                f"checkpoint {where}: parameter {jax.tree_util.keystr(path)} holds NaN or infinite values")
  return meta, items


def restore(manager, *, fall_back: bool = False, **abstract_items):
  """(meta, {name: pytree}) of the manager's latest step, verified against the checksums saved
  with it; restores only the items named. A damaged step raises DamagedCheckpointError, or,
  with `fall_back`, warns and takes the step before it (raising when none is sound)."""
  steps = sorted(manager.all_steps(), reverse=True)
  if not steps:
    raise FileNotFoundError(f"No checkpoint in {manager.directory}")
  errors = []
  for step in steps if fall_back else steps[:1]:
    try:
      result = _restore_step(manager, step, abstract_items)
    except DamagedCheckpointError as error:
      errors.append(str(error))
      continue
    if errors:
      warnings.warn(f"arjax: {'; '.join(errors)}; using the previous step {step} instead",
                    RuntimeWarning, stacklevel=2)
    return result
  if len(errors) == 1:
    raise DamagedCheckpointError(errors[0])
  raise DamagedCheckpointError("no sound checkpoint left: " + "; ".join(errors))


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
  saved = manager(workdir, which, create=False)
  if saved.latest_step() is None:
    raise FileNotFoundError(f"No {which!r} checkpoint in {workdir / 'checkpoints'}")
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  _, restored = restore(saved, fall_back=which == "latest", params=params)
  return nnx.merge(graphdef, restored["params"], rest), config, dataset


def drop_steps_after(manager, step: int) -> None:
  """Deletes the steps after `step` (damaged ones that a resume fell back from), so that the
  resumed run's next saves are the newest steps again."""
  for later in manager.all_steps():
    if later > step:
      manager.delete(later)


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
  saved = manager(pathlib.Path(source), "best", create=False)
  if saved.latest_step() is None:
    raise FileNotFoundError(f"train.init_from={str(source)!r}: no best checkpoint in "
                            f"{pathlib.Path(source) / 'checkpoints'}; name the workdir of a finished run")
  try:
    _, restored = restore(saved, params=params)
  except DamagedCheckpointError:
    raise
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"train.init_from={str(source)!r} holds parameters of another model shape; "
                     f"warm-start only from a run of the same model config ({e})") from e
  return restored["params"]
