"""Training: a jit-once step for natural and PGD adversarial training, orbax checkpoints, resume.

A run is fully determined by its data, model and train settings: the batch at step s is drawn
from a permutation seeded by (seed, epoch), and the step key is fold_in(key, s). A run killed at
any point resumes from its last checkpoint and ends with the same parameters as an uninterrupted
run (tests/train_test.py checks this).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from advbound import data as data_lib
from advbound.analysis import evaluate
from advbound.runtime import io, sharding
from advbound import models
from advbound.training import guard as guard_lib
from advbound.attacks.pgd import pgd
from advbound.data import Dataset


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs. `rest` holds non-parameter variables (batch statistics)."""

  step: jax.Array  # int32 []
  params: nnx.State
  rest: nnx.State
  opt_state: optax.OptState


def _model_kwargs(model_cfg) -> dict[str, Any]:
  kwargs = dict(model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else model_cfg)
  return {k: v for k, v in kwargs.items() if k != "name"}


def build_model(model_cfg, seed: int) -> nnx.Module:
  """The model named by `model_cfg.name` with its other fields as arguments, initialised by seed."""
  return models.build(model_cfg.name, rngs=nnx.Rngs(seed), **_model_kwargs(model_cfg))


def make_schedule(cfg) -> optax.Schedule:
  """Learning-rate schedule: 'constant', 'piecewise' (factors at fractions of the run),
  'cosine' (with linear warm-up), 'onecycle' (cosine) or 'cyclic' (linear up to the peak at
  warmup_fraction, linear down to 0)."""
  lr, n = cfg.learning_rate, cfg.num_steps
  if cfg.schedule == "constant":
    return optax.constant_schedule(lr)
  if cfg.schedule == "piecewise":
    if len(cfg.schedule_boundaries) != len(cfg.schedule_factors):
      raise ValueError(f"schedule_boundaries {cfg.schedule_boundaries} and schedule_factors "
                       f"{cfg.schedule_factors} differ in length")
    scales, prev = {}, 1.0
    for b, f in zip(cfg.schedule_boundaries, cfg.schedule_factors):
      scales[int(round(b * n))] = f / prev
      prev = f
    return optax.piecewise_constant_schedule(lr, scales)
  if cfg.schedule == "cosine":
    warmup = int(round(cfg.warmup_fraction * n))
    return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 1), n)
  if cfg.schedule == "onecycle":
    return optax.cosine_onecycle_schedule(n, lr, pct_start=max(cfg.warmup_fraction, 1e-3))
  if cfg.schedule == "cyclic":
    # Linear from 0 up to lr at warmup_fraction of the run, then linear down to 0 at its end
    # (Wong et al.'s cyclic schedule; Page's ResNet-9 schedule has the same shape).
    peak = min(max(int(round(cfg.warmup_fraction * n)), 1), n - 1) if n > 1 else 1
    return optax.join_schedules([optax.linear_schedule(0.0, lr, peak),
                                 optax.linear_schedule(lr, 0.0, max(n - peak, 1))], [peak])
  raise ValueError(f"unknown schedule {cfg.schedule!r}; expected constant, piecewise, cosine, "
                   "onecycle, cyclic")


def make_optimizer(cfg) -> optax.GradientTransformation:
  """'adam' or 'sgd' (momentum, Nesterov); weight decay adds wd * w to the kernels' gradient."""
  schedule = make_schedule(cfg)
  if cfg.optimizer == "adam":
    opt = optax.adam(schedule)
  elif cfg.optimizer == "sgd":
    opt = optax.sgd(schedule, momentum=cfg.momentum or None, nesterov=cfg.nesterov)
  else:
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; expected 'adam' or 'sgd'")
  if cfg.weight_decay:
    # On conv and dense kernels only (rank >= 2), as in Madry et al.'s code; not on biases or
    # batch-norm scales and offsets.
    kernels = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
    opt = optax.chain(optax.add_decayed_weights(cfg.weight_decay, mask=kernels), opt)
  return opt


