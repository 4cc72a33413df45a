"""The training loop: orbax checkpoints, resume, snapshots, and the overfitting guard hookup.

A run is fully determined by its data, model and train settings: the batch at step s is drawn
from a permutation seeded by (seed, epoch), and the step key is fold_in(key, s). A run killed at
any point resumes from its last checkpoint and ends with the same parameters as an uninterrupted
run (tests/training_loop_test.py checks this).

Files under a run's workdir: `settings.json` (what the checkpoint depends on, compared on
resume), `checkpoints/` (the TrainState, the last two kept), `snapshots/` (parameters and batch
statistics every `snapshot_every` steps, all kept) and the guard's `guard.json` and `guard/`.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from advbound import models
from advbound.data import Dataset
from advbound.runtime import io, probe, sharding
from advbound.training import guard as guard_lib
from advbound.training.optimizers import make_optimizer
from advbound.training.settings import Train
from advbound.training.step import TrainState, build_model, init_state, make_train_step


def steps_per_epoch(train_size: int, batch_size: int) -> int:
  """The steps of one pass over a training split of `train_size` examples in batches of
  `batch_size`, the remainder dropped (the trainer's epoch, `batch_indices`): 45,000 / 128 ->
  351. The one place that defines an epoch's length."""
  for name, v in (("train_size", train_size), ("batch_size", batch_size)):
    if isinstance(v, bool) or int(v) != v or v < 1:
      raise ValueError(f"steps_per_epoch: {name} must be an int >= 1, got {v!r}")
  if batch_size > train_size:
    raise ValueError(f"steps_per_epoch: batch_size {batch_size} exceeds the training split "
                     f"({train_size} examples)")
  return int(train_size) // int(batch_size)


def batch_indices(seed: int, step: int, batch_size: int, n: int) -> np.ndarray:
  """Indices [batch_size] of the examples of `step`: epochs are seeded permutations of range(n),
  the remainder of each epoch is dropped (`steps_per_epoch`)."""
  per_epoch = steps_per_epoch(n, batch_size)
  epoch, pos = divmod(step, per_epoch)
  perm = _permutation(seed, epoch, n)
  return perm[pos * batch_size:(pos + 1) * batch_size]


@functools.lru_cache(maxsize=2)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The epoch's order (cached: a fast step must not wait for a 50,000-element shuffle)."""
  perm = np.random.default_rng([seed, epoch]).permutation(n)
  perm.flags.writeable = False
  return perm


# Train settings that do not change the result (free to differ when a run is resumed).
COSMETIC = ("log_every", "checkpoint_every")


def _settings(data: Dataset, model_cfg, train_cfg) -> dict[str, Any]:
  """The settings a checkpoint depends on (stored beside it, compared on resume)."""
  train_settings = {k: v for k, v in plain_dict(train_cfg).items() if k not in COSMETIC}
  return {"data": {"name": data.name, "n": len(data), "shape": list(data.images.shape[1:])},
          "model": plain_dict(model_cfg), "train": train_settings}


def plain_dict(cfg) -> dict[str, Any]:
  """A ConfigDict (or mapping) as a plain JSON-able dict (tuples become lists): the form that
  settings and stamps are stored and compared in."""
  d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
  return json.loads(json.dumps(d, default=list))


def _checkpoint_manager(workdir: str, keep: int = 2) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                               options=ocp.CheckpointManagerOptions(max_to_keep=keep))


def _snapshot_manager(workdir: str) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "snapshots")),
                               options=ocp.CheckpointManagerOptions(max_to_keep=None))


def snapshot_steps(workdir: str) -> list[int]:
  """The steps at which `snapshot_every` kept a snapshot under workdir/snapshots, ascending."""
  if not os.path.isdir(os.path.join(workdir, "snapshots")):
    return []
  manager = _snapshot_manager(workdir)
  try:
    return sorted(int(s) for s in manager.all_steps())
  finally:
    manager.close()


def load_snapshot(model_cfg, train_cfg, workdir: str, step: int) -> nnx.Module:
  """The model (train mode) as it was after `step` training steps, from the parameter and
  batch-statistics snapshot kept by `snapshot_every` (no optimizer state is kept)."""
  model = build_model(model_cfg, train_cfg.seed)
  model.train()
  _, params, rest = nnx.split(model, nnx.Param, ...)
  steps = snapshot_steps(workdir)
  if int(step) not in steps:
    raise ValueError(f"{workdir} has no snapshot of step {step}; it has {steps}")
  manager = _snapshot_manager(workdir)
  try:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"params": params, "rest": rest})
    got = manager.restore(int(step), args=ocp.args.StandardRestore(abstract))
  finally:
    manager.close()
  nnx.update(model, got["params"], got["rest"])
  return model

