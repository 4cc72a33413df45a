"""He et al.'s OPTMARGIN: CW-L2 against an ensemble of 20 fixed perturbations of the input.

The ensemble is f(x + v_i) for v_1..v_19 random orthogonal perturbations with RMS exactly
epsilon and v_20 = 0, drawn from the key and fixed during the optimization, so the example
survives the small random perturbations of region classification.
"""

from __future__ import annotations

import numpy as np

from advbound.attacks.cw import carlini_wagner_l2
from advbound.attacks.result import AttackResult
from advbound.directions import random_orthogonal
from advbound.runtime import checks


def ensemble_perturbations(key, shape, *, epsilon, num_models=20):
  """float32 [num_models, *shape]: num_models - 1 orthogonal perturbations with RMS epsilon, then
  the zero vector."""
  checks.check_positive(epsilon, "epsilon", allow_zero=True)
  checks.check_positive(num_models, "num_models", integer=True)
  if num_models == 1:
    return np.zeros((1,) + tuple(shape), np.float32)
  v = np.asarray(random_orthogonal(key, num_models - 1, shape)) * np.float32(epsilon)
  return np.concatenate([v, np.zeros((1,) + tuple(shape), np.float32)])


def optmargin(logits_fn, key, x, y, *, epsilon, bounds, num_models=20, **cw_kwargs) -> AttackResult:
  """OPTMARGIN (He et al., Section 3.2): CW-L2 whose loss sums the margin terms of
  logits_fn(clip(x' + v_i)) over the ensemble of `ensemble_perturbations(key, ...)`; success
  requires all members to be fooled.

  Args:
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    key: jax.random key of the perturbations (one set shared by the batch).
    x: float32 [N, *image_shape]; y: int32 [N].
    epsilon: RMS of each perturbation (MNIST 0.3, CIFAR-10 8 on 0-255 in the paper).
    bounds: (low, high).
    num_models: ensemble size (20 in the paper).
    **cw_kwargs: passed to carlini_wagner_l2 (confidence, binary_search_steps, ...).

  Returns:
    AttackResult.
  """
  ensemble = ensemble_perturbations(key, np.shape(x)[1:], epsilon=epsilon, num_models=num_models)
  return carlini_wagner_l2(logits_fn, x, y, bounds=bounds, ensemble=ensemble, **cw_kwargs)