def augment(key: jax.Array, x: jax.Array, kind: str, cutout: int = 0) -> jax.Array:
  """Data augmentation of x [N, H, W, C]: 'none', or 'crop_flip' (pad 4 by edge reflection,
  random 32x32 crop, random horizontal flip; the CIFAR-10 recipe). `cutout` > 0 then sets a
  random cutout x cutout square of each image (its centre uniform over the image, clipped at
  the edges) to the image's mean (DeVries & Taylor's cutout; Page's ResNet-9 recipe uses 8)."""
  if kind not in ("none", "crop_flip"):
    raise ValueError(f"unknown augmentation {kind!r}; expected 'none' or 'crop_flip'")
  if kind == "crop_flip":
    x = _crop_flip(*jax.random.split(key), x)
  return _cutout(jax.random.fold_in(key, 2), x, int(cutout)) if cutout else x


def _cutout(key: jax.Array, x: jax.Array, size: int) -> jax.Array:
  """x [N, H, W, C] with one size x size square per image (centre uniform) set to its mean.

  The mean, not zero: the models here standardize each image, and the inputs live on the data
  set's own scale (0 is black on [0, 255] but not on every scale)."""
  n, h, w, _ = x.shape
  centres = jax.random.randint(key, (n, 2), 0, jnp.array([h, w]))
  rows, cols = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
  top, left = (centres - size // 2).T[:, :, None, None]  # each [N, 1, 1]
  inside = ((rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size))
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return jnp.where(inside[..., None], mean, x)


def _crop_flip(k_crop: jax.Array, k_flip: jax.Array, x: jax.Array) -> jax.Array:
  n, h, w, _ = x.shape
  padded = jnp.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
  offsets = jax.random.randint(k_crop, (n, 2), 0, 9)

  def crop(img, off):
    return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))

  x = jax.vmap(crop)(padded, offsets)
  flip = jax.random.bernoulli(k_flip, 0.5, (n, 1, 1, 1))
  return jnp.where(flip, x[:, :, ::-1], x)


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, cfg,
                    bounds: tuple[float, float]) -> Callable:
  """Returns the jitted `step(state, batch, key) -> (state, metrics)`.

  batch: {"image": float32 [B, *image_shape], "label": int32 [B]}, and "soft": float32 [B, K]
  soft labels when distilling (the loss is then the cross-entropy with them). The loss is taken
  on logits / cfg.temperature (default 1; defensive distillation trains teacher and student at
  T and deploys the student at 1: `as_logits_fn` returns the raw logits). With cfg.adversarial the
  loss is taken on PGD examples (cfg.attack: epsilon, step_size, num_steps, random_start, and
  epsilon_warmup_fraction, a linear ramp of epsilon from 0 over that fraction of the run), made
  with the current weights and batch statistics of the batch (not written back), as in Madry
  et al.'s code. attack.labels "predicted" (default "true") makes the examples against the
  model's own predictions instead of the true labels ("label leaking" avoided, Kurakin et al.);
  the loss is still taken on the true labels. cfg.label_smoothing (default 0) smooths the
  integer labels' one-hot targets; cfg.cutout (default 0) adds cutout to the augmentation.
  `graphdef` fixes the compute dtype: one from `models.with_compute_dtype` trains the float32
  parameters in bfloat16 (the attack of adversarial training too); the loss is float32.
  metrics: loss and accuracy on the examples trained on (float32 []).
  """
  attack = cfg.attack
  temperature = float(cfg.get("temperature", 1.0))
  smoothing = float(cfg.get("label_smoothing", 0.0))

  def step(state: TrainState, batch, key):
    k_aug, k_attack = jax.random.split(key)
    x = augment(k_aug, batch["image"], cfg.augment, cfg.get("cutout", 0))
    y = batch["label"]
    if cfg.adversarial:
      def attack_logits(z):
        return nnx.merge(graphdef, state.params, state.rest, copy=True)(z).astype(jnp.float32)
      epsilon = attack.epsilon
      if attack.epsilon_warmup_fraction > 0:
        ramp = (state.step + 1) / (attack.epsilon_warmup_fraction * cfg.num_steps)
        epsilon = attack.epsilon * jnp.minimum(1.0, ramp.astype(jnp.float32))
      y_attack = y
      if attack.get("labels", "true") == "predicted":
        y_attack = jnp.argmax(jax.lax.stop_gradient(attack_logits(x)), axis=-1)
      x = jax.lax.stop_gradient(pgd(
          attack_logits, k_attack, x, y_attack, epsilon=epsilon, step_size=attack.step_size,
          num_steps=attack.num_steps, bounds=bounds, random_start=attack.random_start))

    def loss_fn(params, rest):
      model = nnx.merge(graphdef, params, rest, copy=True)
      logits = model(x).astype(jnp.float32)  # bfloat16 under mixed precision
      scaled = logits / temperature
      if "soft" in batch:
        loss = optax.softmax_cross_entropy(scaled, batch["soft"]).mean()
      elif smoothing:
        targets = optax.smooth_labels(jax.nn.one_hot(y, logits.shape[-1]), smoothing)
        loss = optax.softmax_cross_entropy(scaled, targets).mean()
      else:
        loss = optax.softmax_cross_entropy_with_integer_labels(scaled, y).mean()
      return loss, (logits, nnx.state(model, nnx.Not(nnx.Param)))

    (loss, (logits, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.rest)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}
    return TrainState(state.step + 1, params, rest, opt_state), metrics

  # One compilation per run: a retrace (changed shapes or dtypes) is a bug, so it fails loudly.
  # (chex.assert_max_traces keys on the definition site, so it would count every run of this
  # factory together; this counter belongs to one returned step function.)
  traces = 0

  def traced_once(*args):
    nonlocal traces
    traces += 1
    if traces > 1:
      raise AssertionError("the train step was traced > 1 times: batch shapes or dtypes changed "
                           "between steps")
    return step(*args)

  return jax.jit(traced_once, donate_argnums=0)


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
_COSMETIC = ("log_every", "checkpoint_every")


