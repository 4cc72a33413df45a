"""AutoAttack (Croce & Hein, ICML 2020): the parameter-free ensemble by which robustness is
reported, run in the reference's order on the points still robust.

  standard  APGD-CE, APGD-T (9 target classes), FAB-T (9 target classes), Square (5,000 queries)
  plus      APGD-CE and APGD-DLR (5 restarts each), FAB (5 restarts), Square, APGD-T, FAB-T
  rand      APGD-CE and APGD-DLR with EOT over 20 draws, for a randomised classifier

Settings are the reference's (`pyautoattack`, `AutoAttack._set_version`): 100 iterations per
APGD and FAB run, APGD's rho 0.75, FAB's alpha_max 0.1, eta 1.05, beta 0.9, Square's p_init 0.8.

Departures from the reference:
- the attacks' random numbers come from `key`, one stream per attack and example (folded with
  the example's index in `x`): an example's result does not depend on which other examples
  are still robust, nor on the batch size or the number of devices;
- the sanity checks are returned as `flags` (and logged) instead of printed as warnings.

A randomised classifier is given as `logits_fn(x, key) -> logits` with `stochastic=True`; the
"rand" version needs one. Its clean and adversarial predictions are each one draw, as the
reference's (`judge_fn` may replace them, e.g. a region classifier's majority vote).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from advbound.analysis import evaluate
from advbound.models import as_pytree_fn
from advbound.runtime import batching, checks, probe

__all__ = ["AutoAttackResult", "VERSIONS", "ATTACKS", "autoattack", "plan"]

VERSIONS = ("standard", "plus", "rand")
ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")


def plan(version: str, *, stochastic: bool = False) -> list[tuple[str, dict[str, Any]]]:
  """The attacks of `version` in the reference's order, each (name, keyword settings)."""
  if version == "standard":
    return [("apgd-ce", dict(loss="ce", restarts=1)),
            ("apgd-t", dict(target_classes=9, restarts=1)),
            ("fab-t", dict(targeted=True, target_classes=9, restarts=1)),
            ("square", dict(num_queries=5000, p_init=0.8, restarts=1))]
  if version == "plus":
    return [("apgd-ce", dict(loss="ce", restarts=5)),
            ("apgd-dlr", dict(loss="dlr", restarts=5)),
            ("fab", dict(targeted=False, restarts=5)),
            ("square", dict(num_queries=5000, p_init=0.8, restarts=1)),
            ("apgd-t", dict(target_classes=9, restarts=1)),
            ("fab-t", dict(targeted=True, target_classes=9, restarts=1))]
  if version == "rand":
    eot = dict(restarts=1, eot_iter=20, stochastic=stochastic)
    return [("apgd-ce", dict(loss="ce", **eot)), ("apgd-dlr", dict(loss="dlr", **eot))]
  raise ValueError(f"unknown AutoAttack version {version!r}; expected one of {VERSIONS}")


def _attack_fn(name: str) -> Callable[..., Any]:
  # imported here: each attack module is independent of the others
  if name in ("apgd-ce", "apgd-dlr"):
    from advbound.attacks.apgd import apgd  # pylint: disable=g-import-not-at-top
    return apgd
  if name == "apgd-t":
    from advbound.attacks.apgd import apgd_targeted  # pylint: disable=g-import-not-at-top
    return apgd_targeted
  if name in ("fab", "fab-t"):
    from advbound.attacks.fab import fab  # pylint: disable=g-import-not-at-top
    return fab
  if name == "square":
    from advbound.attacks.square import square  # pylint: disable=g-import-not-at-top
    return square
  raise ValueError(f"unknown attack {name!r}; expected one of {ATTACKS}")


@dataclasses.dataclass
class AutoAttackResult:
  """What `autoattack` found.

  Attributes:
    adversarial: float32 [N, *S]: the first attack's successful example, x where none.
    robust: bool [N]: still classified correctly after every attack (False where the clean
      input is already misclassified).
    clean: bool [N]: the clean input is classified correctly.
    broken_by: [N] the name of the attack that broke the example ("" where none, "clean"
      where the clean input is misclassified).
    accuracy: {"clean": float, <attack>: robust accuracy after it, ...} in the order run; the
      last is the AutoAttack robust accuracy.
    robust_count: {"clean": int, <attack>: int}: the numerators of `accuracy`.
    n: the number of examples (the denominator).
    flags: the reference's sanity checks that fired, as sentences (empty: none).
    version, norm, epsilon: what was run.
    seconds: {<attack>: wall seconds of the attack and its judgement} (not in `summary`: a
      timing, not a result).
  """
  adversarial: np.ndarray
  robust: np.ndarray
  clean: np.ndarray
  broken_by: np.ndarray
  accuracy: dict[str, float]
  robust_count: dict[str, int]
  n: int
  flags: list[str]
  version: str
  norm: str
  epsilon: float
  seconds: dict[str, float] = dataclasses.field(default_factory=dict)

  def summary(self) -> dict[str, Any]:
    """A JSON-able summary: counts, accuracies (keyed by attack; "order" lists the keys in the
    order run, as JSON files sort them), the final robust count, flags and settings."""
    return {"version": self.version, "norm": self.norm, "epsilon": self.epsilon, "n": self.n,
            "accuracy": dict(self.accuracy), "robust_count": dict(self.robust_count),
            "order": list(self.accuracy), "robust": int(self.robust.sum()),
            "flags": list(self.flags)}


