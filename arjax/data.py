"""Datasets as in-memory arrays: local files first, TensorFlow Datasets where reachable.

The datasets of this field are small (MNIST-sized), so a split is one array
that lives on the device; the training loop gathers batches there.

Sources, chosen by `DataConfig.source`:
  "local": files in `DataConfig.data_dir` or $ARJAX_DATA_DIR. For a dataset
     name N it looks for `N.npz` (also with `-` for `_`), or a folder `N/`
     holding IDX files (`train-images-idx3-ubyte.gz`, `t10k-images-idx3-ubyte.gz`,
     labels alongside). `name` may also be a path to an `.npz` file. An `.npz`
     may use any of the layouts `train/valid/test`, `train_data/valid_data/
     test_data` (the MADE authors'), or `x_train/x_valid/x_test` with
     `y_train/...` labels.
  "tfds": `tfds.data_source(name)` (needs `pip install "arjax[tfds]"` to prepare
     image datasets). Downloads only after a quick check that the network is up,
     so an offline machine fails in seconds instead of retrying for minutes.
  "auto": "local" when a data directory is set, else "tfds".

  "toy:NAME": a 2-D toy density from `arjax.toy` (two_moons, rings, checkerboard),
     generated with fixed seeds: 10,000 / 2,000 / 2,000 examples.

Sets without a validation split (IDX, TFDS mnist) use the last 10,000 training
examples as validation, the classic 50k/10k/10k MNIST split (a sixth of the
training set when it has fewer than 20,000 examples).

Continuous MNIST as in MAF (Papamakarios et al. 2017): `dequantize="logit"`
turns 8-bit pixels x into reals y = logit(λ + (1 − 2λ)·(x + u)/256), u ~ U[0, 1).
Training batches draw fresh u every step (`prepare_batch`); validation and test
are dequantized once, with a fixed seed, at load time.
`logit_space_to_pixel_bits_per_dim` converts a logit-space log-density into
bits/pixel of the 8-bit data.

Class-conditional models: `context="label"` makes the one-hot label of every
example its context (`split_context`); the dataset must have labels for all
three splits (MNIST has them as `name="mnist", binarize="static"`;
`binarized_mnist` has none).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pathlib
import socket
import struct
import warnings
import zipfile
from typing import Literal

import numpy as np

from arjax import toy, validation

DATA_DIR_ENV = "ARJAX_DATA_DIR"
SPLITS = ("train", "valid", "test")
NUM_VALID_FROM_TRAIN = 10_000


class DatasetNotFoundError(FileNotFoundError):
  """The dataset is in none of the places we looked; the message says where to put it."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
  name: str = "binarized_mnist"  # dataset name (TFDS name or local file stem) or an .npz path
  source: Literal["auto", "local", "tfds"] = "auto"  # where to read it (see module docstring)
  data_dir: str | None = None  # folder of local files; default $ARJAX_DATA_DIR
  binarize: Literal["none", "static", "dynamic"] = "none"  # for 0..255 data: x/255 → {0,1}
  binarize_seed: int = 0  # seed of static binarization; of valid/test under dynamic or dequantize
  dequantize: Literal["none", "logit"] = "none"  # "logit": for 0..255 data, MAF's uniform noise + logit
  logit_lambda: float = 1e-6  # λ in logit(λ + (1 − 2λ)·(x + u)/256): keeps the logit finite at 0 and 255
  max_train_examples: int | None = None  # keep only the first N training examples (smoke runs)
  max_eval_examples: int | None = None  # keep only the first N valid/test examples (smoke runs)
  context: Literal["none", "label"] = "none"  # "label": condition the model on the one-hot class label
  # Ren et al. (2019) background models: each training value is replaced, with this probability,
  # by a uniform draw from the data's levels (fresh every step; valid/test untouched).
  perturb: float = 0.0
  # "flat": every example a vector [D] (the flat families); "image": [H, W, C] (PixelCNN and the other
  # image families), event_shape = image_shape.
  layout: Literal["flat", "image"] = "flat"

  def __post_init__(self):
    validation.check_fields(self, DATA_RULES)