def _settings(data: Dataset, model_cfg, train_cfg) -> dict[str, Any]:
  """The settings a checkpoint depends on (stored beside it, compared on resume)."""
  train_settings = {k: v for k, v in _to_dict(train_cfg).items() if k not in _COSMETIC}
  return {"data": {"name": data.name, "n": len(data), "shape": list(data.images.shape[1:])},
          "model": _to_dict(model_cfg), "train": train_settings}


def _to_dict(cfg) -> dict[str, Any]:
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


def init_state(model: nnx.Module, tx: optax.GradientTransformation) -> TrainState:
  """A step-0 TrainState of `model`'s current parameters and batch statistics, with `tx`'s
  initial optimizer state."""
  _, params, rest = nnx.split(model, nnx.Param, ...)
  return TrainState(jnp.zeros((), jnp.int32), params, rest, tx.init(params))


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
  run at a collapse (catastrophic overfitting; `advbound.training.guard`): the result is then the state
  of the last check that passed, also for later `train` and `load_model` calls.

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
    for key in _COSMETIC:  # files written before these were left out of the comparison
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
  computing = models.with_compute_dtype(model, cfg.get("compute_dtype", "float32"))
  graphdef = nnx.graphdef(computing)
  step_fn = make_train_step(graphdef, make_optimizer(cfg), cfg, data.bounds)
  guard = None
  if cfg.get("guard"):
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
  every = cfg.get("snapshot_every")
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
    for step in range(start, cfg.num_steps):
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


def variant_names(config, variants=None) -> list[str]:
  """The model variants of `config.models` to run, natural first; `variants` selects some of
  them (ValueError naming any the config lacks)."""
  names = sorted(config.models, key=lambda v: (v != "natural", v))
  if not variants:
    return names
  unknown = [v for v in variants if v not in config.models]
  if unknown:
    raise ValueError(f"unknown model variant(s) {unknown}; the config has {names}")
  return [v for v in names if v in variants]


def variant_model(config, variant: str):
  """The architecture of model variant `variant`: its own `models.<variant>.model` section if it
  has one (e.g. a fast natural recipe on ResNet-9 beside a robust PreAct ResNet-18), else the
  config's `model`."""
  own = config.models[variant].get("model")
  return own if own else config.model


