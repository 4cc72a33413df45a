"""The catastrophic-overfitting guard of fast adversarial training (Wong, Rice & Kolter, 2020).

FGSM training with a large step can "catastrophically overfit": within an epoch the model's
accuracy under PGD collapses to near 0 while its accuracy under FGSM rises. Wong et al. guard
against it by checking PGD accuracy on a training minibatch during training and keeping the
model from before the collapse. Here: every `guard.every` steps (and at the last step) the model
in eval mode is attacked by PGD (`guard.pgd`) on a fixed seeded draw of `guard.examples`
training images. A check whose PGD accuracy falls more than `guard.max_drop` below the best
check so far stops training; the run's result is then the state of the last check that passed.

Files under the run's workdir: `guard.json` (every check, and where the run stopped, if it
did; written atomically at each check) and `guard/` (an orbax checkpoint of the state at the
last check that passed).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from advbound.attacks.pgd import pgd
from advbound.runtime import io, sharding
from advbound.training import settings


def record_path(workdir: str) -> str:
  """Where the guard's record of the run under `workdir` lives."""
  return os.path.join(workdir, "guard.json")


def read_record(workdir: str) -> dict | None:
  """The guard's record of a run ({"history": [{"step", "clean_accuracy", "pgd_accuracy"}],
  "best_pgd_accuracy", "stopped_at", "kept_step"}), or None if the run has no guard."""
  path = record_path(workdir)
  return io.read_json(path) if os.path.exists(path) else None


def manager(workdir: str) -> ocp.CheckpointManager:
  """The orbax manager of `workdir/guard/`: the state of the last check that passed (one
  kept)."""
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "guard")),
                               options=ocp.CheckpointManagerOptions(max_to_keep=1))


def restore_kept(workdir: str, state: Any, step: int) -> Any:
  """The state (a tree shaped like `state`) the guard kept at `step`."""
  m = manager(workdir)
  try:
    if step not in m.all_steps():
      raise ValueError(f"{workdir}/guard holds no state of step {step} (it holds "
                       f"{sorted(m.all_steps())}): the guard's files are incomplete")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    return m.restore(step, args=ocp.args.StandardRestore(abstract))
  finally:
    m.close()


class Guard:
  """Runs the checks of one training run. `check(state, step)` returns whether it passed."""

  def __init__(self, cfg, graphdef: nnx.GraphDef, images: np.ndarray, labels: np.ndarray,
               bounds: tuple[float, float], workdir: str, start: int):
    """cfg: the `guard` section (read as `advbound.training.settings.Guard`); graphdef: the
    model in eval mode (in the training compute dtype); images / labels: the training split;
    start: the step the run resumes from (later checks of an earlier attempt are dropped, they
    are recomputed)."""
    cfg = settings.Guard.of(cfg)
    self.cfg, self.workdir = cfg, workdir
    rng = np.random.default_rng([int(cfg.seed), 7])
    idx = np.sort(rng.choice(len(labels), min(int(cfg.examples), len(labels)), replace=False))
    # replicated over the devices of the mesh like the training state (one device: as is)
    self.x, self.y = sharding.replicate((jnp.asarray(images[idx]), jnp.asarray(labels[idx])))
    self.key = jax.random.key(int(cfg.seed))
    self.manager = manager(workdir)
    old = read_record(workdir) or {}
    self.history = [h for h in old.get("history", []) if h["step"] <= start]
    p = cfg.pgd

    def accuracies(params, rest, x, y, key):
      def fn(z):
        return nnx.merge(graphdef, params, rest, copy=True)(z).astype(jnp.float32)
      clean = jnp.mean(jnp.argmax(fn(x), -1) == y)
      adv = pgd(fn, key, x, y, epsilon=p.epsilon, step_size=p.step_size,
                num_steps=p.num_steps, bounds=bounds, random_start=p.random_start)
      return clean, jnp.mean(jnp.argmax(fn(adv), -1) == y)

    self._accuracies = jax.jit(accuracies)

  @property
  def best(self) -> float:
    return max((h["pgd_accuracy"] for h in self.history), default=-1.0)

  def due(self, step: int, last: bool) -> bool:
    return step % int(self.cfg.every) == 0 or last

  def measure(self, state) -> tuple[float, float]:
    """(clean accuracy, PGD accuracy) of the model of TrainState `state` on the guard's
    images."""
    clean, robust = self._accuracies(state.params, state.rest, self.x, self.y, self.key)
    return float(clean), float(robust)

  def check(self, state, step: int) -> bool:
    clean, robust = self.measure(state)
    best = self.best
    passed = robust >= best - float(self.cfg.max_drop)
    self.history.append({"step": int(step), "clean_accuracy": clean, "pgd_accuracy": robust})
    logging.info("%s guard at step %d: PGD accuracy %.4f (best %.4f), clean %.4f on %d "
                 "training images%s", os.path.basename(os.path.normpath(self.workdir)), step,
                 robust, max(best, robust), clean, len(self.y),
                 "" if passed else " -- catastrophic overfitting: training stops")
    if passed:
      if int(step) in self.manager.all_steps():  # a check repeated after a resume
        self.manager.delete(int(step))
      self.manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
      self.manager.wait_until_finished()
      self._write(None, None)
    else:
      kept = self.manager.latest_step()
      self._write(int(step), None if kept is None else int(kept))
    return passed

  def _write(self, stopped_at, kept_step) -> None:
    io.write_json(record_path(self.workdir), {
        "history": self.history, "best_pgd_accuracy": self.best,
        "max_drop": float(self.cfg.max_drop), "stopped_at": stopped_at,
        "kept_step": kept_step})

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
