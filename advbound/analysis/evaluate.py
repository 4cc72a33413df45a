"""Accuracy of a logits_fn on clean and PGD-attacked inputs, in fixed-size jitted chunks."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from advbound.attacks.pgd import pgd
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks, sharding


@jax.jit
def _logits(logits_fn, x):
  return logits_fn(x)


@jax.jit
def _predict(logits_fn, x):
  logits = logits_fn(x)
  return jnp.argmax(logits, -1), jnp.all(jnp.isfinite(logits), axis=-1)


def logits(logits_fn, x, *, batch_size: int = 500) -> np.ndarray:
  """float32 [N, K] logits of x [N, *image_shape], in compiled chunks; raises on NaN/inf."""
  fn = as_pytree_fn(logits_fn)
  out = batching.map_chunks(functools.partial(_logits, fn), x, chunk_size=batch_size)
  if not np.all(np.isfinite(out)):
    raise FloatingPointError("logits_fn returned NaN or inf logits")
  return out.astype(np.float32)


def predict(logits_fn, x, *, batch_size: int = 500, desc: str | None = None) -> np.ndarray:
  """Predicted classes int32 [N] of x [N, *image_shape]; raises on NaN/inf logits."""
  fn = as_pytree_fn(logits_fn)
  labels, finite = batching.map_chunks(functools.partial(_predict, fn), x, chunk_size=batch_size,
                                       desc=desc)
  if not finite.all():
    raise FloatingPointError(f"logits_fn returned NaN or inf for {int((~finite).sum())} of "
                             f"{len(finite)} inputs (first at index {int(np.argmin(finite))})")
  return labels.astype(np.int32)


def accuracy(logits_fn, x, y, *, batch_size: int = 500) -> float:
  """Fraction of x [N, ...] classified as y [N]."""
  checks.check_labels(y, np.shape(x)[0])
  return float(np.mean(predict(logits_fn, x, batch_size=batch_size, desc="accuracy")
                       == np.asarray(y)))


def pgd_accuracy(logits_fn, key, x, y, *, bounds, epsilon, step_size, num_steps,
                 random_start=True, batch_size: int = 500) -> float:
  """Fraction of x [N, ...] still classified as y [N] after untargeted L-inf PGD."""
  checks.check_labels(y, np.shape(x)[0])
  fn = as_pytree_fn(logits_fn)

  def attack_chunk(xc, yc, first_index):
    first = int(sharding.to_host(first_index)[0])
    adv = pgd(fn, jax.random.fold_in(key, first), xc, yc, epsilon=epsilon,
              step_size=step_size, num_steps=num_steps, bounds=bounds, random_start=random_start)
    return _predict(fn, adv)

  labels, finite = batching.map_chunks(attack_chunk, x, y, np.arange(len(y)),
                                       chunk_size=batch_size, desc="PGD accuracy")
  if not finite.all():
    raise FloatingPointError("logits_fn returned NaN or inf on PGD examples")
  return float(np.mean(labels == np.asarray(y)))