DATA_RULES = {
    "name": validation.instance((str, os.PathLike), "a dataset name or an .npz path (str)"),
    "source": validation.one_of("auto", "local", "tfds"),
    "data_dir": validation.optional(validation.instance((str, os.PathLike), "a folder (str)")),
    "binarize": validation.one_of("none", "static", "dynamic"),
    "binarize_seed": validation.integer(),
    "dequantize": validation.one_of("none", "logit"),
    "logit_lambda": validation.real(minimum=0, maximum=0.5, above=True, below=True),
    "max_train_examples": validation.optional(validation.integer(minimum=1)),
    "max_eval_examples": validation.optional(validation.integer(minimum=1)),
    "context": validation.one_of("none", "label"),
    "perturb": validation.real(minimum=0, maximum=1, below=True),  # 0: off
    "layout": validation.one_of("flat", "image"),
}


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Splits as numpy arrays `[N, *event_shape]` (uint8 pixel values or float reals)."""

  splits: dict[str, np.ndarray]
  labels: dict[str, np.ndarray | None]
  event_shape: tuple[int, ...]
  image_shape: tuple[int, int, int] | None  # [H, W, C] when the data are images
  num_levels: int | None  # 2 for binary, 256 for 8-bit data, None for reals

  @property
  def num_dims(self) -> int:
    return int(np.prod(self.event_shape))

  @property
  def num_classes(self) -> int | None:
    """K = 1 + the largest label of any split (labels are 0..K−1), None without labels."""
    labels = [split_labels for split_labels in self.labels.values() if split_labels is not None]
    return int(max(split_labels.max() for split_labels in labels)) + 1 if labels else None


# --------------------------------------------------------------- reading ---


def _read_idx(path: pathlib.Path) -> np.ndarray:
  """Reads an IDX file (MNIST's format), gzipped or not."""
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rb") as f:
    _, dtype_code, ndim = struct.unpack(">HBB", f.read(4))
    if dtype_code != 0x08:
      raise ValueError(f"{path}: only unsigned-byte IDX files are supported")
    shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
    return np.frombuffer(f.read(), np.uint8).reshape(shape)


def _split_off_valid(train, labels):
  """The last 10,000 training examples (a sixth, for sets under 20,000) become validation."""
  num_valid = NUM_VALID_FROM_TRAIN if len(train) >= 2 * NUM_VALID_FROM_TRAIN else len(train) // 6
  n = len(train) - num_valid
  splits = {"train": train[:n], "valid": train[n:]}
  split_labels = {"train": None, "valid": None}
  if labels is not None:
    split_labels = {"train": labels[:n], "valid": labels[n:]}
  return splits, split_labels


def _load_idx_folder(folder: pathlib.Path):
  def find(stem):
    for suffix in (".gz", ""):
      if (folder / (stem + suffix)).exists():
        return folder / (stem + suffix)
    return None

  train_images = find("train-images-idx3-ubyte")
  test_images = find("t10k-images-idx3-ubyte")
  if train_images is None or test_images is None:
    raise DatasetNotFoundError(f"{folder} lacks train-images-idx3-ubyte(.gz) / t10k-images-idx3-ubyte(.gz)")
  train_labels, test_labels = find("train-labels-idx1-ubyte"), find("t10k-labels-idx1-ubyte")
  read = {"train": _read_idx(train_images), "test": _read_idx(test_images)}
  read_labels = {"train": None if train_labels is None else _read_idx(train_labels),
                 "test": None if test_labels is None else _read_idx(test_labels)}
  check_splits(str(folder), read, read_labels)
  splits, labels = _split_off_valid(read["train"], read_labels["train"])
  splits["test"], labels["test"] = read["test"], read_labels["test"]
  return splits, labels


_NPZ_LAYOUTS = (
    {"train": "train", "valid": "valid", "test": "test"},
    {"train": "train_data", "valid": "valid_data", "test": "test_data"},
    {"train": "x_train", "valid": "x_valid", "test": "x_test"},
)


def check_splits(source: str, splits: dict, labels: dict | None = None) -> None:
  """Raises ValueError, naming `source` (a file or dataset) and the split, unless every split is an
  array `[N, ...]` of examples with N > 0, all splits have the same example shape, and labels
  (where given) hold one entry per example."""
  shapes = {}
  for split, array in splits.items():
    shape = np.shape(array)
    if len(shape) < 2:
      raise ValueError(f"{source}: split {split!r} has shape {shape}; expected an array [N, ...] of N "
                       "examples (e.g. [N, 784] or [N, 28, 28]), one row per example")
    if shape[0] == 0:
      raise ValueError(f"{source}: split {split!r} is empty (shape {shape}); every split needs examples")
    shapes[split] = shape[1:]
  if len(set(shapes.values())) > 1:
    raise ValueError(f"{source}: the splits' examples differ in shape "
                     f"({', '.join(f'{s} {shape}' for s, shape in shapes.items())}); expected one "
                     "example shape in every split")
  for split, split_labels in (labels or {}).items():
    if split_labels is not None and split in splits and len(split_labels) != len(splits[split]):
      raise ValueError(f"{source}: split {split!r} has {len(splits[split])} examples but "
                       f"{len(split_labels)} labels; expected one label per example")


def _load_npz(path: pathlib.Path):
  if not zipfile.is_zipfile(path):
    raise ValueError(f"{path} is not an .npz file (a zip archive of arrays, as np.savez writes); "
                     f"expected arrays {[sorted(l.values()) for l in _NPZ_LAYOUTS][0]} or another "
                     "layout of DataConfig's docstring")
  # The MADE authors' binarized_mnist.npz was written by Python 2's NumPy; reading it again
  # works, and NumPy's advice to save it again would reach the user on every load.
  with np.load(path) as archive, warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*created on Python 2", category=UserWarning)
    keys = set(archive.files)
    for layout in _NPZ_LAYOUTS:
      if {layout["train"], layout["test"]} <= keys:
        splits = {split: archive[key] for split, key in layout.items() if key in keys}
        labels = {split: archive[key.replace("x_", "y_")] if key.startswith("x_") and
                  key.replace("x_", "y_") in keys else None for split, key in layout.items()}
        break
    else:
      raise ValueError(
          f"{path}: no known layout; expected arrays {[sorted(l.values()) for l in _NPZ_LAYOUTS]}, "
          f"found {sorted(keys)}")
  check_splits(str(path), splits, labels)
  if "valid" not in splits:
    split_valid, split_labels = _split_off_valid(splits["train"], labels["train"])
    splits.update(split_valid)
    labels.update(split_labels)
  return splits, labels


def _local_candidates(name: str, data_dir: pathlib.Path) -> list[pathlib.Path]:
  stems = dict.fromkeys([name, name.replace("_", "-"), name.replace("-", "_")])
  return [data_dir / f"{stem}.npz" for stem in stems] + [data_dir / stem for stem in stems]


def _load_local(name: str, data_dir: str | None):
  if name.endswith(".npz"):
    path = pathlib.Path(name).expanduser()
    if not path.exists():
      raise DatasetNotFoundError(f"No file {path}: check the path given as DataConfig.name.")
    return _load_npz(path)
  if data_dir is None:
    raise DatasetNotFoundError(
        f"No data directory for local dataset {name!r}: set DataConfig.data_dir "
        f"(`data.data_dir=PATH` on the command line) or ${DATA_DIR_ENV}.")
  root = pathlib.Path(data_dir).expanduser()
  candidates = _local_candidates(name, root)
  for path in candidates:
    if path.suffix == ".npz" and path.is_file():
      return _load_npz(path)
    if path.is_dir():
      return _load_idx_folder(path)
  raise DatasetNotFoundError(
      f"Dataset {name!r} not found in {root}. Looked for: {', '.join(str(p) for p in candidates)}. "
      f"Put an .npz (train/valid/test arrays) or a folder of IDX .gz files there, point "
      f"${DATA_DIR_ENV} / data.data_dir at the folder that has them, or use data.source=tfds.")


def _network_reachable(host: str = "storage.googleapis.com", port: int = 443,
                       timeout: float = 3.0) -> bool:
  try:
    socket.create_connection((host, port), timeout=timeout).close()
    return True
  except OSError:
    return False


# TFDS datasets with their own validation split (used when TFDS has no metadata yet).
_TFDS_WITH_VALIDATION = frozenset({"binarized_mnist"})


def _load_tfds(name: str, data_dir: str | None):
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:  # pragma: no cover - tfds is a core dependency
    raise DatasetNotFoundError("tensorflow-datasets is not installed: pip install tensorflow-datasets") from e

  def read(tfds_split):
    source = tfds.data_source(name, split=tfds_split, data_dir=data_dir, download=False)
    records = [source[i] for i in range(len(source))]
    images = np.stack([r["image"] for r in records])
    return images, (np.asarray([r["label"] for r in records]) if "label" in records[0] else None)

  try:
    train = read("train")
  except Exception as not_ready:  # tfds raises several types for "not prepared"
    if not _network_reachable():
      raise DatasetNotFoundError(
          f"TFDS dataset {name!r} is not prepared (for random access) and the network is "
          f"unreachable, so it cannot be downloaded. Use local files instead: put {name}.npz "
          f"in a folder and set ${DATA_DIR_ENV}=FOLDER (or data.data_dir=FOLDER).") from not_ready
    try:
      tfds.builder(name, data_dir=data_dir, file_format="array_record").download_and_prepare()
    except ImportError as e:
      raise DatasetNotFoundError(
          f"Preparing TFDS dataset {name!r} needs TensorFlow: pip install 'arjax[tfds]'") from e
    train = read("train")
  splits, labels = {}, {}
  (splits["train"], labels["train"]), (splits["test"], labels["test"]) = train, read("test")
  known_splits = set(tfds.builder(name, data_dir=data_dir).info.splits)
  if "validation" in known_splits or (not known_splits and name in _TFDS_WITH_VALIDATION):
    splits["valid"], labels["valid"] = read("validation")
  else:
    split_valid, split_labels = _split_off_valid(splits["train"], labels["train"])
    splits.update(split_valid)
    labels.update(split_labels)
  return splits, labels


# ------------------------------------------------------------ transforms ---


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
  """Stochastic binarization: each pixel is 1 with probability value/255 (seeded)."""
  rng = np.random.default_rng(seed)
  return (rng.random(images.shape) < images / 255.0).astype(np.uint8)


def logit_dequantize(x, noise, *, logit_lambda: float, xp=np):
  """y = logit(λ + (1 − 2λ)·(x + noise)/256) for 8-bit `x` and `noise` in [0, 1); same shape.

  `xp` is the array module (numpy at load time, jax.numpy in the train step).
  Both u and 1 − u are formed directly from the pixel value rather than 1 − u
  from u, because near 255 float32 would lose most digits of 1 − u ≈ λ.
  """
  scale = (1.0 - 2.0 * logit_lambda) / 256.0
  unit = logit_lambda + scale * (x + noise)  # u in [λ, 1 − λ)
  one_minus_unit = logit_lambda + scale * ((256.0 - x) - noise)  # 1 − u
  return xp.log(unit) - xp.log(one_minus_unit)


def logit_space_to_pixel_bits_per_dim(log_prob_logit, y, *, logit_lambda: float) -> np.ndarray:
  """Bits/pixel of 8-bit data from a log-density in logit space: `[B]`, `[B, D]` -> `[B]`.

  With p = (x + U)/256 ∈ [0, 1)^D the dequantized pixels, u = λ + (1 − 2λ)·p
  and y = logit(u), the change of variables gives the density of p:

      log p_p(p) = log p_y(y) + Σ_d log |dy_d/dp_d|,
      dy/dp = (1 − 2λ) / (u (1 − u)),  log(u (1 − u)) = −softplus(−y) − softplus(y).

  Each 8-bit value x owns a bin of width 1/256 in p, so by Jensen's inequality
  log P(x) = log ∫_bin p_p ≥ E_U[log p_p(p)] − D·log 256, and

      bits/pixel = −log₂ p_p(p) / D + 8

  is an upper bound on the discrete model's bits/pixel (Theis, van den Oord &
  Bethge 2016; Dinh, Sohl-Dickstein & Bengio 2017 (Real NVP) §4.1 convert
  logit-space MNIST/CIFAR likelihoods the same way). Host-side numpy in
  float64: it is an evaluation metric, not part of a jitted step.

  Args:
    log_prob_logit: `[B]` log p_y(y) in nats (what the model reports).
    y: `[B, D]` the logit-space data it was evaluated on.
    logit_lambda: the λ of the transform (`DataConfig.logit_lambda`).
  """
  log_prob_logit = np.asarray(log_prob_logit, np.float64)
  y = np.asarray(y, np.float64)
  if y.ndim != 2 or log_prob_logit.shape != y.shape[:1]:
    raise ValueError(f"log_prob_logit must be [B] and y [B, D]; got {log_prob_logit.shape} and {y.shape}")
  num_dims = y.shape[1]
  log_abs_det = (num_dims * np.log1p(-2.0 * logit_lambda)
                 + np.sum(np.logaddexp(0.0, -y) + np.logaddexp(0.0, y), axis=1))  # [B]
  return -(log_prob_logit + log_abs_det) / (num_dims * np.log(2.0)) + 8.0


def prepare_batch(config: DataConfig, x, key, *, num_levels: int | None = None):
  """Per-step transform of a training batch on the device: dynamic binarization or
  dequantization, and the background-model perturbation (`config.perturb`, which needs the
  data's `num_levels`: 2 for binary, 256 for 8-bit data).

  All draw new numbers from `key`, which the train step folds with the step
  number, so every step sees fresh noise.
  """
  import jax
  import jax.numpy as jnp
  binarize_key = key
  if config.perturb:
    if num_levels is None or config.dequantize != "none":
      raise ValueError("data.perturb needs discrete data (binary or 8-bit, no dequantization)")
    binarize_key, perturb_key, level_key = jax.random.split(key, 3)
  if config.binarize == "dynamic":
    x = jax.random.bernoulli(binarize_key, x / 255.0).astype(x.dtype)
    num_levels = 2
  elif config.dequantize == "logit":
    noise = jax.random.uniform(key, x.shape)  # [B, D] in [0, 1)
    return logit_dequantize(x.astype(jnp.float32), noise, logit_lambda=config.logit_lambda, xp=jnp)
  if config.perturb:
    replace = jax.random.bernoulli(perturb_key, config.perturb, x.shape)
    uniform = jax.random.randint(level_key, x.shape, 0, num_levels).astype(x.dtype)
    x = jnp.where(replace, uniform, x)
  return x


# ------------------------------------------------------------------ main ---


def resolve_data_dir(config: DataConfig) -> str | None:
  return config.data_dir or os.environ.get(DATA_DIR_ENV) or None


def load_dataset(config: DataConfig) -> Dataset:
  """Loads, checks and transforms a dataset as the config says; all in memory (the config's
  values were checked when it was made: `DATA_RULES`)."""
  data_dir = resolve_data_dir(config)
  source = config.source
  if source == "auto":
    source = "local" if (data_dir or config.name.endswith(".npz")) else "tfds"
  if config.name.startswith(toy.PREFIX):
    splits, labels = toy.load_splits(config.name.removeprefix(toy.PREFIX))
  elif source == "local":
    splits, labels = _load_local(config.name, data_dir)
  elif source == "tfds":
    splits, labels = _load_tfds(config.name, data_dir)
  else:
    raise ValueError(f"DataConfig.source must be 'auto', 'local' or 'tfds'; got {source!r}")

  for split in SPLITS:
    if split not in splits:
      raise ValueError(f"Dataset {config.name!r} has no {split!r} split")
  check_splits(f"Dataset {config.name!r}", splits, labels)
  limits = {"train": config.max_train_examples, "valid": config.max_eval_examples,
            "test": config.max_eval_examples}
  for split, limit in limits.items():
    if limit is not None:
      splits[split] = splits[split][:limit]
      labels[split] = None if labels[split] is None else labels[split][:limit]

  example_shape = splits["train"].shape[1:]
  image_shape = _image_shape(example_shape)
  if config.layout == "image":
    if image_shape is None:
      raise ValueError(f"data.layout='image' needs image examples ([H, W], [H, W, C] or a square number "
                       f"of pixels); {config.name!r} has examples of shape {example_shape}. Use layout='flat'.")
    event_shape = image_shape
  elif config.layout == "flat":
    event_shape = (int(np.prod(example_shape)),)
  else:
    raise ValueError(f"DataConfig.layout must be 'flat' or 'image'; got {config.layout!r}")
  for split in SPLITS:  # [N, D] vectors for the flat families, [N, H, W, C] images for the others
    splits[split] = splits[split].reshape(len(splits[split]), *event_shape)
    if np.issubdtype(splits[split].dtype, np.floating) and not np.all(np.isfinite(splits[split])):
      raise ValueError(f"Dataset {config.name!r}: split {split!r} contains NaN or infinite values")

  max_value = max(int(splits[s].max()) for s in SPLITS) if np.issubdtype(
      splits["train"].dtype, np.integer) or _is_integral(splits["train"]) else None
  num_levels = None if max_value is None else (2 if max_value <= 1 else 256)

  if config.binarize != "none":
    if num_levels != 256:
      raise ValueError(f"binarize={config.binarize!r} needs 8-bit data (0..255); {config.name!r} "
                       f"has {'binary' if num_levels == 2 else 'real'} values. Use binarize='none'.")
    for i, split in enumerate(SPLITS):
      if config.binarize == "static" or split != "train":
        splits[split] = binarize(splits[split], config.binarize_seed + i)
    num_levels = 2 if config.binarize == "static" else num_levels
  else:
    splits = {s: a.astype(np.uint8) if num_levels else a.astype(np.float32) for s, a in splits.items()}

  if config.dequantize == "logit":
    if config.binarize != "none":
      raise ValueError("dequantize='logit' and binarize are alternatives; set one of them to 'none'.")
    if num_levels != 256:
      raise ValueError(f"dequantize='logit' needs 8-bit data (0..255); {config.name!r} has "
                       f"{'binary' if num_levels == 2 else 'real'} values. Use dequantize='none'.")
    for i, split in enumerate(SPLITS):
      if split != "train":  # the training split stays 8-bit: `prepare_batch` adds new noise each step
        noise = np.random.default_rng(config.binarize_seed + i).random(splits[split].shape)
        splits[split] = logit_dequantize(splits[split].astype(np.float64), noise,
                                         logit_lambda=config.logit_lambda).astype(np.float32)
    num_levels = None
  elif config.dequantize != "none":
    raise ValueError(f"DataConfig.dequantize must be 'none' or 'logit'; got {config.dequantize!r}")

  if config.context == "label":
    missing = [split for split in SPLITS if labels.get(split) is None]
    if missing:
      raise ValueError(
          f"context='label' needs class labels, and dataset {config.name!r} has none for the "
          f"{', '.join(missing)} split(s). Use a labelled dataset, e.g. DataConfig(name='mnist', "
          "binarize='static') (`data.name=mnist data.binarize=static`: binarized MNIST with digit "
          "labels; `binarized_mnist` has none), or an .npz with y_train/y_valid/y_test arrays.")
    for split in SPLITS:
      labels[split] = np.asarray(labels[split]).astype(np.int32).reshape(-1)
      if labels[split].min() < 0:
        raise ValueError(f"Dataset {config.name!r}: labels must be 0, 1, …, K−1; split {split!r} has "
                         f"{labels[split].min()}")
  elif config.context != "none":
    raise ValueError(f"DataConfig.context must be 'none' or 'label'; got {config.context!r}")

  return Dataset(splits=splits, labels=labels, event_shape=event_shape,
                 image_shape=image_shape, num_levels=num_levels)


def split_context(config: DataConfig, dataset: Dataset, split: str,
                  num_classes: int | None = None) -> np.ndarray | None:
  """The context of every example of `split` for a conditional model: float32 `[N, K]` one-hot
  labels for `context="label"` (K = `num_classes`, default `dataset.num_classes`), None for
  `context="none"`."""
  if config.context == "none":
    return None
  num_classes = dataset.num_classes if num_classes is None else num_classes
  labels = dataset.labels[split]
  if labels.max() >= num_classes:
    raise ValueError(f"Split {split!r} has label {labels.max()}, more than the {num_classes} classes "
                     "the model conditions on")
  return np.eye(num_classes, dtype=np.float32)[labels]  # [N, K]


def _is_integral(array: np.ndarray) -> bool:
  sample = array[:1000]
  return bool(np.all(sample == np.round(sample)) and sample.min() >= 0 and sample.max() <= 255)


def _image_shape(example_shape) -> tuple[int, int, int] | None:
  """[H, W, C] for image-like examples; MNIST-style flat 784 vectors are 28×28."""
  if len(example_shape) == 3:
    return tuple(example_shape)
  if len(example_shape) == 2:
    return (*example_shape, 1)
  side = int(round(np.sqrt(example_shape[0])))
  return (side, side, 1) if side * side == example_shape[0] else None
