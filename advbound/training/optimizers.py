"""The optimizer of a training run: learning-rate schedules and the optax optimizer they drive.

`advbound.training.loop` builds a run's optimizer with `make_optimizer(train_cfg)` and the step
of `advbound.training.step` applies it; its state is a tree shaped like the model's parameters.
"""

from __future__ import annotations

import jax
import optax


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