def _initial_state(model_cfg, cfg, workdir: str, init: nnx.Module | None = None):
  """(model in train mode, TrainState at step 0 or from the latest checkpoint, manager); at
  step 0 the weights and batch statistics are `init`'s when given."""
  model = build_model(model_cfg, cfg.seed)
  model.train()
  if init is not None:
    nnx.update(model, nnx.state(init))
  state = init_state(model, make_optimizer(cfg))
  manager = _checkpoint_manager(workdir)
  if manager.latest_step() is not None:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    state = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(abstract))
  return model, state, manager


def train(data: Dataset, model_cfg, train_cfg, workdir: str, *,
          on_step: Callable[[int], None] | None = None, soft_labels=None,
          upstream: dict | None = None, init: nnx.Module | None = None) -> nnx.Module:
  """Trains (or resumes training) a model on `data` and returns it.

  Args:
    data: the training split.
    model_cfg: model name and constructor arguments (ConfigDict).
    train_cfg: optimizer, schedule, steps, batch size, adversarial settings (ConfigDict).
    workdir: folder for `checkpoints/` and `settings.json`; resumed if they exist.
    on_step: called with the step number after each step (tests use it to simulate a kill).
    soft_labels: float32 [N, K] targets per training example (distillation), or None.
    upstream: what the run's data comes from beyond `data` (a distillation teacher's settings,
      the model that made adversarial training examples, the model it starts from), stored
      beside the checkpoint and compared on resume like the run's own settings.
    init: a model of the same architecture whose weights and batch statistics the run starts
      from (a fresh optimizer state), instead of the seeded initialisation.

  train_cfg.compute_dtype ("float32" default, or "bfloat16") is the compute dtype of the train
  step (mixed precision: parameters, optimizer state and batch statistics stay float32; the
  returned model computes in float32). train_cfg.guard (optional: every, examples, pgd,
  max_drop, seed) checks PGD accuracy on fixed training images during training and stops the
  run at a collapse (catastrophic overfitting; `advbound.training.guard`): the result is then
  the state of the last check that passed, also for later `train` and `load_model` calls.

  Returns:
    The trained model (train mode; use models.as_logits_fn for a pure eval-mode function).
  """
  cfg = train_cfg
  os.makedirs(workdir, exist_ok=True)
  settings = _settings(data, model_cfg, cfg)
  if upstream:
    settings["upstream"] = upstream
  if soft_labels is not None:
    soft_labels = np.asarray(soft_labels, np.float32)
    if soft_labels.shape != (len(data), data.num_classes):
      raise ValueError(f"soft_labels must have shape {(len(data), data.num_classes)}, got "
                       f"{soft_labels.shape}")
  settings_path = os.path.join(workdir, "settings.json")
  if os.path.exists(settings_path):
    with open(settings_path) as f:
      old = json.load(f)
    for key in COSMETIC:  # files written before these were left out of the comparison
      old.get("train", {}).pop(key, None)
    if old != settings:
      raise ValueError(f"{workdir} holds a run with other settings; use a new workdir or delete "
                       f"it. stored: {old}; requested: {settings}")
  else:
    io.write_json(settings_path, settings)

  model, state, manager = _initial_state(model_cfg, cfg, workdir, init)
  kept = _guard_kept(workdir, state)
  if kept is not None:  # an earlier attempt stopped at the overfitting guard: that is the result
    manager.close()
    nnx.update(model, kept.params, kept.rest)
    return model
  if int(state.step):
    logging.info("resumed %s from step %d", workdir, int(state.step))
  tcfg = Train.of(cfg)  # the optional settings' declared defaults filled
  computing = models.with_compute_dtype(model, tcfg.compute_dtype)
  graphdef = nnx.graphdef(computing)
  step_fn = make_train_step(graphdef, make_optimizer(cfg), cfg, data.bounds)
  guard = None
  if tcfg.guard is not None:
    eval_model = nnx.merge(*nnx.split(computing), copy=True)
    eval_model.eval()
    guard = guard_lib.Guard(cfg.guard, nnx.graphdef(eval_model), data.images, data.labels,
                            data.bounds, workdir, int(state.step))
  if sharding.is_sharded():
    # data parallel: replicated parameters and optimizer state, each batch split over the
    # devices (each device receives only its rows); jit inserts the gradient all-reduce
    state = sharding.replicate(state)
    split = cfg.batch_size % sharding.num_devices() == 0
    if not split:
      logging.warning("batch_size %d is not a multiple of the %d devices: every device computes "
                      "the whole batch (choose a multiple to split it)", cfg.batch_size,
                      sharding.num_devices())
    put = sharding.put_batch if split else sharding.replicate
    def gather(idx):
      batch = {"image": put(data.images[idx]), "label": put(data.labels[idx])}
      if soft_labels is not None:
        batch["soft"] = put(soft_labels[idx])
      return batch
  else:
    images, labels = jnp.asarray(data.images), jnp.asarray(data.labels)
    soft = None if soft_labels is None else jnp.asarray(soft_labels)
    gather = jax.jit(lambda idx: {"image": images[idx], "label": labels[idx],
                                  **({} if soft is None else {"soft": soft[idx]})})
  base_key = jax.random.fold_in(jax.random.key(cfg.seed), 1)

  start = int(state.step)
  every = tcfg.snapshot_every
  snapshots = _snapshot_manager(workdir) if every else None

  def snapshot(at: int) -> None:  # parameters and batch statistics only, every one kept
    if snapshots is not None and at not in snapshots.all_steps():
      snapshots.save(at, args=ocp.args.StandardSave({"params": state.params,
                                                     "rest": state.rest}))

  if start == 0:
    snapshot(0)
  pending: list[dict[str, jax.Array]] = []
  t_last, s_last = time.time(), start
  try:
    for step in probe.steps(range(start, cfg.num_steps),
                            f"train {os.path.basename(os.path.normpath(workdir))}"):
      if probe.active() and int(state.step) != step:  # steps a probe skipped: counted
        state = state.replace(step=jnp.full_like(state.step, step))
      batch = gather(batch_indices(cfg.seed, step, cfg.batch_size, len(data)))
      state, metrics = step_fn(state, batch,
                               sharding.replicate(jax.random.fold_in(base_key, step)))
      pending.append(metrics)
      done = step + 1
      if on_step is not None:
        on_step(done)
      is_last = done == cfg.num_steps
      if done % cfg.log_every == 0 or done % cfg.checkpoint_every == 0 or is_last:
        losses = np.asarray(jnp.stack([m["loss"] for m in pending]))
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
          raise FloatingPointError(
              f"non-finite loss {losses[bad[0]]} at step {done - len(losses) + bad[0] + 1} of "
              f"{workdir}; lower the learning rate (now {cfg.learning_rate}) or check the data")
        acc = float(np.mean(np.asarray(jnp.stack([m["accuracy"] for m in pending]))))
        now = time.time()
        rate = (done - s_last) * cfg.batch_size / max(now - t_last, 1e-9)
        eta = (cfg.num_steps - done) * cfg.batch_size / max(rate, 1e-9)
        logging.info("%s step %d/%d loss %.4f acc %.4f | %.0f examples/s | ETA %s",
                     os.path.basename(os.path.normpath(workdir)), done, cfg.num_steps,
                     float(losses.mean()), acc, rate, hms(eta))
        pending, t_last, s_last = [], now, done
        if done % cfg.checkpoint_every == 0 or is_last:
          manager.save(done, args=ocp.args.StandardSave(state))
      if every and probe.active() and is_last:  # the snapshots of the steps a probe skipped
        for at in range(every, done, every):
          snapshot(at)
      if every and (done % every == 0 or is_last):
        snapshot(done)
      if guard is not None and guard.due(done, is_last) and not guard.check(state, done):
        state = _guard_kept(workdir, state)
        break
  finally:
    if guard is not None:
      guard.close()
    # Let an in-flight async save finish even when the run stops with an exception.
    manager.wait_until_finished()
    manager.close()
    if snapshots is not None:
      snapshots.wait_until_finished()
      snapshots.close()
  nnx.update(model, state.params, state.rest)
  return model


