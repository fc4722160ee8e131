"""Data-parallel training on forced CPU devices: the same curve and test NLL as one device.

The multi-device runs happen in a subprocess started with
`XLA_FLAGS=--xla_force_host_platform_device_count=4` (the device count is fixed when JAX
starts); inside it the same config trains on one device (`train.num_devices=1`) and on four,
with the parameters replicated and FSDP-style split.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from arjax import config as config_lib
from arjax import sharding
from conftest import noisy_stripes

FORCED_DEVICES = 4

_SCRIPT = textwrap.dedent('''
    import dataclasses, json, sys
    import jax, numpy as np
    from arjax import config as config_lib, data, models, train

    path, family, out, placements = sys.argv[1:5]
    model = {
        "nade": models.NADEConfig(num_hidden=16),
        "made": models.MADEConfig(hidden_sizes=(24, 24)),
        "pixelcnn": models.PixelCNNConfig(num_blocks=1, num_features=8, head_features=8,
                                          input_kernel_size=3),
    }[family]
    assert jax.device_count() == 4, jax.devices()
    results = {}
    options_of = {"one": dict(num_devices=1), "replicated": {}, "fsdp": dict(shard_params=True),
                  "streamed": dict(input_pipeline="stream")}
    for name in placements.split(","):
      options = options_of[name]
      config = config_lib.Config(
          data=data.DataConfig(name=path, layout="image" if family == "pixelcnn" else "flat"),
          model=model,
          optim=config_lib.OptimConfig(learning_rate=1e-2),
          train=config_lib.TrainConfig(batch_size=24, num_epochs=2, eval_batch_size=36,
                                       num_samples=0, log_every=5, **options))
      workdir = f"{out}/{name}"
      result = train.train_and_evaluate(config, workdir)
      metrics = [json.loads(l) for l in open(f"{workdir}/metrics.jsonl")]
      results[name] = {"test_nll": result["test_nll_nats"], "device": result["device"],
                       "train_nll": [m["train_nll"] for m in metrics],
                       "valid_nll": [m["valid_nll"] for m in metrics]}
      # What each device holds of the first layer's weights (the whole, or a quarter).
      run = train._prepare(config, None, 0.0)
      weights = max(jax.tree.leaves(run.state["params"]), key=lambda leaf: leaf.size)
      results[name]["shard_sizes"] = sorted({s.data.size for s in weights.addressable_shards})
      results[name]["weights_size"] = weights.size
      results[name]["data_devices"] = len(run.placement.mesh.devices.flat)
    json.dump(results, open(f"{out}/results.json", "w"))
''')


def forced_device_env(count: int = FORCED_DEVICES) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()
  env["JAX_PLATFORMS"] = "cpu"
  return env


@pytest.fixture
def tiny_images(tmp_path):
  """Binary 6×6 images, 6 rows copying a random pattern (so there is structure to learn)."""
  images = noisy_stripes(290)
  path = tmp_path / "tiny.npz"
  np.savez(path, train=images[:192], valid=images[192:242], test=images[242:])  # 50, 48 rows: padded
  return path


# Each family against one device under every layout would triple the compile time; NADE runs
# them all (and Grain-streamed batches over the 4 devices), the others one each.
@pytest.mark.parametrize("family, placements", [
    ("nade", ("replicated", "fsdp", "streamed")), ("made", ("fsdp",)), ("pixelcnn", ("replicated",))])
def test_sharded_training_matches_one_device(tiny_images, tmp_path, family, placements):
  subprocess.run([sys.executable, "-c", _SCRIPT, str(tiny_images), family, str(tmp_path),
                  ",".join(("one",) + placements)], check=True, env=forced_device_env(), timeout=300)
  results = json.loads((tmp_path / "results.json").read_text())
  one = results["one"]
  assert len(one["train_nll"]) == 2 and one["train_nll"][-1] < one["train_nll"][0]
  size = one["weights_size"]
  assert one["data_devices"] == 1 and one["shard_sizes"] == [size]
  for name in placements:
    assert results[name]["data_devices"] == 4
    assert results[name]["shard_sizes"] == [size // 4 if name == "fsdp" else size]
    # Only the order of float sums differs (the batch mean is an all-reduce over devices).
    np.testing.assert_allclose(results[name]["train_nll"], one["train_nll"], rtol=2e-5, err_msg=name)
    np.testing.assert_allclose(results[name]["valid_nll"], one["valid_nll"], rtol=2e-5, err_msg=name)
    np.testing.assert_allclose(results[name]["test_nll"], one["test_nll"], rtol=2e-5, err_msg=name)


def test_a_batch_that_does_not_split_over_the_devices_says_what_to_set():
  script = textwrap.dedent('''
      from arjax import sharding
      placement = sharding.Placement.create()
      try:
        placement.check_divisible(50, "train.batch_size")
      except ValueError as e:
        print(e)
      placement.check_divisible(48, "train.batch_size")
      try:
        sharding.Placement.create(num_devices=5)
      except ValueError as e:
        print(e)
  ''')
  out = subprocess.run([sys.executable, "-c", script], check=True, env=forced_device_env(),
                       capture_output=True, text=True, timeout=120).stdout
  assert "train.batch_size=50 does not split over 4 devices" in out
  assert "multiple of 4 (e.g. 48 or 52)" in out
  assert "train.num_devices=5, but 4 device(s) are visible" in out


@pytest.mark.parametrize("shape, spec", [
    ((784, 500), P("data")),  # the larger axis
    ((500, 784), P(None, "data")),
    ((8, 8), P("data")),  # ties: the first
    ((6, 4), P(None, "data")),  # 6 does not divide by 4
    ((3, 5), P()),  # no axis divides: replicated
    ((), P()),
    ((2, 8), P(None, "data")),  # an axis smaller than the device count is not split
])
def test_fsdp_splits_the_largest_divisible_axis(shape, spec):
  assert sharding.fsdp_spec(shape, 4) == spec
  assert sharding.fsdp_spec(shape, 1) == P()


def test_placement_fields_are_checked():
  with pytest.raises(ValueError, match="train.num_devices"):
    config_lib.apply_overrides(config_lib.Config(), ["train.num_devices=0"])
  with pytest.raises(ValueError, match="train.input_pipeline"):
    config_lib.apply_overrides(config_lib.Config(), ["train.input_pipeline=disk"])


@pytest.mark.parametrize("pipeline", ["stream", "auto"])
def test_streamed_input_trains_like_the_device_resident_set(tmp_path, pipeline):
  """Grain streams the same index rows the device path gathers: the same curve and model."""
  from arjax import data, models, train

  rng = np.random.default_rng(1)
  x = (rng.random((300, 20)) < 0.3).astype(np.uint8)
  np.savez(tmp_path / "bits.npz", train=x[:200], valid=x[200:250], test=x[250:])

  def config(**options):
    return config_lib.Config(
        data=data.DataConfig(name=str(tmp_path / "bits.npz")), model=models.NADEConfig(num_hidden=8),
        optim=config_lib.OptimConfig(learning_rate=1e-2),
        train=config_lib.TrainConfig(batch_size=20, num_epochs=2, eval_batch_size=50, num_samples=0,
                                     **options))

  # "auto" streams a set above stream_above_mb: 200 × 20 bytes is above 0.001 MB.
  options = {"stream": dict(input_pipeline="stream"), "auto": dict(stream_above_mb=0.001)}[pipeline]
  streamed = train.train_and_evaluate(config(**options), tmp_path / "stream")
  resident = train.train_and_evaluate(config(input_pipeline="device"), tmp_path / "device")
  curves = [[json.loads(line)["train_nll"] for line in (tmp_path / name / "metrics.jsonl").open()]
            for name in ("stream", "device")]
  assert curves[0] == curves[1]  # the same step on the same batches: bit for bit
  assert streamed["test_nll_nats"] == resident["test_nll_nats"]
  assert train._prepare(config(**options), None, 0.0).streamed
  assert not train._prepare(config(), None, 0.0).streamed  # 4 kB is far below the 2 GB default


def test_streamed_batches_are_read_in_order():
  from arjax import streaming

  x = np.arange(40).reshape(20, 2)
  batches = streaming.EpochBatches(x, np.array([[3, 1], [0, 19]]))
  first, context = batches[0]
  np.testing.assert_array_equal(first, x[[3, 1]])
  assert context is None and len(batches) == 2
  with pytest.raises(IndexError, match="in order"):
    batches[0]
