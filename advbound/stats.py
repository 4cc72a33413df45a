"""Uncertainty of the numbers the reports print, and verdicts on the papers' claims.

Every rate a study reports (attack success, accuracy, false-positive / false-negative rate,
detectability) is a `proportion`: its successes, its denominator and a 95% interval (Wilson's
score interval by default, Clopper-Pearson's exact interval on request). Means, distances, KL
divergences and AUCs get a percentile `bootstrap` interval over their samples; a quantity
recomputed over independent seeds or noise draws gets its `spread`. A claim of a paper is judged
by `judge` on an interval: it holds when the whole interval is on the claim's side,
is contradicted when the whole interval is on the other side, and is inconclusive at this sample
size otherwise. `paper_mark` says whether the paper's own number lies inside our interval.

Every cell is a plain dict (JSON-ready), so results.json carries exactly what report.md prints.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import scipy.stats

CONFIDENCE = 0.95
METHODS = ("wilson", "clopper-pearson")

# Verdicts on a claim (the report prints these words).
HOLDS = "holds"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive at this sample size"
BY_CONSTRUCTION = "true by construction (not evidence)"
OUT_OF_REGIME = "out of regime (not comparable)"
NOT_RUN = "not run"


def _check_confidence(confidence: float) -> None:
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")


def proportion_interval(successes: int, n: int, *, confidence: float = CONFIDENCE,
                        method: str = "wilson") -> tuple[float, float]:
  """Two-sided interval (low, high) for a binomial proportion of `successes` out of `n`.

  method: "wilson" (score interval) or "clopper-pearson" (exact, conservative).
  Raises ValueError on n < 1, successes outside [0, n], or an unknown method.
  """
  _check_confidence(confidence)
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  k, n = _counts(successes, n)
  if n < 1:
    raise ValueError(f"a proportion needs n >= 1, got n={n}")
  ci = scipy.stats.binomtest(k, n).proportion_ci(
      confidence_level=confidence, method="wilson" if method == "wilson" else "exact")
  return float(ci.low), float(ci.high)


def _counts(successes, n) -> tuple[int, int]:
  k, n_ = int(successes), int(n)
  if k != successes or n_ != n:
    raise ValueError(f"successes and n must be whole numbers, got {successes!r} of {n!r}")
  if n_ < 0 or not 0 <= k <= max(n_, 0):
    raise ValueError(f"successes must lie in [0, n], got {successes!r} of {n!r}")
  return k, n_


def proportion(successes: int, n: int, *, confidence: float = CONFIDENCE,
               method: str = "wilson") -> dict:
  """A rate with its denominator and interval, as a JSON-ready dict:

  {"rate", "successes", "n", "low", "high", "confidence", "method"}; rate, low and high are None
  where n == 0 (nothing to count: the report prints "-").
  """
  k, n = _counts(successes, n)
  if n == 0:
    return {"rate": None, "successes": 0, "n": 0, "low": None, "high": None,
            "confidence": confidence, "method": method}
  low, high = proportion_interval(k, n, confidence=confidence, method=method)
  return {"rate": k / n, "successes": k, "n": n, "low": low, "high": high,
          "confidence": confidence, "method": method}


def of(mask, *, confidence: float = CONFIDENCE, method: str = "wilson") -> dict:
  """`proportion` of the True entries of a boolean array (any shape)."""
  mask = np.asarray(mask)
  if mask.dtype != bool:
    raise ValueError(f"of() takes a boolean array, got dtype {mask.dtype}")
  return proportion(int(mask.sum()), int(mask.size), confidence=confidence, method=method)


def difference(k1: int, n1: int, k2: int, n2: int, *, confidence: float = CONFIDENCE) -> dict:
  """Interval for p1 - p2 of two independent proportions: Newcombe's hybrid score interval
  (his method 10, built from the two Wilson intervals).

  {"difference", "low", "high", "confidence", "method"}; None values where n1 or n2 is 0.
  """
  k1, n1 = _counts(k1, n1)
  k2, n2 = _counts(k2, n2)
  if n1 == 0 or n2 == 0:
    return {"difference": None, "low": None, "high": None, "confidence": confidence,
            "method": "newcombe"}
  p1, p2 = k1 / n1, k2 / n2
  l1, u1 = proportion_interval(k1, n1, confidence=confidence)
  l2, u2 = proportion_interval(k2, n2, confidence=confidence)
  d = p1 - p2
  low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
  high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
  return {"difference": d, "low": max(low, -1.0), "high": min(high, 1.0),
          "confidence": confidence, "method": "newcombe"}


def difference_of(a: dict, b: dict, *, confidence: float = CONFIDENCE) -> dict:
  """`difference` of two `proportion` cells: rate(a) - rate(b) with Newcombe's interval."""
  return difference(a["successes"], a["n"], b["successes"], b["n"], confidence=confidence)


def format_difference(d: dict | None, unit: str = "points", *, signed: bool = True) -> str:
  """'+62.5 points [+17.0, +86.3]' for a `difference` cell (in percentage points); '-' where
  there is nothing to compare."""
  if d is None or d["difference"] is None:
    return "-"
  f = (lambda v: f"{100 * v:+.1f}") if signed else (lambda v: f"{100 * v:.1f}")
  return f"{f(d['difference'])} {unit} [{f(d['low'])}, {f(d['high'])}]"