def _predict(fn, x, *, stochastic: bool, key, batch_size: int) -> np.ndarray:
  """argmax of fn on x [N, *S] (one draw for a stochastic fn, per example keyed by index)."""
  if not stochastic:
    return evaluate.predict(fn, x, batch_size=batch_size)
  ids = np.arange(len(x), dtype=np.int32)
  return batching.map_chunks(lambda xc, ic: _draw_argmax(fn, key, xc, ic), x, ids,
                             chunk_size=batch_size)


@jax.jit
def _draw_argmax(fn, key, x, ids):
  """argmax of one draw of a stochastic fn per example [B], keyed by the examples' ids [B]
  (compiled once per fn and shape: fn and key are arguments)."""
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(ids)
  return jnp.argmax(jax.vmap(lambda xi, k: fn(xi[None], k)[0])(x, keys), -1)


@jax.jit
def _log_likelihood_gradient(fn, x, y):
  """d/dx of sum_i log softmax(fn(x))_i[y_i], [n, *S] (compiled once per model and shape)."""
  return jax.grad(lambda v: jax.nn.log_softmax(fn(v))[jnp.arange(v.shape[0]), y].sum())(x)


def _flags(fn, x, y, accuracy: dict, *, stochastic: bool, version: str, num_classes: int,
           plan_: Sequence[tuple[str, dict]], key) -> list[str]:
  """The reference's sanity checks (checks.py) that apply to a JAX function."""
  out = []
  sample = x[: min(len(x), 64)]
  if stochastic and version != "rand":
    out.append("randomised model evaluated with a deterministic version: the attacks saw one "
               "fixed draw of its randomness and each judgement is one draw; use version='rand' "
               "(EOT) for a randomised defence")
  if not stochastic:
    z = np.asarray(fn(sample))
    if (z.max() < 1 + 1e-5 and z.min() > -1e-5
        and np.all(np.abs(z.sum(-1) - 1) < 1e-5)):
      out.append("the outputs look like probabilities, not logits: the attacks' losses "
                 "assume logits")
    grad = np.asarray(_log_likelihood_gradient(fn, jnp.asarray(sample),
                                               jnp.asarray(y[: len(sample)])))
    zero = int(np.sum(np.abs(grad.reshape(len(grad), -1)).sum(-1) == 0))
    if zero:
      out.append(f"{zero} of {len(sample)} points have a zero input gradient: gradient-based "
                 "attacks may be unreliable (gradient masking)")
  del key
  need = max([s.get("target_classes", 0) for _, s in plan_] + [0]) + 1
  if need > num_classes:
    out.append(f"{num_classes} classes: the targeted attacks use {num_classes - 1} target "
               f"classes instead of {need - 1}")
  if "square" in accuracy and len(accuracy) > 2:
    best_gradient = min(v for k, v in accuracy.items() if k not in ("square",))
    if accuracy["square"] < best_gradient - 0.002:
      out.append(f"Square lowered the robust accuracy by {best_gradient - accuracy['square']:.2%}"
                 " after the gradient-based attacks: the evaluation may be unreliable "
                 "(gradient masking); consider more Square queries or restarts")
  return out


def _fixed_draw(fn, key, x):
  return fn(x, key)


def _check_budget(adv, x, norm: str, epsilon: float, low: float, high: float, name: str):
  """RuntimeError unless every adversarial input lies within epsilon of x and in bounds (a
  check on the attacks, as the reference's final check). Not under a probe (--estimate), whose
  skipped chunks repeat another chunk's examples."""
  if probe.active():
    return
  d = (adv - x).reshape(len(x), -1)
  size = np.abs(d).max(1) if norm == "linf" else np.sqrt((d.astype(np.float64) ** 2).sum(1))
  tol = 1e-5 * max(1.0, abs(high - low))
  if np.any(size > epsilon + tol) or adv.min() < low - tol or adv.max() > high + tol:
    raise RuntimeError(f"{name} returned inputs outside the {norm} ball of radius {epsilon} or "
                       f"the bounds ({low}, {high}): largest perturbation {size.max()}")


