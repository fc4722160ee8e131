"""Loaders: every local layout, binarization, and fast, helpful failures."""

import gzip
import struct
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arjax import data


def _write_idx(path, array):
  header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("layout", [("train", "valid", "test"),
                                    ("train_data", "valid_data", "test_data"),
                                    ("x_train", "x_valid", "x_test")])
def test_npz_layouts(tmp_path, layout):
  rng = np.random.default_rng(0)
  arrays = {key: rng.integers(0, 2, (n, 16)).astype(np.uint8) for key, n in zip(layout, (30, 10, 12))}
  np.savez(tmp_path / "toy.npz", **arrays)
  dataset = data.load_dataset(data.DataConfig(name="toy", data_dir=str(tmp_path)))
  for split, key in zip(data.SPLITS, layout):
    np.testing.assert_array_equal(dataset.splits[split], arrays[key])
  assert dataset.num_levels == 2 and dataset.event_shape == (16,) and dataset.image_shape == (4, 4, 1)


def test_npz_path_and_labels(tmp_path):
  x = np.arange(20 * 9).reshape(20, 3, 3) % 256
  np.savez(tmp_path / "mine.npz", x_train=x, y_train=np.arange(20), x_test=x[:5], y_test=np.arange(5))
  config = data.DataConfig(name=str(tmp_path / "mine.npz"))
  dataset = data.load_dataset(config)
  assert dataset.num_levels == 256 and dataset.image_shape == (3, 3, 1)
  assert len(dataset.splits["valid"]) == 3 and len(dataset.splits["train"]) == 17
  np.testing.assert_array_equal(dataset.labels["test"], np.arange(5))


def test_idx_folder_with_dash_name(tmp_path, monkeypatch):
  folder = tmp_path / "fashion-mnist"
  folder.mkdir()
  rng = np.random.default_rng(0)
  train, test = rng.integers(0, 256, (24, 5, 5)), rng.integers(0, 256, (3, 5, 5))
  _write_idx(folder / "train-images-idx3-ubyte.gz", train)
  _write_idx(folder / "t10k-images-idx3-ubyte.gz", test)
  _write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(24))
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
  dataset = data.load_dataset(data.DataConfig(name="fashion_mnist"))
  np.testing.assert_array_equal(dataset.splits["train"], train[:20].reshape(20, 25))
  np.testing.assert_array_equal(dataset.splits["valid"], train[20:].reshape(4, 25))
  np.testing.assert_array_equal(dataset.labels["valid"], np.arange(20, 24))
  assert dataset.labels["test"] is None


def test_static_binarization_is_seeded_and_matches_intensity(tmp_path):
  x = np.full((2000, 4), 64, np.uint8)
  np.savez(tmp_path / "grey.npz", train=x, valid=x[:100], test=x[:100])
  config = data.DataConfig(name="grey", data_dir=str(tmp_path), binarize="static", binarize_seed=5)
  a, b = data.load_dataset(config), data.load_dataset(config)
  np.testing.assert_array_equal(a.splits["train"], b.splits["train"])
  assert a.num_levels == 2 and abs(a.splits["train"].mean() - 64 / 255) < 0.02
  dynamic = data.load_dataset(data.DataConfig(name="grey", data_dir=str(tmp_path), binarize="dynamic"))
  assert dynamic.splits["train"].max() == 64 and dynamic.splits["test"].max() == 1


def test_binarizing_binary_data_is_an_error(tmp_path):
  np.savez(tmp_path / "b.npz", train=np.ones((4, 4)), valid=np.ones((4, 4)), test=np.ones((4, 4)))
  with pytest.raises(ValueError, match="8-bit"):
    data.load_dataset(data.DataConfig(name="b", data_dir=str(tmp_path), binarize="static"))


def test_missing_local_dataset_fails_fast_and_says_where(tmp_path):
  start = time.time()
  with pytest.raises(data.DatasetNotFoundError, match="ARJAX_DATA_DIR"):
    data.load_dataset(data.DataConfig(name="nothing_here", data_dir=str(tmp_path)))
  assert time.time() - start < 5


def test_unknown_npz_layout(tmp_path):
  np.savez(tmp_path / "odd.npz", images=np.zeros((3, 4)))
  with pytest.raises(ValueError, match="no known layout"):
    data.load_dataset(data.DataConfig(name="odd", data_dir=str(tmp_path)))


def test_tfds_offline_fails_fast(tmp_path, monkeypatch):
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  monkeypatch.setattr(data, "_network_reachable", lambda *a, **k: False)
  start = time.time()
  with pytest.raises(data.DatasetNotFoundError, match="unreachable"):
    data.load_dataset(data.DataConfig(name="binarized_mnist", source="tfds", data_dir=str(tmp_path)))
  assert time.time() - start < 10


def test_tfds_source_with_mock_data(monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  with tfds.testing.mock_data(num_examples=30):
    dataset = data.load_dataset(data.DataConfig(name="mnist", source="tfds", binarize="static"))
  assert [len(dataset.splits[s]) for s in data.SPLITS] == [25, 5, 30]
  assert dataset.event_shape == (784,) and dataset.num_levels == 2
  assert dataset.labels["valid"].shape == (5,)


@pytest.mark.parametrize("num_levels", [2, 256])
def test_perturb_replaces_a_fraction_of_values_by_uniform_levels(num_levels):
  config = data.DataConfig(perturb=0.3)
  x = jnp.zeros((200, 100), jnp.uint8)
  perturbed = np.asarray(data.prepare_batch(config, x, jax.random.key(0), num_levels=num_levels))
  assert perturbed.dtype == np.uint8 and perturbed.max() < num_levels
  # A replaced value is uniform over the levels, so it stays 0 with probability 1/num_levels.
  expected = 0.3 * (1 - 1 / num_levels)
  assert abs(np.mean(perturbed != 0) - expected) < 0.01
  with pytest.raises(ValueError, match="discrete"):
    data.prepare_batch(config, x, jax.random.key(0))
