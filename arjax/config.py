"""Experiment configs: frozen, keyword-only dataclasses; command-line overrides; experiment files.

An experiment is a file `experiments/NAME.py` with `get_config(variant: str) -> Config`
(variant "" is the main run; every file also has "smoke"). On the command line an
experiment is `NAME` or `NAME:VARIANT` or a path to such a file, and overrides
are `dotted.field=value`, e.g. `model.num_hidden=100 optim.learning_rate=3e-4`.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import pathlib
import types
import typing
from typing import Literal

from arjax import heads as heads_lib
from arjax import models as models_lib
from arjax.data import DataConfig

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent.parent / "experiments"


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimConfig:
  learning_rate: float = 1e-3  # peak Adam learning rate
  schedule: Literal["constant", "cosine", "exponential"] = "constant"  # decay over training
  decay_rate: float = 1.0  # "exponential": factor per epoch
  warmup_epochs: float = 0.0  # linear warm-up from 0
  weight_decay: float = 0.0  # decoupled (AdamW) weight decay
  l2: float = 0.0  # coupled L2 penalty: λ·w added to the gradient before Adam (classic regularization)
  l1: float = 0.0  # coupled L1 penalty: λ·sign(w) added to the gradient before Adam (sparse weights)
  grad_clip_norm: float | None = None  # clip the global gradient norm
  # Polyak averaging: an exponential moving average of the parameters with this decay per step
  # (0 = off); validation, the `best` checkpoint and the test NLL then use the average.
  ema_decay: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
  batch_size: int = 128  # examples per Adam step
  num_epochs: int = 100  # upper bound; early stopping usually ends first
  patience: int | None = 10  # stop after this many epochs without a better valid NLL
  eval_batch_size: int = 1000  # examples per likelihood evaluation call
  # Matrix products of the per-epoch validation: "highest" (full float32, the same on every
  # device) or "default" (the device's: TF32 on recent NVIDIA GPUs, bf16 passes on TPUs; faster
  # for wide models, and the NLL differs slightly). The test NLL always uses "highest".
  valid_precision: Literal["highest", "default"] = "highest"
  seed: int = 0  # parameters, shuffling and per-step randomness all derive from it
  num_samples: int = 64  # samples drawn into the per-epoch PNG grid
  samples_every: int = 1  # epochs between those grids (best.png is always written at the end)
  # Epochs between saves of the resumable `latest` checkpoint (parameters and optimizer state;
  # also saved at the last epoch of every invocation). `best` is saved whenever validation
  # improves. More than 1 saves time on wide models (the MADE ensemble's state is ~900 MB) at
  # the risk of redoing up to that many epochs after a crash.
  checkpoint_every: int = 1
  log_every: int = 50  # steps between progress-bar updates and NaN checks
  max_train_minutes: float | None = None  # wall-clock budget of one invocation: stop after the epoch that passes it, then test
  init_from: str | None = None  # warm start: a training workdir whose best parameters start this run (fresh optimizer)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
  data: DataConfig = DataConfig()
  model: typing.Any = models_lib.NADEConfig()  # a family config from arjax.models.MODEL_CONFIGS
  optim: OptimConfig = OptimConfig()
  train: TrainConfig = TrainConfig()


# ------------------------------------------------------------- overrides ---


def _parse_value(text: str, current, field_type, where: str):
  """Parses `text` into the type the field holds."""
  if isinstance(current, heads_lib.Head):
    return _parse_head(text, where)
  allowed = typing.get_args(field_type)
  if typing.get_origin(field_type) is Literal:
    if text not in allowed:
      raise ValueError(f"{where} must be one of {allowed}; got {text!r}")
    return text
  if isinstance(current, str) and not text.startswith(("(", "[")):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  if isinstance(current, bool) and not isinstance(value, bool):
    raise ValueError(f"{where} expects True or False; got {text!r}")
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if isinstance(value, list):
    value = tuple(value)
  if current is not None and value is not None and not isinstance(value, type(current)) and not (
      isinstance(current, (str, tuple)) and isinstance(value, (str, tuple))):
    raise ValueError(f"{where} expects a {type(current).__name__}; got {text!r}")
  return value


def _parse_head(text: str, where: str) -> heads_lib.Head:
  """`bernoulli` or `categorical(num_classes=256)` -> a Head."""
  try:
    node = ast.parse(text, mode="eval").body
    if isinstance(node, ast.Name):
      return heads_lib.get_head(node.id)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args:
      return heads_lib.get_head(node.func.id, **{k.arg: ast.literal_eval(k.value) for k in node.keywords})
  except (SyntaxError, ValueError, TypeError) as e:
    raise ValueError(f"{where}: cannot build a head from {text!r}: {e}") from e
  raise ValueError(f"{where}: write a head as NAME or NAME(option=value, ...); got {text!r}")


def _field_types(obj) -> dict[str, typing.Any]:
  hints = typing.get_type_hints(type(obj))
  return {f.name: hints.get(f.name) for f in dataclasses.fields(obj)}


def apply_override(config, path: str, text: str):
  """Returns `config` with the dotted field `path` set from the string `text`."""
  name, _, rest = path.partition(".")
  fields = _field_types(config)
  if name not in fields:
    raise ValueError(
        f"Unknown config field {path!r} in {type(config).__name__}; known fields: {sorted(fields)}")
  current = getattr(config, name)
  if rest:
    if not dataclasses.is_dataclass(current):
      raise ValueError(f"{name} is not a group of fields; cannot set {path!r}")
    return dataclasses.replace(config, **{name: apply_override(current, rest, text)})
  if name == "model" and isinstance(config, Config):  # `model=fvsbn` switches family
    return dataclasses.replace(config, model=models_lib.get_model_config(text))
  return dataclasses.replace(config, **{name: _parse_value(text, current, fields[name], path)})


def apply_overrides(config, overrides: list[str]):
  for item in overrides:
    path, sep, text = item.partition("=")
    if not sep:
      raise ValueError(f"Override {item!r} must look like field.subfield=value")
    config = apply_override(config, path.strip(), text.strip())
  return config


# ----------------------------------------------------------- experiments ---


def load_experiment(spec: str) -> tuple[str, Config]:
  """`NAME[:VARIANT]` or `path/to/file.py[:VARIANT]` -> (canonical spec, Config)."""
  target, _, variant = spec.partition(":")
  path = pathlib.Path(target)
  if path.suffix != ".py":
    path = EXPERIMENTS_DIR / f"{target}.py"
  if not path.is_file():
    known = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py") if not p.stem.startswith("_"))
    raise ValueError(f"Unknown experiment {target!r}; known experiments: {known} (or pass a path to a .py file)")
  module_spec = importlib.util.spec_from_file_location(f"arjax_experiment_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(variant)
  if not isinstance(config, Config):
    raise TypeError(f"{path}: get_config({variant!r}) must return an arjax.config.Config")
  return spec, config


def smoke(config: Config, *, model=None, num_epochs: int = 2) -> Config:
  """The "smoke" variant every experiment offers: the same experiment shrunk to seconds on a CPU.

  500 training and 200 evaluation examples, batch 50, `num_epochs` epochs, and
  `model` (a smaller config of the same family) when given.
  """
  return dataclasses.replace(
      config,
      data=dataclasses.replace(config.data, max_train_examples=500, max_eval_examples=200),
      model=config.model if model is None else model,
      train=TrainConfig(batch_size=50, num_epochs=num_epochs, eval_batch_size=200, num_samples=16))


def unknown_variant(variant: str, known: tuple[str, ...]):
  """For experiment files: the error for a variant they do not define."""
  return ValueError(f"Unknown variant {variant!r}; this experiment defines {list(known)}")


def _config_classes() -> dict[str, type]:
  classes = [Config, DataConfig, OptimConfig, TrainConfig, *models_lib.MODEL_CONFIGS.values(),
             *heads_lib.HEADS.values()]
  return {cls.__name__: cls for cls in classes}


def from_dict(value):
  """Inverse of `to_dict`: rebuilds the config (used to reload a workdir's model)."""
  if isinstance(value, dict) and "_type" in value:
    classes = _config_classes()
    if value["_type"] not in classes:
      raise ValueError(f"Unknown config class {value['_type']!r} in a saved config")
    return classes[value["_type"]](**{k: from_dict(v) for k, v in value.items() if k != "_type"})
  if isinstance(value, list):
    return tuple(from_dict(v) for v in value)
  return value


def to_dict(obj):
  """A JSON-ready view of a config, naming the class of every nested dataclass."""
  if dataclasses.is_dataclass(obj):
    return {"_type": type(obj).__name__,
            **{f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
  if isinstance(obj, (tuple, list)):
    return [to_dict(v) for v in obj]
  if isinstance(obj, types.MappingProxyType | dict):
    return {k: to_dict(v) for k, v in obj.items()}
  return obj
