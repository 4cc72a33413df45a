"""Tests of advbound/attacks/cao_gong.py: names, settings scaled to the data range, and each
kind of attack (targeted, untargeted, combined) equal to its definition from the library parts."""

import numpy as np
import pytest

from advbound.attacks import cao_gong, combine, fgsm_epsilon_search, untargeted
from advbound.attacks.bim import bim_epsilon_search


def _affine(seed=0, n=6, d=8, k=3):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(k, d)).astype(np.float32)
  b = rng.normal(size=(k,)).astype(np.float32) * 0.1
  fn = lambda z: z.reshape(z.shape[0], -1) @ w.T + b
  x = rng.uniform(0.35, 0.65, size=(n, d)).astype(np.float32)
  y = np.argmax(fn(x), -1).astype(np.int32)
  return fn, x, y, k


def test_names_norms_and_components():
  assert len(cao_gong.TARGETED) == 6 and len(cao_gong.UNTARGETED) == 7
  assert len(cao_gong.NAMES) == 19
  assert cao_gong.norm("T-JSMA") == "l0" and cao_gong.norm("U-CA-Linf") == "linf"
  assert cao_gong.norm("DeepFool") == "l2"
  assert [p for p, _ in cao_gong.components("T-CA-L0")] == ["T-JSMA", "T-CW-L0"]
  assert [p for p, _ in cao_gong.components("U-CA-Linf")] == ["U-FGSM", "U-IGSM", "U-CW-Linf"]
  parts = cao_gong.components("U-CA-L2")
  assert [kw.get("confidence") for _, kw in parts[:-1]] == list(cao_gong.KAPPAS)
  assert parts[-1][0] == "DeepFool" and cao_gong.KAPPAS[-1] == 40.0
  assert cao_gong.components("T-CW-L2") == (("T-CW-L2", {}),)
  with pytest.raises(ValueError, match="unknown Cao & Gong attack 'T-PGD'"):
    cao_gong.norm("T-PGD")
  with pytest.raises(ValueError, match="combination"):
    cao_gong.settings("T-CA-L2", (0.0, 1.0))


def test_settings_scale_with_the_range():
  mnist, cifar = (cao_gong.settings("T-IGSM", b) for b in ((0.0, 1.0), (0.0, 255.0)))
  assert mnist["step_size"] == 1 / 256 and cifar["step_size"] == 255 / 256
  np.testing.assert_allclose(np.asarray(cifar["epsilons"]), 255 * np.asarray(mnist["epsilons"]))
  assert mnist["epsilons"][0] == 1 / 256 and mnist["epsilons"][-1] == 1.0
  assert cao_gong.settings("T-CW-L2", (0, 1))["binary_search_steps"] == 9


def test_targeted_untargeted_and_combined_match_their_definitions():
  fn, x, y, k = _affine()
  target = ((y + 1) % k).astype(np.int32)
  grid = dict(epsilons=tuple(np.arange(1, 65) / 64.0))
  t = cao_gong.run("T-FGSM", fn, x, y, bounds=(0, 1), num_classes=k, target=target, **grid)
  ref = fgsm_epsilon_search(fn, x, target, bounds=(0, 1), targeted=True, **grid)
  np.testing.assert_array_equal(np.asarray(t.adversarial), np.asarray(ref.adversarial))
  assert np.all(np.asarray(t.success) == np.asarray(ref.success))
  u, per = cao_gong.run("U-FGSM", fn, x, y, bounds=(0, 1), num_classes=k,
                        return_per_target=True, **grid)
  ok = np.asarray(per.success)  # [K, N]
  np.testing.assert_array_equal(np.asarray(u.success), ok.any(0))
  linf = np.where(ok, np.asarray(per.distortion["linf"]), np.inf).min(0)
  np.testing.assert_allclose(np.asarray(u.distortion["linf"])[ok.any(0)], linf[ok.any(0)])
  # T-CA-Linf: the per-example best of its three parts (CW-L-inf kept short)
  kw = dict(grid, max_iterations=50)  # each part takes the overrides it knows
  best = cao_gong.run("T-CA-Linf", fn, x, y, bounds=(0, 1), num_classes=k, target=target, **kw)
  parts = [cao_gong.run(p, fn, x, y, bounds=(0, 1), num_classes=k, target=target,
                        **({"epsilons": grid["epsilons"]} if p != "T-CW-Linf" else
                           {"max_iterations": 50}))
           for p in ("T-FGSM", "T-IGSM", "T-CW-Linf")]
  ref = combine(x, parts, norm="linf")
  np.testing.assert_array_equal(np.asarray(best.adversarial), np.asarray(ref.adversarial))
  assert np.all(np.asarray(best.success) >= np.asarray(parts[0].success))
  chosen = np.asarray(best.distortion["linf"])
  for p in parts:
    s = np.asarray(p.success)
    assert np.all(chosen[s] <= np.asarray(p.distortion["linf"])[s] + 1e-7)


def test_untargeted_igsm_is_untargeted_of_targeted():
  fn, x, y, k = _affine(seed=1)
  kw = dict(epsilons=tuple(np.arange(1, 33) / 32.0), step_size=1 / 64)
  ours = cao_gong.run("U-IGSM", fn, x, y, bounds=(0, 1), num_classes=k, **kw)
  ref = untargeted(lambda f, xx, t, **a: bim_epsilon_search(f, xx, t, targeted=True, **a), fn, x,
                   y, num_classes=k, norm="linf", bounds=(0, 1), **kw)
  np.testing.assert_array_equal(np.asarray(ours.adversarial), np.asarray(ref.adversarial))


def test_bad_calls_are_named():
  fn, x, y, k = _affine()
  with pytest.raises(ValueError, match="T-JSMA is targeted: pass target"):
    cao_gong.run("T-JSMA", fn, x, y, bounds=(0, 1), num_classes=k)
  with pytest.raises(ValueError, match="return_per_target"):
    cao_gong.run("U-CA-L0", fn, x, y, bounds=(0, 1), num_classes=k, return_per_target=True)
  with pytest.raises(ValueError, match="target"):
    cao_gong.run("T-FGSM", fn, x, y, bounds=(0, 1), num_classes=k, target=np.full(6, 7))
  with pytest.raises(ValueError, match=r"T-JSMA has no setting\(s\) \['max_iterations'\]"):
    cao_gong.run("T-JSMA", fn, x, y, bounds=(0, 1), num_classes=k, target=y,
                 max_iterations=3)
  with pytest.raises(ValueError, match=r"T-CA-L0: no part of it takes the setting\(s\) \['bogus'\]"):
    cao_gong.run("T-CA-L0", fn, x, y, bounds=(0, 1), num_classes=k, target=y, bogus=1)
