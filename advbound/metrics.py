"""Distortion norms of perturbations, per example.

Each takes `delta` [N, *image_shape] (adversarial minus original) and returns float32 [N].
RMS is the paper's distortion measure: L2 / sqrt(number of pixel values).
"""

from __future__ import annotations

import jax.numpy as jnp


def _flat(delta):
  delta = jnp.asarray(delta, jnp.float32)
  return delta.reshape(delta.shape[0], -1)


def l2(delta):
  """Euclidean norm per example, float32 [N]."""
  return jnp.sqrt(jnp.sum(jnp.square(_flat(delta)), axis=1))


def rms(delta):
  """Root-mean-square per example (L2 / sqrt(D)), float32 [N]."""
  return jnp.sqrt(jnp.mean(jnp.square(_flat(delta)), axis=1))


def linf(delta):
  """Largest absolute change per example, float32 [N]."""
  return jnp.max(jnp.abs(_flat(delta)), axis=1)


def l0(delta, *, tol: float = 0.0, pixels: bool = False):
  """Number of changed values (|change| > tol) per example, float32 [N]. With `pixels`, the
  number of changed pixels of [N, H, W, C] (a pixel counts once whichever of its channels
  changed: Carlini & Wagner's and Cao & Gong's L0 on colour images)."""
  changed = jnp.abs(jnp.asarray(delta, jnp.float32)) > tol
  if pixels:
    if changed.ndim != 4:
      raise ValueError(f"pixels=True needs [N, H, W, C] perturbations, got shape {changed.shape}")
    changed = jnp.any(changed, axis=-1)
  return jnp.sum(changed.reshape(changed.shape[0], -1), axis=1).astype(jnp.float32)


def distortions(x, x_adv) -> dict[str, jnp.ndarray]:
  """{"rms", "l2", "linf", "l0"} of x_adv - x, each float32 [N]."""
  delta = jnp.asarray(x_adv, jnp.float32) - jnp.asarray(x, jnp.float32)
  return {"rms": rms(delta), "l2": l2(delta), "linf": linf(delta), "l0": l0(delta)}
