"""Several seeds (and learning rates) of one small model trained in one program with `jax.vmap`.

    python -m arjax train nade_binarized_mnist:smoke --workdir runs/seeds --seeds 4
    python -m arjax train EXP --workdir DIR --seeds 4 --learning-rates 1e-3,3e-3,1e-2,3e-2

`train_vmapped(config, seeds, learning_rates=...)` stacks K copies of the parameters (each
initialized from its own `nnx.Rngs(seed)`) and their optimizer states along a leading axis, and
`jax.vmap`s one Adam step over them: one compilation, one pass over the data per epoch, K
models updated by each call. All K see the same batches (shuffled from `config.train.seed`);
what differs is the initialization, the per-step randomness (dynamic binarization, mask draws:
`fold_in(key(seed), step)`), and, with `learning_rates`, the learning rate: an Adam(W) update is
linear in the learning rate, so seed k's update is the base update scaled by
`learning_rates[k] / optim.learning_rate`, exact for every schedule.

The model's other state (orderings, masks) must not depend on the seed (it is shared); every
epoch validates each model, and the test NLL is of the last epoch's parameters (no early
stopping or checkpoints: for quick seed and learning-rate studies, not for reported runs).

A custom call without a batching rule runs once per seed under `jax.vmap`: NADE's fused CPU
kernel (`model.kernel="fused"`, what "auto" picks on a CPU) is such a call, and there the
vmapped program is no faster than the seeds one after another (0.67x for 4 seeds of NADE-50,
experiments/results/speed/vmapped_seeds_nade_fused_kernel_cpu.json); pass `model.kernel=cumsum`
(plain XLA) for vmapped NADE seeds. On XLA's CPU backend the seeds' batched matrix products
cost about what they cost one after another, so there the one program saves only the shared
compilation and per-step dispatch: 1.6x for 4 seeds of a 100-dimensional FVSBN, less for
larger models (docs/scaling.md, "Seeds in one program"). The gain it is built for, a device
that one small model leaves idle, is an accelerator's.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from arjax import config as config_lib
from arjax import data as data_lib
from arjax import likelihood
from arjax import train as train_lib


def _stacked_models(config: config_lib.Config, dataset: data_lib.Dataset, seeds: Sequence[int]):
  """(graphdef, params stacked `[K, ...]`, the shared rest) of the config's model under each seed."""
  data_kwargs = getattr(config.model, "data_kwargs", lambda train_x: {})(dataset.splits["train"])
  splits = [nnx.split(config.model.build(dataset.event_shape, rngs=nnx.Rngs(seed), **data_kwargs),
                      nnx.Param, ...) for seed in seeds]
  graphdef, _, rest = splits[0]
  for seed, (_, _, other) in zip(seeds[1:], splits[1:]):
    same = jax.tree.map(lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b))), rest, other)
    if not all(jax.tree.leaves(same)):
      raise ValueError(f"{type(config.model).__name__}: its orderings or masks depend on the seed "
                       f"(seed {seed} differs from seed {seeds[0]}); vmapped seeds share them, so "
                       "train such seeds one after another (`python -m arjax train` per seed)")
  params = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[p for _, p, _ in splits])  # [K, ...]
  return graphdef, params, rest