def autoattack(logits_fn, key, x, y, *, norm: str, epsilon: float, bounds, version: str =
               "standard", batch_size: int | None = None, attacks: Sequence[str] | None = None,
               stochastic: bool = False, judge_fn=None, num_classes: int | None = None,
               loop: str | None = None) -> AutoAttackResult:
  """AutoAttack on `logits_fn`: each attack of `version` in turn on the examples still robust.

  Args:
    logits_fn: pure [B, *S] -> logits [B, K]; with `stochastic`, `logits_fn(x, key)`.
    key: jax.random key (one stream per attack, folded with each example's index).
    x: float32 [N, *S] inside bounds; y: int32 [N] true labels.
    norm: "linf" or "l2"; epsilon: the budget in the units of `bounds` (> 0).
    bounds: (low, high).
    version: "standard", "plus" or "rand" (module docstring).
    batch_size: examples per compiled call of each attack (default all).
    attacks: run only these of the version's attacks (in its order), e.g. ("apgd-ce",).
    stochastic: `logits_fn` is randomised (takes a key); required by "rand".
    judge_fn: optional `judge_fn(x [B, *S]) -> predicted labels [B]` deciding clean and
      adversarial correctness instead of one draw of `logits_fn` (e.g. a region classifier's
      vote over many draws).
    num_classes: K (default: from one forward pass); the targeted attacks use at most K - 1
      target classes.
    loop: how the attacks run their iterations: "device", "host" or None ("host" on CPU,
      else "device"; see `apgd`).

  Returns:
    AutoAttackResult (robust accuracy per attack and in all, the examples, the flags).
  """
  if norm not in ("linf", "l2"):
    raise ValueError(f"unknown norm {norm!r}; expected 'linf' or 'l2'")
  low, high, n = checks.check_attack_inputs(x, y, bounds, batch_size=batch_size)
  checks.check_positive(epsilon, "epsilon")
  loop = checks.loop_mode(loop)
  if version == "rand" and not stochastic:
    raise ValueError("version 'rand' attacks a randomised classifier: pass logits_fn(x, key) "
                     "with stochastic=True")
  steps = plan(version, stochastic=stochastic)
  if attacks is not None:
    unknown = [a for a in attacks if a not in dict(steps)]
    if unknown:
      raise ValueError(f"attacks {unknown} are not in version {version!r} "
                       f"({[s for s, _ in steps]})")
    steps = [(s, kw) for s, kw in steps if s in attacks]
  x = np.asarray(x, np.float32)
  y = np.asarray(y, np.int32)
  bs = int(batch_size or n)
  fn = as_pytree_fn(logits_fn)
  predict_key, fixed_key, *attack_keys = jax.random.split(key, len(steps) + 2)
  # a randomised model under a deterministic version: the attacks see one fixed draw of its
  # randomness (flagged below); the clean and adversarial judgements draw afresh
  attacked = (jax.tree_util.Partial(_fixed_draw, fn, fixed_key)
              if stochastic and version != "rand" else fn)
  if judge_fn is not None:
    judge = lambda v, k: np.asarray(judge_fn(v))
  else:
    judge = lambda v, k: _predict(fn, v, stochastic=stochastic, key=k, batch_size=bs)
  if num_classes is None:
    probe = fn(x[:1], predict_key) if stochastic else fn(x[:1])
    num_classes = int(np.shape(probe)[-1])
  clean = judge(x, predict_key) == y
  robust = clean.copy()
  adversarial = x.copy()
  broken_by = np.where(clean, "", "clean").astype(object)
  accuracy = {"clean": float(clean.mean())}
  counts = {"clean": int(clean.sum())}
  seconds = {}
  for (name, settings), attack_key in zip(steps, attack_keys):
    started = time.time()
    idx = np.flatnonzero(robust)
    if idx.size:
      kwargs = dict(settings)
      if "target_classes" in kwargs:
        kwargs["target_classes"] = min(kwargs["target_classes"], num_classes - 1)
      kwargs["loop"] = loop
      result = _attack_fn(name)(attacked, attack_key, x[idx], y[idx], epsilon=float(epsilon),
                                bounds=(low, high), norm=norm, batch_size=bs, ids=idx,
                                **kwargs)
      adv = np.asarray(result.adversarial, np.float32)
      _check_budget(adv, x[idx], norm, float(epsilon), low, high, name)
      # the reference's test: the attack's output misclassified, judged afresh
      broken = judge(adv, jax.random.fold_in(predict_key, len(counts))) != y[idx]
      robust[idx[broken]] = False
      adversarial[idx[broken]] = adv[broken]
      broken_by[idx[broken]] = name
    accuracy[name] = float(robust.mean())
    counts[name] = int(robust.sum())
    seconds[name] = time.time() - started
    logging.info("AutoAttack %s: robust accuracy %.2f%% (%d/%d) after %s", version,
                 100 * accuracy[name], counts[name], n, name)
  flags = _flags(fn, x, y, accuracy, stochastic=stochastic, version=version,
                 num_classes=num_classes, plan_=steps, key=predict_key)
  for flag in flags:
    logging.warning("AutoAttack check: %s", flag)
  return AutoAttackResult(adversarial=adversarial, robust=robust, clean=clean,
                          broken_by=np.asarray(broken_by, dtype=str), accuracy=accuracy,
                          robust_count=counts, n=n, flags=flags, version=version, norm=norm,
                          epsilon=float(epsilon), seconds=seconds)
