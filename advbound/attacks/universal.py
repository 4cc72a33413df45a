"""Universal adversarial perturbations by Metzen et al.'s batch-sign iteration (ICCV 2017), made
untargeted for classification as in "Universality, Robustness, and Detectability of Adversarial
Perturbations under Adversarial Training" (appendix D):

  Xi_0 = 0,
  Xi_{n+1} = Clip_eps( Xi_n + alpha / K * sum_{k=1..K} sgn( grad^{D_k}(Xi_n) ) ),
  grad^{D}(Xi) = 1/m sum_{j in D} d/dx J(theta, x_j + Xi, y_j),

each D_k a mini-batch of m inputs drawn uniformly from the data (their setting: eps 10 and
alpha 2.5 on the 0-255 scale, m = 128, K = 10, 200 iterations). The perturbed inputs x + Xi are
clipped to the valid range before the model sees them (the paper does not say; an input outside
the pixel range is not an image).

The same iteration on a two-class detector with every label 0 ("clean") gives the study's
Figure 7, the perturbation that maximises the detector's probability of "adversarial".
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from advbound.attacks.pgd import ce_gradient
from advbound.models import as_pytree_fn
from advbound.runtime import checks


def universal_perturbation(logits_fn, key, x, y, *, epsilon, step_size, bounds,
                           batch_size: int = 128, batches_per_step: int = 10,
                           num_iterations: int = 200):
  """Metzen et al.'s untargeted universal perturbation of a data set.

  Args:
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    key: jax.random key drawing the mini-batches (with replacement across batches, without
      within one).
    x: float32 [N, *image_shape] inside bounds: the data the perturbation is made on.
    y: int32 [N]: their labels (true labels, or the model's predictions).
    epsilon: L-inf bound of the perturbation (units of bounds).
    step_size: alpha, the step of one iteration (each of the K sign terms moves alpha / K).
    bounds: (low, high).
    batch_size: m inputs per mini-batch (at most N).
    batches_per_step: K mini-batches per iteration.
    num_iterations: iterations.

  Returns:
    float32 [*image_shape]: the perturbation Xi, |Xi| <= epsilon.
  """
  low, high = checks.check_bounds(bounds)
  checks.check_images(x, bounds)
  checks.check_labels(y, np.shape(x)[0])
  checks.check_positive(epsilon, "epsilon", allow_zero=True)
  checks.check_positive(step_size, "step_size", allow_zero=True)
  batch_size = checks.check_count(batch_size, "batch_size", int(np.shape(x)[0]))
  checks.check_positive(batches_per_step, "batches_per_step", integer=True)
  checks.check_positive(num_iterations, "num_iterations", allow_zero=True, integer=True)
  return _universal(as_pytree_fn(logits_fn), key, jnp.asarray(x, jnp.float32),
                    jnp.asarray(y, jnp.int32), jnp.float32(epsilon), jnp.float32(step_size),
                    low, high, int(batch_size), int(batches_per_step), int(num_iterations))


@functools.partial(jax.jit, static_argnums=(6, 7, 8, 9, 10))
def _universal(logits_fn, key, x, y, epsilon, step_size, low, high, m, k, iterations):
  n = x.shape[0]

  def batch_sign(xi, batch_key):
    idx = jax.random.choice(batch_key, n, (m,), replace=False)
    xb = jnp.clip(x[idx] + xi, low, high)
    return jnp.sign(ce_gradient(logits_fn, xb, y[idx]).mean(axis=0))

  def step(xi, step_key):
    signs = jax.lax.map(lambda kk: batch_sign(xi, kk), jax.random.split(step_key, k))
    return jnp.clip(xi + step_size / k * signs.sum(axis=0), -epsilon, epsilon), None

  xi, _ = jax.lax.scan(step, jnp.zeros(x.shape[1:], jnp.float32),
                       jax.random.split(key, iterations))
  return xi


def accuracy_under(logits_fn, xi, x, y, *, bounds, batch_size: int = 500) -> float:
  """Accuracy on x [N, ...] with the perturbation xi [...] added (clipped to bounds)."""
  from advbound.analysis import evaluate  # pylint: disable=g-import-not-at-top
  low, high = checks.check_bounds(bounds)
  perturbed = np.clip(np.asarray(x, np.float32) + np.asarray(xi, np.float32), low, high)
  return evaluate.accuracy(logits_fn, perturbed, y, batch_size=batch_size)