def model_stamp(config, variant: str) -> dict:
  """What determines a trained variant (data, architecture, training settings, and its
  teacher's when it is distilled), for the stamps of artifacts computed from the model: a
  retrained model invalidates them."""
  out = {"data": _to_dict(config.data), "model": _to_dict(variant_model(config, variant)),
         "train": {k: v for k, v in _to_dict(config.models[variant]).items()
                   if k not in _COSMETIC}}
  for key in _UPSTREAM:
    other = config.models[variant].get(key)
    if other:
      out[key] = model_stamp(config, other)
  return out


# settings naming another variant a variant is made from
_UPSTREAM = ("distill_from", "augment_from", "init_from")


def train_variant(config, variant: str, data: Dataset, workdir: str, *,
                  _students: tuple[str, ...] = ()) -> nnx.Module:
  """Trains (or loads) model variant `variant` under `workdir/models/<variant>`.

  Three settings make a variant depend on another one, which is trained or loaded first:
  - `distill_from: <variant>` (defensive distillation, Papernot et al.): the variant learns from
    that teacher's soft labels softmax(Z_teacher(x) / T) on the training images, T = its
    `temperature`.
  - `augment_from: <variant>` (adversarial training as Cao & Gong's baseline, after Goodfellow
    et al.): DeepFool examples (L2, overshoot 0.02, 50 iterations) of every training image
    against that variant's model are made once (resumable, stored in
    `models/<variant>/deepfool_train.npz`) and the variant trains on the clean images and
    these examples together (2N examples, true labels, shuffled together). `augment_examples:
    M` makes examples of the first M training images only (N + M examples; a cheaper run).
  - `init_from: <variant>`: training starts from that variant's trained weights and batch
    statistics (a fresh optimizer), e.g. adversarial training after natural training.
  The checkpoint records the upstream settings, so a changed teacher or source retrains.
  """
  vcfg = config.models[variant]
  soft, upstream, init = None, {}, None
  for key in _UPSTREAM:
    other = vcfg.get(key)
    if not other:
      continue
    if other not in config.models:
      raise ValueError(f"models.{variant}.{key}: unknown variant {other!r}")
    if other == variant or other in _students:
      raise ValueError(f"models.{variant}.{key}: {other!r} makes a cycle of variants")
    source = train_variant(config, other, data, workdir, _students=_students + (variant,))
    fn = models.as_logits_fn(source)
    upstream[key] = model_stamp(config, other)
    if key == "init_from":
      init = source
    elif key == "distill_from":
      z = evaluate.logits(fn, data.images)
      soft = np.asarray(jax.nn.softmax(z / float(vcfg.get("temperature", 1.0)), axis=-1))
    else:
      upstream["augment_attack"] = dict(_AUGMENT_DEEPFOOL)
      count = vcfg.get("augment_examples")
      if count is not None:
        upstream["augment_examples"] = int(count)
      data = _with_deepfool_examples(fn, data, os.path.join(workdir, "models", variant),
                                     json.dumps(upstream, sort_keys=True, default=str),
                                     count=count)
  return train(data, variant_model(config, variant), vcfg,
               os.path.join(workdir, "models", variant),
               soft_labels=soft, upstream=upstream or None, init=init)


_AUGMENT_DEEPFOOL = {"norm": "l2", "overshoot": 0.02, "max_iterations": 50}


def _with_deepfool_examples(fn, data: Dataset, folder: str, stamp: str, *,
                            count: int | None = None) -> Dataset:
  """data plus one DeepFool example (same label) of each of its first `count` images (None:
  all), computed once in resumable parts."""
  from advbound.attacks import deepfool  # pylint: disable=g-import-not-at-top
  n = len(data) if count is None else min(int(count), len(data))
  path = os.path.join(folder, "deepfool_train.npz")
  cached = io.read_npz_if_current(path, stamp, fields=("x",))
  if cached is None:
    def compute(lo, hi):
      r = deepfool(fn, data.images[lo:hi], data.labels[lo:hi], bounds=data.bounds,
                   batch_size=hi - lo, **_AUGMENT_DEEPFOOL)
      return {"x": np.asarray(r.adversarial, np.float32), "success": np.asarray(r.success)}
    cached = io.compute_npz_in_parts(path, stamp, n, 500, compute)
    logging.info("DeepFool training examples: %d of %d successful",
                 int(np.sum(cached["success"])), n)
  return dataclasses.replace(data, images=np.concatenate([data.images, cached["x"]]),
                             labels=np.concatenate([data.labels, data.labels[:n]]))