def train_vmapped(config: config_lib.Config, seeds: Sequence[int], *,
                  learning_rates: Sequence[float] | None = None, num_epochs: int | None = None,
                  dataset: data_lib.Dataset | None = None) -> dict:
  """Trains one model per seed (with `learning_rates[k]` for seed k, default the config's) for
  `num_epochs` (default `config.train.num_epochs`) epochs in one vmapped program.

  Returns {"seeds", "learning_rates", "train_nll" [E][K], "valid_nll" [E][K], "test_nll" [K],
  "epoch_seconds" [E], "wall_time_s"}.
  """
  start = time.time()
  seeds = [int(s) for s in seeds]
  if not seeds or len(set(seeds)) != len(seeds):
    raise ValueError(f"seeds must be distinct and at least one; got {seeds}")
  base_lr = config.optim.learning_rate
  learning_rates = [base_lr] * len(seeds) if learning_rates is None else [float(r) for r in learning_rates]
  if len(learning_rates) != len(seeds) or not all(math.isfinite(r) and r > 0 for r in learning_rates):
    raise ValueError(f"learning_rates must be {len(seeds)} numbers > 0 (one per seed); got {learning_rates}")
  if config.optim.ema_decay:
    raise ValueError("vmapped seeds do not average parameters; set optim.ema_decay=0")
  if config.data.context != "none":
    raise ValueError("vmapped seeds train unconditional models; set data.context=none")
  dataset = dataset or data_lib.load_dataset(config.data)
  train_config = config.train
  num_epochs = num_epochs or train_config.num_epochs
  train_data = jnp.asarray(dataset.splits["train"])
  num_train = len(train_data)
  batch_size = min(train_config.batch_size, num_train)
  steps_per_epoch = num_train // batch_size
  tx, _ = train_lib.make_optimizer(config.optim, steps_per_epoch, num_epochs, num_train=num_train)
  graphdef, params, rest = _stacked_models(config, dataset, seeds)
  state = {"params": params, "opt_state": jax.vmap(tx.init)(params),
           "step": jnp.zeros((), jnp.int32)}
  keys = jax.vmap(lambda s: jax.random.split(jax.random.key(s), 3)[1])(jnp.asarray(seeds))  # [K]
  lr_scale = jnp.asarray(learning_rates, jnp.float32) / base_lr  # [K]

  def one_step(params, opt_state, step, indices, key, scale):
    key = jax.random.fold_in(key, step)
    data_key, mask_key = jax.random.split(key)
    x = data_lib.prepare_batch(config.data, jnp.take(train_data, indices, axis=0), data_key,
                               num_levels=dataset.num_levels)

    def loss_fn(p):
      return jnp.mean(train_lib.training_nll(nnx.merge(graphdef, p, rest), x, mask_key))

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    updates = jax.tree.map(lambda u: scale * u, updates)  # Adam(W)'s update is linear in its rate
    return optax.apply_updates(params, updates), opt_state, loss

  @functools.partial(jax.jit, donate_argnums=0)
  def step(state, indices, keys):
    params, opt_state, losses = jax.vmap(one_step, in_axes=(0, 0, None, None, 0, 0))(
        state["params"], state["opt_state"], state["step"], indices, keys, lr_scale)
    return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, losses  # [K]

  @jax.jit
  def batch_log_prob(params, x):  # [K, B]
    return jax.vmap(lambda p: likelihood.log_prob(nnx.merge(graphdef, p, rest), x))(params)

  def nll(params, x: np.ndarray) -> np.ndarray:  # [K]
    eval_batch = min(train_config.eval_batch_size, len(x))
    padding = (-len(x)) % eval_batch
    padded = np.concatenate([x, np.repeat(x[:1], padding, axis=0)]) if padding else x
    with jax.default_matmul_precision("highest"):
      parts = [batch_log_prob(params, jnp.asarray(padded[i:i + eval_batch]))
               for i in range(0, len(padded), eval_batch)]
    return -np.asarray(jnp.concatenate(parts, axis=1))[:, :len(x)].mean(axis=1)

  shuffle_key = jax.random.split(jax.random.key(train_config.seed), 3)[0]
  history = {"train_nll": [], "valid_nll": [], "epoch_seconds": []}
  for epoch in range(1, num_epochs + 1):
    epoch_start = time.time()
    order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), num_train)
    # Rows of a host array: slicing a device array would cost one more dispatch per step.
    batches = np.asarray(order[:steps_per_epoch * batch_size]).reshape(steps_per_epoch, batch_size)
    losses = []
    for i in range(steps_per_epoch):
      state, loss = step(state, batches[i], keys)
      losses.append(loss)
    train_nll = np.asarray(jnp.mean(jnp.stack(losses), axis=0))  # [K]
    if not np.all(np.isfinite(train_nll)):
      raise train_lib.NonFiniteLossError(f"Training loss became {train_nll.tolist()} at epoch {epoch} "
                                         f"(seeds {seeds}, learning rates {learning_rates})")
    history["train_nll"].append(train_nll.tolist())
    history["valid_nll"].append(nll(state["params"], dataset.splits["valid"]).tolist())
    history["epoch_seconds"].append(time.time() - epoch_start)
  return {"seeds": seeds, "learning_rates": learning_rates, "num_epochs": num_epochs, **history,
          "test_nll": nll(state["params"], dataset.splits["test"]).tolist(),
          "wall_time_s": time.time() - start}
