"""An adaptive attack on region classification: PGD on the loss averaged over the defence's noise.

Cao & Gong's region classifier labels x by the majority vote of the point classifier on points
drawn uniformly from the L-inf cube of half-width r around x (clipped to the valid range). An
attacker who knows the defence can optimise through it with expectation over transformation
(Athalye, Carlini & Wagner 2018; Athalye et al. 2018): each step follows the sign of the
gradient of the cross-entropy averaged over `num_samples` fresh draws from the cube,

  x_{k+1} = clip_{x, eps}(x_k + alpha * sign(grad_x mean_j CE(f(clip(x_k + u_j)), y))),
  u_j ~ U[-r, r]^D,

(down the loss of the target when targeted), then the result is judged by the region
classifier itself with `vote_samples` votes (success: the region label is not y, or is the
target). Noise is drawn from fold_in(fold_in(fold_in(key, step), image index), sample), so an
image's attack does not depend on the chunking or on the other images.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from advbound import region
from advbound.attacks.result import AttackResult, make_result
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks


@functools.partial(jax.jit, static_argnums=(8, 9, 10, 11, 12))
def _eot(logits_fn, key, x, y, ids, epsilon, step_size, radius, num_steps, num_samples, low,
         high, targeted):
  """EOT sign-gradient steps for a chunk: x [n, *S], y int32 [n], ids int32 [n] -> [n, *S]."""
  shape = x.shape[1:]
  lo, hi = jnp.maximum(x - epsilon, low), jnp.minimum(x + epsilon, high)
  sign = -1.0 if targeted else 1.0
  samples = jnp.arange(num_samples)

  def loss(z, step_key):
    u = region.draw_noise(step_key, ids, samples, shape)  # [n, s, *S]
    probes = jnp.clip(z[:, None] + radius * u, low, high).reshape((-1,) + shape)
    logp = jax.nn.log_softmax(logits_fn(probes)).reshape(z.shape[0], num_samples, -1)
    picked = jnp.take_along_axis(logp, y[:, None, None], axis=-1)[..., 0]  # [n, s]
    return -jnp.sum(jnp.mean(picked, axis=1))  # summed over images: per-image gradients

  def body(step, z):
    g = jax.grad(loss)(z, jax.random.fold_in(key, step))
    return jnp.clip(z + sign * step_size * jnp.sign(g), lo, hi)

  return jax.lax.fori_loop(0, num_steps, body, x)


def eot_pgd(logits_fn, key, x, y, *, epsilon, step_size, num_steps, radius, num_samples,
            bounds, targeted=False, vote_samples=1000, batch_size: int | None = None
            ) -> AttackResult:
  """L-inf PGD through region classification's noise (expectation over transformation).

  Args:
    logits_fn: the point classifier, pure [B, *S] -> logits [B, K].
    key: jax.random key; split into the attack's noise and the judging votes' noise.
    x: float32 [N, *S] inside bounds.
    y: int32 [N]: true labels (untargeted) or targets (targeted).
    epsilon: L-inf budget around x (>= 0).
    step_size: sign-gradient step (>= 0); num_steps: iterations (>= 0).
    radius: the region classifier's cube half-width r (>= 0; 0 is plain BIM on the point
      classifier).
    num_samples: cube samples averaged per step (>= 1).
    bounds: (low, high).
    targeted: descend the target's loss instead of ascending the true label's.
    vote_samples: samples of the region classifier that judges success (Cao & Gong: 1,000).
    batch_size: images per compiled call (the model sees batch_size * num_samples inputs per
      step); default all.

  Returns:
    AttackResult: the final iterate of every image (within epsilon of x, in bounds), success
    as judged by the region classifier of radius `radius` (ties to the lowest class).
  """
  low, high, n = checks.check_attack_inputs(x, y, bounds, batch_size=batch_size)
  checks.check_positive(epsilon, "epsilon", allow_zero=True)
  checks.check_positive(step_size, "step_size", allow_zero=True)
  checks.check_positive(num_steps, "num_steps", allow_zero=True, integer=True)
  checks.check_positive(radius, "radius", allow_zero=True)
  checks.check_positive(num_samples, "num_samples", integer=True)
  checks.check_positive(vote_samples, "vote_samples", integer=True)
  fn = as_pytree_fn(logits_fn)
  attack_key, vote_key = jax.random.split(key)
  x = np.asarray(x, np.float32)
  y = np.asarray(y, np.int32)

  def attack_chunk(xc, yc, ids):
    return _eot(fn, attack_key, xc, yc, ids, jnp.float32(epsilon), jnp.float32(step_size),
                jnp.float32(radius), int(num_steps), int(num_samples), low, high,
                bool(targeted))

  adv = batching.map_chunks(attack_chunk, x, y, np.arange(n, dtype=np.int32),
                            chunk_size=batch_size or n, desc="EOT-PGD")
  labels, _ = region.classify(fn, vote_key, adv, radius=radius, num_samples=vote_samples,
                              bounds=bounds)
  labels = np.asarray(labels)
  success = labels == y if targeted else labels != y
  return make_result(jnp.asarray(x), jnp.asarray(adv), jnp.asarray(success))