def load_splits(data_cfg, splits) -> list[Dataset]:
  """The requested splits of the data set that `data_cfg` (name, source, path, seed) selects."""
  out = [data_lib.load(data_cfg.name, source=data_cfg.source, split=split,
                       path=data_cfg.path or None, seed=data_cfg.seed,
                       data_dir=data_cfg.get("data_dir")) for split in splits]
  logging.info("data %s (%s): %s, bounds %s", data_cfg.name, data_cfg.source,
               ", ".join(f"{len(d)} {d.split}" for d in out), out[0].bounds)
  return out


def train_and_evaluate(config, workdir: str, *,
                       variants: tuple[str, ...] | None = None) -> dict[str, dict[str, float]]:
  """Trains every model variant of `config.models` and evaluates it on the test split.

  Each variant trains under `workdir/models/<variant>/` (resuming if interrupted); its test
  accuracy, clean and under `config.eval.pgd`, is written atomically to
  `workdir/models/<variant>/metrics.json` and returned as {variant: metrics}. `variants`
  restricts the run to some of the variants (default: all, natural first).
  """
  names = variant_names(config, variants)
  train_data, test_data = load_splits(config.data, ("train", "test"))
  results = {}
  for variant in names:
    vcfg = config.models[variant]
    vdir = os.path.join(workdir, "models", variant)
    t0 = time.time()
    model = train_variant(config, variant, train_data, workdir)
    train_seconds = time.time() - t0
    ecfg = config.eval
    logits_fn = models.as_logits_fn(model, ecfg.get("compute_dtype", "float32"))
    n_pgd = min(ecfg.pgd_examples, len(test_data)) if ecfg.pgd_examples else len(test_data)
    t0 = time.time()
    correct = evaluate.predict(logits_fn, test_data.images, batch_size=ecfg.batch_size,
                               desc="accuracy") == test_data.labels
    metrics = {
        "test_accuracy": float(correct.mean()),
        "test_examples": len(test_data),
        "pgd_accuracy": evaluate.pgd_accuracy(
            logits_fn, jax.random.key(ecfg.seed), test_data.images[:n_pgd],
            test_data.labels[:n_pgd], bounds=test_data.bounds, epsilon=ecfg.pgd.epsilon,
            step_size=ecfg.pgd.step_size, num_steps=ecfg.pgd.num_steps,
            random_start=ecfg.pgd.random_start, batch_size=ecfg.batch_size),
        "pgd_examples": n_pgd,
        # clean accuracy on the same first pgd_examples images, for a like-for-like comparison
        "subset_accuracy": float(correct[:n_pgd].mean()),
        "pgd": _to_dict(ecfg.pgd),
        "train_steps": vcfg.num_steps,
        "train_seconds_this_run": train_seconds,
        "eval_seconds": time.time() - t0,
        "eval_compute_dtype": ecfg.get("compute_dtype", "float32"),
    }
    record = guard_lib.read_record(vdir)
    if record is not None:
      metrics["guard"] = {k: record[k] for k in ("stopped_at", "kept_step",
                                                 "best_pgd_accuracy")}
      metrics["guard"]["checks"] = len(record["history"])
    io.write_json(os.path.join(vdir, "metrics.json"), metrics)
    logging.info("%s: test accuracy %.4f (%d images); on the first %d: clean %.4f, PGD %.4f "
                 "(eps %g, %d steps of %g)", variant, metrics["test_accuracy"], len(test_data),
                 n_pgd, metrics["subset_accuracy"], metrics["pgd_accuracy"], ecfg.pgd.epsilon,
                 ecfg.pgd.num_steps, ecfg.pgd.step_size)
    results[variant] = metrics
  return results
