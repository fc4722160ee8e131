"""Streaming input with Grain, for training sets that do not fit in device memory.

The default input keeps the training set as one device array and each step gathers its batch
there (`train.input_pipeline="device"`). With `"stream"` (or `"auto"` above
`train.stream_above_mb`) the set stays in host memory (or an `np.memmap` on disk) and a Grain
pipeline gathers each step's rows in background threads, a few batches ahead of the device:

    grain.MapDataset.source(epoch's index rows [S, B]) .map(gather rows) .to_iter_dataset(threads)

The index rows are the ones the device path uses (the same shuffle of the same key), so both
paths train on the same batches in the same order and give the same model; the train step is
the same function, given the batch itself instead of (data, indices). In a multi-process run
each process gathers only its slice of every batch and `jax.make_array_from_process_local_data`
assembles the global batch (arjax.sharding.Placement.put_local_batch).
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpy as np

from arjax import config as config_lib
from arjax import sharding


def use_streaming(train_config: config_lib.TrainConfig, train_x: np.ndarray) -> bool:
  """Whether the run streams its training set (`input_pipeline`, "auto": by size)."""
  if train_config.input_pipeline == "auto":
    return train_x.nbytes > train_config.stream_above_mb * 2**20
  return train_config.input_pipeline == "stream"


class EpochBatches:
  """The batches of one epoch, `[S]` of `(x [B, ...], context [B, C] | None)`, streamed by Grain.

  Read in order (`batches[0]`, `batches[1]`, ...), as the training loop reads its index rows.
  """

  def __init__(self, train_x: np.ndarray, indices: np.ndarray, *, context: np.ndarray | None = None,
               placement: sharding.Placement | None = None, num_threads: int = 2,
               prefetch: int = 4):
    import grain

    self._num_batches = len(indices)
    self._placement = placement
    rows = slice(None) if placement is None else placement.process_rows(indices.shape[1])

    def gather(index_row):  # on a Grain thread: this process's rows of one batch, from host memory
      local = index_row[rows]
      return train_x[local], None if context is None else context[local]

    dataset = grain.MapDataset.source(list(np.asarray(indices))).map(gather)
    self._iterator = iter(dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)))
    self._next = 0

  def __len__(self) -> int:
    return self._num_batches

  def __getitem__(self, i: int):
    if i != self._next:
      raise IndexError(f"streamed batches are read in order; asked for {i}, next is {self._next}")
    self._next += 1
    x, context = next(self._iterator)
    return self._place(x), None if context is None else self._place(context)

  def _place(self, rows: np.ndarray):
    if self._placement is None or self._placement.trivial:
      return jnp.asarray(rows)
    return self._placement.put_local_batch(rows)


def streaming_step(train_step: Callable) -> Callable:
  """The loop's step signature `(state, data, batch, key, context)` over streamed batches: the
  batch `(x, context)` is the data, and no indices gather it."""
  def step(state, _train_data, batch, key, _train_context=None):
    x, context = batch
    return train_step(state, x, None, key, context)
  return step
