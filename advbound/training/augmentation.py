"""Data augmentation inside the jitted train step: crop-and-flip and cutout of an image batch
x float32 [N, H, W, C], drawn from an explicit PRNG key (the step's key, so a resumed run draws
the same augmentations)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