def load_model(model_cfg, train_cfg, workdir: str) -> nnx.Module:
  """Builds the model of `model_cfg` and restores the latest checkpoint under `workdir`.

  Raises FileNotFoundError if there is none, and ValueError if the checkpoint did not finish
  `train_cfg.num_steps` steps.
  """
  model, state, manager = _initial_state(model_cfg, train_cfg, workdir)
  latest = manager.latest_step()
  manager.close()
  if latest is None:
    raise FileNotFoundError(f"no checkpoint under {os.path.join(workdir, 'checkpoints')}")
  kept = _guard_kept(workdir, state)
  if kept is not None:  # stopped early by the overfitting guard (guard.json says where)
    state = kept
  elif int(state.step) != train_cfg.num_steps:
    raise ValueError(f"the checkpoint under {workdir} is at step {int(state.step)}, not "
                     f"{train_cfg.num_steps}: training did not finish")
  nnx.update(model, state.params, state.rest)
  return model


def _guard_kept(workdir: str, state: TrainState) -> TrainState | None:
  """The state the overfitting guard kept if it stopped the run under `workdir`, else None."""
  record = guard_lib.read_record(workdir)
  if not record or record.get("stopped_at") is None:
    return None
  if record.get("kept_step") is None:
    raise ValueError(f"{guard_lib.record_path(workdir)} stopped the run at step "
                     f"{record['stopped_at']} but kept no state")
  return guard_lib.restore_kept(workdir, state, int(record["kept_step"]))


def hms(seconds: float) -> str:
  """seconds as H:MM:SS (for progress lines)."""
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