def bootstrap(samples, statistic: Callable = np.mean, *, seed: int = 0,
              num_resamples: int = 2000, confidence: float = CONFIDENCE) -> dict:
  """Percentile bootstrap interval of `statistic` (scipy.stats.bootstrap).

  samples: one array [n] or a tuple of arrays (resampled independently, e.g. the two groups of
    an AUC); statistic(*samples) -> float. Non-finite values are an error, not dropped silently.
  Returns {"estimate", "low", "high", "n", "confidence", "method"}: estimate None where a sample
  is empty; low and high None where a sample has fewer than 2 values. The same seed gives the
  same interval.
  """
  _check_confidence(confidence)
  groups = tuple(np.asarray(s, np.float64).reshape(-1) for s in
                 (samples if isinstance(samples, tuple) else (samples,)))
  n = [int(g.size) for g in groups]
  out = {"estimate": None, "low": None, "high": None, "n": n[0] if len(n) == 1 else n,
         "confidence": confidence, "method": "bootstrap percentile"}
  for g in groups:
    if not np.all(np.isfinite(g)):
      raise ValueError(f"bootstrap: samples hold non-finite values ({int((~np.isfinite(g)).sum())}"
                       f" of {g.size})")
  if min(n) == 0:
    return out
  out["estimate"] = float(statistic(*groups))
  if min(n) < 2:
    return out
  if all(np.ptp(g) == 0 for g in groups):  # every resample gives the same value
    out["low"] = out["high"] = out["estimate"]
    return out
  res = scipy.stats.bootstrap(groups, lambda *g: statistic(*g), n_resamples=num_resamples,
                              vectorized=False, paired=False, confidence_level=confidence,
                              method="percentile", rng=np.random.default_rng(seed))
  out["low"], out["high"] = float(res.confidence_interval.low), float(
      res.confidence_interval.high)
  return out


def spread(values: Sequence[float]) -> dict:
  """Mean, sample standard deviation, min and max of a quantity recomputed over independent
  seeds or noise draws: {"mean", "std", "min", "max", "n", "values"} (std None for one value)."""
  v = np.asarray(values, np.float64).reshape(-1)
  if v.size == 0:
    raise ValueError("spread() needs at least one value")
  if not np.all(np.isfinite(v)):
    raise ValueError(f"spread(): non-finite values {v.tolist()}")
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else None,
          "min": float(v.min()), "max": float(v.max()), "n": int(v.size),
          "values": [float(x) for x in v]}


def judge(low, high, *, above: float | None = None, below: float | None = None) -> str:
  """Verdict on the claim "the quantity is > above" (or "< below") from its interval [low, high].

  holds: the whole interval is on the claim's side; contradicted: the whole interval is on the
  other side (touching the threshold counts as neither); inconclusive otherwise, or where the
  interval is missing.
  """
  if (above is None) == (below is None):
    raise ValueError("judge() takes exactly one of above= or below=")
  if low is None or high is None:
    return INCONCLUSIVE
  if low > high:
    raise ValueError(f"judge(): interval low {low} above high {high}")
  if above is not None:
    return HOLDS if low > above else CONTRADICTED if high < above else INCONCLUSIVE
  return HOLDS if high < below else CONTRADICTED if low > below else INCONCLUSIVE


def paper_mark(paper_value, low, high) -> str:
  """Whether the paper's number lies inside our interval: "inside", "outside", or "-" where
  either is missing."""
  if paper_value is None or low is None or high is None:
    return "-"
  return "inside" if low <= paper_value <= high else "outside"


def _pct(v) -> str:
  return f"{100 * v:.1f}"


def format_rate(cell: dict | None) -> str:
  """'37.5% [13.7, 69.4] (3/8)' for a `proportion` cell; '-' for None or n == 0."""
  if cell is None or not cell.get("n"):
    return "-"
  return (f"{_pct(cell['rate'])}% [{_pct(cell['low'])}, {_pct(cell['high'])}] "
          f"({cell['successes']}/{cell['n']})")


def format_estimate(cell: dict | None, fmt: str = ".3g") -> str:
  """'0.045 [0.039, 0.051] (n=500)' for a `bootstrap` cell (or a `spread`: 'mean ± std
  (n=5)'); '-' for None."""
  if cell is None:
    return "-"
  if "mean" in cell:  # a spread
    std = "" if cell["std"] is None else f" ± {cell['std']:{fmt}}"
    return f"{cell['mean']:{fmt}}{std} (n={cell['n']})"
  if cell["estimate"] is None:
    return "-"
  n = cell["n"] if not isinstance(cell["n"], list) else "+".join(map(str, cell["n"]))
  if cell["low"] is None:
    return f"{cell['estimate']:{fmt}} (n={n})"
  return f"{cell['estimate']:{fmt}} [{cell['low']:{fmt}}, {cell['high']:{fmt}}] (n={n})"


def beside_paper(cell: dict | None, paper_value, *, percent: bool = True) -> str:
  """The paper's number with its mark against our interval: '9.7% (outside)'; '-' if none."""
  if paper_value is None:
    return "-"
  if cell is None:
    low = high = None
  elif "rate" in cell:
    low, high = cell["low"], cell["high"]
  else:
    low, high = cell.get("low"), cell.get("high")
  text = f"{_pct(paper_value)}%" if percent else f"{paper_value:.3g}"
  return f"{text} ({paper_mark(paper_value, low, high)})"
