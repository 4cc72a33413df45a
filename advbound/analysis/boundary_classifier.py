"""He et al.'s detector of adversarial inputs from their decision boundary information (section 5).

Features of one input: its distances along the M directions, sorted, with "no boundary" replaced
by `none_value` (the released code stored the pixel maximum) and normalized as
(d - offset) / scale (CIFAR-10: (d - 16) / 127.5), plus its top-1/2/3 adjacent-class purity.

Training: Adam (lr 1e-3), each step B benign and B adversarial inputs drawn at random from those
that count (benign: the base model classifies it correctly; adversarial: the attack succeeded).
The whole run is one compiled `lax.fori_loop`. Evaluation: false positive rate on benign inputs,
false negative rate on each attack's, and the worst-case accuracy of He et al.'s Table 3:
1 - max(FP, FN) (all-benign test data if FP is higher, all-adversarial if FN is higher).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from advbound import boundary
from advbound.models.boundary_net import BoundaryNet


@dataclasses.dataclass(frozen=True)
class Features:
  """distances float32 [N, M] (sorted, normalized); purity float32 [N, 3]; valid bool [N]."""
  distances: np.ndarray
  purity: np.ndarray
  valid: np.ndarray

  def take(self, idx) -> "Features":
    return Features(self.distances[idx], self.purity[idx], self.valid[idx])


def features(distance, adjacent, valid, *, num_classes: int, none_value: float,
             offset: float = 0.0, scale: float = 1.0) -> Features:
  """Features of N inputs from their boundary information.

  Args:
    distance: float [N, M] (inf = no boundary); adjacent: int [N, M] (-1 = none).
    valid: bool [N], whether the input counts (see the module docstring).
    none_value: distance recorded for "no boundary".
    offset, scale: normalization (d - offset) / scale.
  """
  d = np.asarray(distance, np.float32)
  d = np.sort(np.where(np.isfinite(d), d, np.float32(none_value)), axis=1)
  pur = np.asarray(boundary.purity(np.asarray(adjacent), num_classes, 3))
  return Features(((d - offset) / scale).astype(np.float32), pur.astype(np.float32),
                  np.asarray(valid, bool))


def _logits(graphdef, params, distances, purity, *, train=False, key=None):
  model = nnx.merge(graphdef, params, copy=True)
  rngs = nnx.Rngs(dropout=key) if train else None
  return model(distances, purity, train=train, rngs=rngs)


@functools.partial(jax.jit, static_argnums=(0, 6, 7, 8))
def _fit(graphdef, params, benign, adversarial, benign_p, adversarial_p, steps, batch,
         learning_rate, key):
  """Adam on the cross-entropy of B benign (label 0) + B adversarial (label 1) per step."""
  tx = optax.adam(learning_rate)
  labels = jnp.concatenate([jnp.zeros(batch, jnp.int32), jnp.ones(batch, jnp.int32)])

  def loss(p, d, pur, k):
    logits = _logits(graphdef, p, d, pur, train=True, key=k)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  def step(i, carry):
    p, opt = carry
    k = jax.random.fold_in(key, i)
    kb, ka, kd = jax.random.split(k, 3)
    ib = jax.random.choice(kb, benign_p.shape[0], (batch,), p=benign_p)
    ia = jax.random.choice(ka, adversarial_p.shape[0], (batch,), p=adversarial_p)
    d = jnp.concatenate([benign[0][ib], adversarial[0][ia]])
    pur = jnp.concatenate([benign[1][ib], adversarial[1][ia]])
    grads = jax.grad(loss)(p, d, pur, kd)
    updates, opt = tx.update(grads, opt, p)
    return optax.apply_updates(p, updates), opt

  params, _ = jax.lax.fori_loop(0, steps, step, (params, tx.init(params)))
  return params


def train(key, benign: Features, adversarial: Features, *, steps: int = 2000,
          batch_size: int = 128, learning_rate: float = 1e-3) -> BoundaryNet:
  """Trains a BoundaryNet on the valid benign and adversarial inputs (same key, same model).

  Raises ValueError when either side has no valid input.
  """
  if not benign.valid.any():
    raise ValueError("no valid benign input to train on (none classified correctly)")
  if not adversarial.valid.any():
    raise ValueError("no valid adversarial input to train on (no attack succeeded)")
  m = benign.distances.shape[1]
  if adversarial.distances.shape[1] != m:
    raise ValueError(f"benign has {m} directions, adversarial {adversarial.distances.shape[1]}")
  init_key, fit_key = jax.random.split(key)
  model = BoundaryNet(m, rngs=nnx.Rngs(params=init_key))
  graphdef, params = nnx.split(model)
  prob = lambda f: jnp.asarray(f.valid / f.valid.sum(), jnp.float32)
  params = _fit(graphdef, params, (jnp.asarray(benign.distances), jnp.asarray(benign.purity)),
                (jnp.asarray(adversarial.distances), jnp.asarray(adversarial.purity)),
                prob(benign), prob(adversarial), int(steps), int(batch_size),
                float(learning_rate), fit_key)
  return nnx.merge(graphdef, params)


def predict(model: BoundaryNet, f: Features) -> np.ndarray:
  """1 = adversarial, 0 = benign; int32 [N] (hard max of the logits)."""
  graphdef, params = nnx.split(model)
  return np.asarray(_predict(graphdef, params, jnp.asarray(f.distances), jnp.asarray(f.purity)))


@functools.partial(jax.jit, static_argnums=0)
def _predict(graphdef, params, distances, purity):
  return jnp.argmax(_logits(graphdef, params, distances, purity), -1).astype(jnp.int32)


def rates(pred_benign, valid_benign, pred_adversarial, valid_adversarial) -> tuple:
  """(false positive rate over valid benign, false negative rate over valid adversarial);
  None where there is no valid input."""
  vb, va = np.asarray(valid_benign, bool), np.asarray(valid_adversarial, bool)
  fp = float(np.mean(np.asarray(pred_benign)[vb] == 1)) if vb.any() else None
  fn = float(np.mean(np.asarray(pred_adversarial)[va] == 0)) if va.any() else None
  return fp, fn


def worst_case_accuracy(false_positive: float | None, false_negative: float | None):
  """He et al.'s Table 3 accuracy: all-benign test data if FP is higher, all-adversarial if FN
  is higher, i.e. 1 - max(FP, FN); None if either is undefined."""
  if false_positive is None or false_negative is None:
    return None
  return 1.0 - max(false_positive, false_negative)
