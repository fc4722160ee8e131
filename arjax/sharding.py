"""Data-parallel (and FSDP-style) placement on JAX's own engine: one mesh, axis "data".

The training loop places everything through one `Placement`:

  * the batch of every train step and every evaluation call is split over all devices along
    its first axis (`NamedSharding(mesh, P("data"))`), so each device computes its slice and
    XLA inserts the gradient all-reduce;
  * parameters, optimizer state and the model's other state are replicated, or with
    `train.shard_params=True` each array of the train state is split along its largest axis
    that divides by the device count (FSDP-style: each device holds 1/n of the state, XLA
    gathers a weight where a step needs it). Arrays with no such axis stay replicated;
  * arrays every process knows whole (the training set that lives on the device, the epoch's
    shuffled indices) become global arrays with `jax.make_array_from_callback`; rows only this
    process has (a streamed batch) with `jax.make_array_from_process_local_data`.

The mesh uses `AxisType.Auto` axes: the compiler propagates shardings through the model code
(models are written without sharding annotations), the way `jax.jit` over `NamedSharding`
inputs worked before explicit sharding. With one device every placement is a no-op in effect,
and the numbers are those of an unsharded run.

Several hosts: `initialize_distributed()` (before any computation) calls
`jax.distributed.initialize()`, which detects TPU pods, SLURM and Open MPI by itself; elsewhere
it takes the coordinator address, process count and id. Then `jax.devices()` lists every
host's devices, the mesh spans them all, and only process 0 writes files other than the
Orbax checkpoints (which every process writes its shards of).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"

_initialized = False


def initialize_distributed(*, coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
  """Calls `jax.distributed.initialize` once; returns whether this is a multi-process run.

  Arguments left as None come from `ARJAX_COORDINATOR_ADDRESS` (or JAX's own
  `JAX_COORDINATOR_ADDRESS`), `ARJAX_NUM_PROCESSES` and `ARJAX_PROCESS_ID`; when all are unset,
  JAX detects the cluster (TPU pod slice, SLURM, Open MPI). Must run before any computation.
  """
  global _initialized
  if not _initialized:
    coordinator_address = coordinator_address or os.environ.get("ARJAX_COORDINATOR_ADDRESS")
    if num_processes is None and os.environ.get("ARJAX_NUM_PROCESSES"):
      num_processes = int(os.environ["ARJAX_NUM_PROCESSES"])
    if process_id is None and os.environ.get("ARJAX_PROCESS_ID"):
      process_id = int(os.environ["ARJAX_PROCESS_ID"])
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
    _initialized = True
  return jax.process_count() > 1


def distributed_requested() -> bool:
  """Whether the environment asks for `jax.distributed` (`ARJAX_DISTRIBUTED=1`, or an
  `ARJAX_COORDINATOR_ADDRESS`)."""
  return os.environ.get("ARJAX_DISTRIBUTED", "") not in ("", "0") or bool(
      os.environ.get("ARJAX_COORDINATOR_ADDRESS"))


def is_writer() -> bool:
  """Whether this process writes the run's JSON, metrics and pictures (process 0 only)."""
  return jax.process_index() == 0


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1-D mesh over the first `num_devices` devices (all, by default) with the axis "data"."""
  available = jax.device_count()
  num_devices = available if num_devices is None else num_devices
  if not 1 <= num_devices <= available:
    raise ValueError(f"train.num_devices={num_devices}, but {available} device(s) are visible "
                     f"({jax.devices()[0].platform}); set it to at most {available} or leave it "
                     "unset (None: all of them)")
  if num_devices != available and jax.process_count() > 1:
    raise ValueError("train.num_devices must be unset (all devices) in a multi-process run")
  return jax.make_mesh((num_devices,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:num_devices])


def fsdp_spec(shape: tuple[int, ...], num_devices: int) -> P:
  """The spec that splits an array of `shape` along its largest axis divisible by
  `num_devices` (the first such on ties); P() (replicated) when there is none."""
  candidates = [axis for axis, size in enumerate(shape) if size % num_devices == 0 and size >= num_devices]
  if num_devices == 1 or not candidates:
    return P()
  axis = max(candidates, key=lambda a: (shape[a], -a))
  return P(*([None] * axis + [DATA_AXIS]))


@dataclasses.dataclass(frozen=True)
class Placement:
  """Where a run's arrays live: the mesh, and whether the train state is split over it."""

  mesh: jax.sharding.Mesh
  shard_params: bool = False

  @classmethod
  def create(cls, *, num_devices: int | None = None, shard_params: bool = False) -> "Placement":
    return cls(make_mesh(num_devices), shard_params)

  @property
  def num_devices(self) -> int:
    return self.mesh.size

  @property
  def trivial(self) -> bool:
    """One device in one process: placing changes nothing."""
    return self.num_devices == 1 and jax.process_count() == 1

  def sharding(self, spec: P = P()) -> NamedSharding:
    return NamedSharding(self.mesh, spec)

  def batch_spec(self, ndim: int, axis: int = 0) -> P:
    return P(*([None] * axis + [DATA_AXIS] + [None] * (ndim - axis - 1)))

  def check_divisible(self, batch_size: int, field: str) -> None:
    """ValueError unless `batch_size` (the global batch of `field`) splits evenly over the mesh."""
    n = self.num_devices
    if batch_size % n:
      lower, upper = batch_size - batch_size % n, batch_size + n - batch_size % n
      raise ValueError(
          f"{field}={batch_size} does not split over {n} devices (each device takes an equal "
          f"slice of the global batch); set {field} to a multiple of {n} "
          f"(e.g. {lower or upper} or {upper}), or train.num_devices to a divisor of {batch_size}")

  def state_shardings(self, tree) -> Any:
    """The sharding of every array of the train state `tree` (replicated, or FSDP-style)."""
    def one(leaf):
      shape = np.shape(leaf)
      return self.sharding(fsdp_spec(shape, self.num_devices) if self.shard_params else P())
    return jax.tree.map(one, tree)

  def put_state(self, tree):
    """`tree` (the train state) placed by `state_shardings`."""
    return jax.tree.map(self.put_global, tree, self.state_shardings(tree))

  def put_replicated(self, tree):
    """Every array of `tree` (e.g. the model's non-parameter state) copied to every device."""
    return jax.tree.map(lambda leaf: self.put_global(leaf, self.sharding()), tree)

  def put_global(self, value, sharding: NamedSharding | P):
    """A global array of `value` (the same whole array in every process) laid out by
    `sharding`; each process copies only the slices its devices hold."""
    if isinstance(sharding, P):
      sharding = self.sharding(sharding)
    if isinstance(value, jax.Array) and value.sharding == sharding:
      return value
    if self.trivial:  # as an unsharded run holds it
      return jnp.asarray(value)
    host = np.asarray(value)
    host = host.astype(jax.dtypes.canonicalize_dtype(host.dtype))  # float64 -> float32 without x64
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

  def put_batch(self, value, *, axis: int = 0):
    """A global array whose `axis` is split over the devices, from a value every process holds whole."""
    return self.put_global(value, self.batch_spec(np.ndim(value), axis))

  def put_local_batch(self, local_rows: np.ndarray):
    """The global batch `[B, ...]` from this process's rows `[B / processes, ...]` (its slice,
    in process order), split over the devices: `jax.make_array_from_process_local_data`."""
    local_rows = np.asarray(local_rows)
    global_shape = (local_rows.shape[0] * jax.process_count(),) + local_rows.shape[1:]
    return jax.make_array_from_process_local_data(self.sharding(self.batch_spec(local_rows.ndim)),
                                                  local_rows, global_shape)

  def process_rows(self, batch_size: int) -> slice:
    """The rows of a global batch of `batch_size` this process feeds."""
    per_process = batch_size // jax.process_count()
    return slice(jax.process_index() * per_process, (jax.process_index() + 1) * per_process)

  def fetch(self, tree):
    """`tree`'s arrays as host numpy arrays, gathered from every process where needed."""
    def one(leaf):
      if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
      return np.asarray(leaf)
    return jax.tree.map(one, tree)
