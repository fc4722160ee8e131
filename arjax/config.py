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
from arjax import validation
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
  # A Gaussian prior of this precision λ on the weights: (λ / N_train)·w added to the gradient of
  # the mean NLL, i.e. λ/2·|w|² on the summed NLL; strong on a few hundred rows, faint on 50,000.
  prior_l2: float = 0.0
  grad_clip_norm: float | None = None  # clip the global gradient norm
  # Polyak averaging: an exponential moving average of the parameters with this decay per step
  # (0 = off); validation, the `best` checkpoint and the test NLL then use the average.
  ema_decay: float = 0.0

  def __post_init__(self):
    validation.check_fields(self, OPTIM_RULES)


OPTIM_RULES = {
    "learning_rate": validation.real(minimum=0),  # a negative one climbs the loss; 0 freezes the parameters
    "schedule": validation.one_of("constant", "cosine", "exponential"),
    "decay_rate": validation.real(minimum=0, maximum=1, above=True),
    "warmup_epochs": validation.real(minimum=0),
    "weight_decay": validation.real(minimum=0),
    "l2": validation.real(minimum=0),
    "l1": validation.real(minimum=0),
    "prior_l2": validation.real(minimum=0),
    "grad_clip_norm": validation.optional(validation.real(minimum=0, above=True)),
    "ema_decay": validation.real(minimum=0, maximum=1, below=True),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
  batch_size: int = 128  # examples per Adam step
  num_epochs: int = 100  # upper bound; early stopping usually ends first
  # The run's length in Adam steps; when set it replaces num_epochs (⌈num_steps / steps per
  # epoch⌉ epochs), so a cosine schedule spans the same number of steps on any data size.
  num_steps: int | None = None
  patience: int | None = 10  # stop after this many validations without a better valid NLL
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
  # Validate (and then save checkpoints, metrics, samples) only after the epoch that completes
  # this many steps since the last validation (None: every epoch, unless eval_every_seconds is
  # set). For small data, whose epochs are a few steps, so that training is not mostly checks.
  eval_every_steps: int | None = None
  eval_every_seconds: float | None = None  # likewise after this many seconds since the last validation
  # Families with their own training objective (deep order-agnostic NADE): validate, and pick
  # `best`, on the exact NLL of the ensemble of this many orderings on the first
  # valid_exact_examples validation examples, instead of on the objective (0: the objective).
  valid_exact_orderings: int = 0
  valid_exact_examples: int = 1000  # validation examples of that exact NLL (it costs D passes each)
  max_train_minutes: float | None = None  # wall-clock budget of one invocation: stop after the epoch that passes it, then test
  init_from: str | None = None  # warm start: a training workdir whose best parameters start this run (fresh optimizer)
  # Data parallel (arjax.sharding): every step's and evaluation's batch is split over this many
  # devices (None: every visible device, of every process); batch_size and eval_batch_size must
  # divide by it. One device trains exactly as without sharding.
  num_devices: int | None = None
  # Split each array of the train state over the devices along its largest divisible axis
  # (FSDP-style, for wide models) instead of copying it to every device.
  shard_params: bool = False
  # Where the training set lives: "device" (one array in device memory, batches gathered there),
  # "stream" (host memory or disk, batches streamed by Grain), "auto" ("stream" above
  # stream_above_mb). Both give the same batches for the same seed.
  input_pipeline: Literal["auto", "device", "stream"] = "auto"
  stream_above_mb: float = 2048.0  # "auto": stream a training set larger than this (MB as stored)

  def __post_init__(self):
    validation.check_fields(self, TRAIN_RULES)


TRAIN_RULES = {
    "batch_size": validation.integer(minimum=1),
    "num_epochs": validation.integer(minimum=1),
    "num_steps": validation.optional(validation.integer(minimum=1)),
    "patience": validation.optional(validation.integer(minimum=1)),
    "eval_batch_size": validation.integer(minimum=1),
    "valid_precision": validation.one_of("highest", "default"),
    "seed": validation.integer(),
    "num_samples": validation.integer(minimum=0),  # 0: no sample grids
    "samples_every": validation.integer(minimum=1),
    "checkpoint_every": validation.integer(minimum=1),
    "log_every": validation.integer(minimum=1),
    "eval_every_steps": validation.optional(validation.integer(minimum=1)),
    "eval_every_seconds": validation.optional(validation.real(minimum=0, above=True)),
    "valid_exact_orderings": validation.integer(minimum=0),
    "valid_exact_examples": validation.integer(minimum=1),
    "max_train_minutes": validation.optional(validation.real(minimum=0, above=True)),
    "init_from": validation.optional(validation.instance(str, "a workdir path (str)")),
    "num_devices": validation.optional(validation.integer(minimum=1)),
    "shard_params": validation.instance(bool, "True or False"),
    "input_pipeline": validation.one_of("auto", "device", "stream"),
    "stream_above_mb": validation.real(minimum=0),
}


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
    kind = type(current).__name__
    raise ValueError(f"{where} expects {'an' if kind[0] in 'aeiou' else 'a'} {kind}; got {text!r}")
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


def apply_override(config, path: str, text: str, *, _full_path: str | None = None):
  """Returns `config` with the dotted field `path` set from the string `text`.

  A value its field refuses raises ValueError naming the whole dotted path
  (`train.batch_size expects an int >= 1; got 0`).
  """
  full_path = _full_path or path
  name, _, rest = path.partition(".")
  fields = _field_types(config)
  if name not in fields:
    raise ValueError(
        f"Unknown config field {full_path!r} in {type(config).__name__}; known fields: {sorted(fields)}")
  current = getattr(config, name)
  if rest:
    if not dataclasses.is_dataclass(current):
      raise ValueError(f"{name} is not a group of fields; cannot set {full_path!r}")
    return dataclasses.replace(config, **{name: apply_override(current, rest, text, _full_path=full_path)})
  if name == "model" and isinstance(config, Config):  # `model=fvsbn` switches family
    return dataclasses.replace(config, model=models_lib.get_model_config(text))
  value = _parse_value(text, current, fields[name], full_path)
  try:
    return dataclasses.replace(config, **{name: value})
  except validation.FieldError as error:  # raised as `Class.field`; say the path that was set
    raise error.renamed(full_path) from None


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


# ------------------------------------------------------------ self-help ---


def list_experiments() -> list[tuple[str, str]]:
  """(name, first paragraph of its docstring) of every experiment file in `experiments/`, read
  without running the file."""
  found = []
  for path in sorted(EXPERIMENTS_DIR.glob("*.py")):
    if path.stem.startswith("_"):
      continue
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    found.append((path.stem, " ".join(docstring.strip().split("\n\n")[0].split())))
  return found


def _field_comments(cls: type) -> dict[str, str]:
  """{field: its comment} for the dataclass `cls`, from its source: the comment at the end of
  the field's line, else the comment lines right above it (the house style puts one per field)."""
  import inspect
  import io
  import tokenize

  try:
    source = inspect.getsource(cls)
  except (OSError, TypeError):
    return {}
  source = inspect.cleandoc("\n" + source) if source.startswith((" ", "\t")) else source
  comments = {token.start[0]: token.string.lstrip("#").strip()
              for token in tokenize.generate_tokens(io.StringIO(source).readline)
              if token.type == tokenize.COMMENT}
  found = {}
  for node in ast.parse(source).body[0].body:
    if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
      continue
    trailing = [comments[line] for line in range(node.lineno, node.end_lineno + 1) if line in comments]
    above, line = [], node.lineno - 1
    while line in comments and source.splitlines()[line - 1].lstrip().startswith("#"):
      above.insert(0, comments[line])
      line -= 1
    found[node.target.id] = " ".join(trailing or above)
  return found


def describe(config, prefix: str = "") -> list[tuple[str, str, str, str]]:
  """(dotted field, type, value, comment) of every field of `config`, nested groups flattened,
  e.g. ("optim.learning_rate", "float", "0.001", "peak Adam learning rate")."""
  rows = []
  hints = typing.get_type_hints(type(config))
  comments = _field_comments(type(config))
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    path = f"{prefix}{field.name}"
    if dataclasses.is_dataclass(value) and not isinstance(value, heads_lib.Head):
      rows.append((path, type(value).__name__, "", comments.get(field.name, "")))
      rows += describe(value, prefix=f"{path}.")
      continue
    kind = hints.get(field.name, typing.Any)
    kind = getattr(kind, "__name__", None) if isinstance(kind, type) else str(kind).replace("typing.", "")
    rows.append((path, kind, repr(value), comments.get(field.name, "")))
  return rows
