"""Cao & Gong's attack suite by name (their Table 1, Sections 5.2-5.3), with per-data-set
settings.

  targeted (need `target`)  T-FGSM, T-IGSM, T-JSMA, T-CW-L0, T-CW-L2, T-CW-Linf
  untargeted                U-FGSM, U-IGSM, U-JSMA, U-CW-L0, U-CW-L2, U-CW-Linf (each the
                            targeted attack run for all nine other targets, the smallest
                            successful kept: `compose.untargeted`), DeepFool
  combined                  T-CA-L0 = T-JSMA + T-CW-L0; T-CA-Linf = T-FGSM + T-IGSM + T-CW-Linf;
                            T-CA-L2 = T-CW-L2 for every kappa of the sweep (0 to 40); U-CA-L0,
                            U-CA-Linf likewise; U-CA-L2 = U-CW-L2 over the sweep + DeepFool.
                            Per example the successful candidate with the smallest noise
                            (`compose.combine`).

Settings (all magnitudes in units of the data set's range, so they hold for MNIST in [0, 1]
and CIFAR-10 in [0, 255]): FGSM and IGSM search epsilon over k/256 of the range, k = 1..256,
IGSM with step 1/256 of the range (Cao & Gong's alpha); JSMA theta = 1 (to the upper bound),
gamma = 1 (cleverhans' defaults, the authors' code Cao & Gong used); the CW attacks with Carlini
& Wagner's released defaults (CW-L2: 9 binary-search steps of up to 10,000 Adam iterations, lr
1e-2, c0 1e-3; CW-L0 and CW-L-inf: see their modules); DeepFool L2, overshoot 0.02, 50
iterations. Cao & Gong report noise in the attack's own norm: L0 for JSMA / CW-L0 and their
combinations, L-inf for FGSM / IGSM / CW-L-inf, L2 for CW-L2 and DeepFool.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import numpy as np

from advbound.attacks import compose
from advbound.attacks.bim import bim_epsilon_search
from advbound.attacks.cw import carlini_wagner_l2
from advbound.attacks.cw_l0 import carlini_wagner_l0
from advbound.attacks.cw_linf import carlini_wagner_linf
from advbound.attacks.deepfool import deepfool
from advbound.attacks.fgsm import fgsm_epsilon_search
from advbound.attacks.jsma import jsma
from advbound.attacks.result import AttackResult
from advbound.runtime import checks

BASE = ("FGSM", "IGSM", "JSMA", "CW-L0", "CW-L2", "CW-Linf")
TARGETED = tuple(f"T-{b}" for b in BASE)
UNTARGETED = tuple(f"U-{b}" for b in BASE) + ("DeepFool",)
COMBINED = ("T-CA-L0", "T-CA-Linf", "T-CA-L2", "U-CA-L0", "U-CA-Linf", "U-CA-L2")
NAMES = TARGETED + UNTARGETED + COMBINED

# The noise measure of each base attack (Cao & Gong's tables) and of each combination.
NORM = {"FGSM": "linf", "IGSM": "linf", "JSMA": "l0", "CW-L0": "l0", "CW-L2": "l2",
        "CW-Linf": "linf", "DeepFool": "l2", "CA-L0": "l0", "CA-Linf": "linf", "CA-L2": "l2"}
KAPPAS = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0)  # T-CA-L2's sweep ("up to 40")
_PARTS = {"CA-L0": ("JSMA", "CW-L0"), "CA-Linf": ("FGSM", "IGSM", "CW-Linf"), "CA-L2": ("CW-L2",)}


def _base(name: str) -> str:
  return name if name == "DeepFool" else name.split("-", 1)[1]


def norm(name: str) -> str:
  """The noise measure ("l0", "l2", "linf") Cao & Gong report for attack `name`."""
  _check_name(name)
  return NORM[_base(name)]


def _check_name(name: str) -> None:
  if name not in NAMES:
    raise ValueError(f"unknown Cao & Gong attack {name!r}; expected one of {NAMES}")


def settings(name: str, bounds) -> dict[str, Any]:
  """The keyword arguments of base attack `name` ("T-FGSM", "U-CW-L2", "DeepFool", ...; not a
  combination) on data with `bounds`, as described in the module docstring."""
  _check_name(name)
  if name in COMBINED:
    raise ValueError(f"{name!r} is a combination of {components(name)}; it has no settings")
  low, high = checks.check_bounds(bounds)
  span = high - low
  base = _base(name)
  if base in ("FGSM", "IGSM"):
    kw = {"epsilons": tuple(float(e) for e in np.arange(1, 257) / 256.0 * span)}
    if base == "IGSM":
      kw["step_size"] = span / 256.0
    return kw
  if base == "JSMA":
    return {"theta": 1.0, "gamma": 1.0}
  if base == "CW-L2":
    return {"binary_search_steps": 9, "max_iterations": 10_000, "learning_rate": 1e-2,
            "initial_const": 1e-3, "abort_early": True, "confidence": 0.0}
  if base == "DeepFool":
    return {"norm": "l2", "overshoot": 0.02, "max_iterations": 50}
  return {}  # CW-L0, CW-Linf: their modules' defaults are the released code's


def components(name: str, kappas=KAPPAS) -> tuple[tuple[str, dict], ...]:
  """The (attack, setting overrides) whose results a combined attack takes the best of, e.g.
  T-CA-L2 -> (("T-CW-L2", {"confidence": 0.0}), ("T-CW-L2", {"confidence": 5.0}), ...)."""
  _check_name(name)
  if name not in COMBINED:
    return ((name, {}),)
  prefix, base = name[0], name[2:]
  if base == "CA-L2":
    parts = tuple((f"{prefix}-CW-L2", {"confidence": float(k)}) for k in kappas)
    return parts + ((("DeepFool", {}),) if prefix == "U" else ())
  return tuple((f"{prefix}-{p}", {}) for p in _PARTS[base])


def _targeted_fn(base: str, kwargs: dict) -> Callable[..., AttackResult]:
  """(logits_fn, x, target, bounds=...) -> AttackResult for a targeted base attack."""
  if base == "FGSM":
    return functools.partial(fgsm_epsilon_search, targeted=True, **kwargs)
  if base == "IGSM":
    return functools.partial(bim_epsilon_search, targeted=True, **kwargs)
  if base == "JSMA":
    return functools.partial(jsma, **kwargs)
  if base == "CW-L0":
    return functools.partial(carlini_wagner_l0, targeted=True, **kwargs)
  if base == "CW-L2":
    return functools.partial(carlini_wagner_l2, targeted=True, **kwargs)
  return functools.partial(carlini_wagner_linf, targeted=True, **kwargs)


_FUNCTIONS = {"FGSM": fgsm_epsilon_search, "IGSM": bim_epsilon_search, "JSMA": jsma,
              "CW-L0": carlini_wagner_l0, "CW-L2": carlini_wagner_l2,
              "CW-Linf": carlini_wagner_linf, "DeepFool": deepfool}


def accepted(name: str) -> frozenset[str]:
  """The setting names base attack `name` takes (its function's keyword arguments)."""
  params = inspect.signature(_FUNCTIONS[_base(name)]).parameters
  return frozenset(k for k, p in params.items() if p.kind == p.KEYWORD_ONLY)


def run(name: str, logits_fn, x, y, *, bounds, num_classes: int, target=None,
        kappas=KAPPAS, return_per_target: bool = False, **overrides):
  """Runs Cao & Gong's attack `name` on the point classifier `logits_fn`.

  Args:
    name: one of NAMES.
    logits_fn: pure function [N, *image_shape] -> logits [N, K].
    x: float32 [N, *image_shape] inside bounds.
    y: int32 [N] true labels.
    bounds: (low, high).
    num_classes: K.
    target: int32 [N] target labels, required by the T- attacks (and ignored otherwise).
    kappas: the confidence sweep of the CA-L2 combinations.
    return_per_target: U- attacks (not combinations) also return the per-target results
      (Cao & Gong's Tables 4 and 6 use all nine targets); see compose.untargeted.
    **overrides: replace settings of the base attack(s) (e.g. max_iterations, batch_size); a
      combination passes each part the overrides it takes (an override no part takes is an
      error).

  Returns:
    AttackResult (success judged by `logits_fn`; combinations keep, per example, the successful
    candidate with the smallest noise in `norm(name)`), or with return_per_target
    (AttackResult, per-target AttackResult stacked [K, N, ...]).
  """
  _check_name(name)
  x = np.asarray(x, np.float32)
  checks.check_labels(y, x.shape[0], num_classes)
  if name.startswith("T-"):
    if target is None:
      raise ValueError(f"{name} is targeted: pass target (int32 [N])")
    checks.check_labels(target, x.shape[0], num_classes, name="target")
  if name in COMBINED:
    if return_per_target:
      raise ValueError(f"return_per_target is for the U- base attacks, not {name!r}")
    parts = components(name, kappas)
    unused = set(overrides) - set().union(*(accepted(p) for p, _ in parts))
    if unused:
      raise ValueError(f"{name}: no part of it takes the setting(s) {sorted(unused)}")
    results = [run(part, logits_fn, x, y, bounds=bounds, num_classes=num_classes,
                   target=target, **{k: v for k, v in {**overrides, **extra}.items()
                                     if k in accepted(part)})
               for part, extra in parts]
    return compose.combine(x, results, norm=norm(name))
  unknown = set(overrides) - accepted(name)
  if unknown:
    raise ValueError(f"{name} has no setting(s) {sorted(unknown)}; it takes "
                     f"{sorted(accepted(name) - {'targeted', 'bounds'})}")
  kwargs = settings(name, bounds)
  kwargs.update(overrides)
  if name == "DeepFool":
    return deepfool(logits_fn, x, y, bounds=bounds, **kwargs)
  base = _base(name)
  attack = _targeted_fn(base, kwargs)
  if name.startswith("T-"):
    return attack(logits_fn, x, np.asarray(target, np.int32), bounds=bounds)
  return compose.untargeted(attack, logits_fn, x, y, num_classes=num_classes, norm=NORM[base],
                            return_per_target=return_per_target, bounds=bounds)
