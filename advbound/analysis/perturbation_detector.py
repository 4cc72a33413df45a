"""Metzen et al.'s detector of adversarial perturbations, trained on the inputs themselves (the
training-dynamics study's detectability, its Figures 6-7): a MetzenDetector learns to tell clean
inputs (label 0) from adversarial ones (label 1).

Training: Adam on the cross-entropy of B clean + B adversarial inputs per step, drawn at random
(the whole run one compiled `lax.fori_loop`); inputs are mapped from `bounds` to [-0.5, 0.5]
inside the detector's function. The learning rate, steps and batch size are the caller's (the
paper leaves them to Metzen et al.'s code).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from advbound.analysis import evaluate
from advbound.models import StaticPartial
from advbound.models.metzen_detector import MetzenDetector
from advbound.runtime import checks


def _scaled(x, low, high):
  return (x - low) / (high - low) - 0.5


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 8, 9))
def _fit(graphdef, params, clean, adversarial, steps, batch, learning_rate, key, low, high):
  tx = optax.adam(learning_rate)
  labels = jnp.concatenate([jnp.zeros(batch, jnp.int32), jnp.ones(batch, jnp.int32)])

  def loss(p, x):
    logits = nnx.merge(graphdef, p, copy=True)(_scaled(x, low, high))
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  def step(i, carry):
    p, opt = carry
    kc, ka = jax.random.split(jax.random.fold_in(key, i))
    x = jnp.concatenate([clean[jax.random.randint(kc, (batch,), 0, clean.shape[0])],
                         adversarial[jax.random.randint(ka, (batch,), 0, adversarial.shape[0])]])
    updates, opt = tx.update(jax.grad(loss)(p, x), opt, p)
    return optax.apply_updates(p, updates), opt

  params, _ = jax.lax.fori_loop(0, steps, step, (params, tx.init(params)))
  return params


def train(key, clean, adversarial, *, bounds, steps: int = 2000, batch_size: int = 64,
          learning_rate: float = 1e-4, features: tuple[int, int, int] = (96, 192, 192)):
  """Trains a MetzenDetector; returns its pure `logits_fn(x [N, H, W, C]) -> [N, 2]` on inputs
  in `bounds` (class 1: adversarial).

  Args:
    key: jax.random key (initialisation and batches).
    clean, adversarial: float32 [N, H, W, C] and [M, H, W, C] inside bounds (M, N >= 1).
    features: the detector's convolution widths (MetzenDetector).
  """
  low, high = checks.check_bounds(bounds)
  clean, adversarial = np.asarray(clean, np.float32), np.asarray(adversarial, np.float32)
  if clean.ndim != 4 or clean.shape[1:] != adversarial.shape[1:]:
    raise ValueError(f"clean {clean.shape} and adversarial {adversarial.shape} must be image "
                     "batches [N, H, W, C] of one shape")
  if not len(clean) or not len(adversarial):
    raise ValueError("the detector needs at least one clean and one adversarial input")
  checks.check_positive(steps, "steps", integer=True)
  checks.check_positive(batch_size, "batch_size", integer=True)
  checks.check_positive(learning_rate, "learning_rate")
  init_key, fit_key = jax.random.split(key)
  model = MetzenDetector(in_channels=clean.shape[-1], features=tuple(features),
                         rngs=nnx.Rngs(params=init_key))
  graphdef, params = nnx.split(model)
  params = _fit(graphdef, params, jnp.asarray(clean), jnp.asarray(adversarial), int(steps),
                int(batch_size), float(learning_rate), fit_key, low, high)
  # compared by value in jit's cache key: every detector of this architecture shares programs
  return jax.tree_util.Partial(StaticPartial(_apply, (graphdef, float(low), float(high))),
                               params)


def _apply(graphdef, low, high, params, x):
  return nnx.merge(graphdef, params, copy=True)(_scaled(x, low, high))


def detectability(detector_fn, clean, adversarial, *, batch_size: int = 500) -> dict:
  """The detector's accuracy on equal parts clean and adversarial inputs: the mean of its true
  negative rate (clean called clean) and true positive rate (adversarial called adversarial).
  Returns {"accuracy", "true_negative_rate", "true_positive_rate"}."""
  tnr = float(np.mean(evaluate.predict(detector_fn, clean, batch_size=batch_size) == 0))
  tpr = float(np.mean(evaluate.predict(detector_fn, adversarial, batch_size=batch_size) == 1))
  return dict(accuracy=(tnr + tpr) / 2, true_negative_rate=tnr, true_positive_rate=tpr)
