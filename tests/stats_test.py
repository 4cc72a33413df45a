"""advbound.stats against statsmodels' independent implementations, closed forms and coverage."""

import math

import numpy as np
import pytest
import scipy.stats

from advbound import stats

smp = pytest.importorskip("statsmodels.stats.proportion")

CASES = [(0, 4), (1, 4), (4, 4), (3, 8), (27, 100), (0, 36), (35, 36), (97, 900), (450, 900)]


@pytest.mark.parametrize("k,n", CASES)
def test_wilson_and_clopper_pearson_match_statsmodels(k, n):
  for method, theirs in (("wilson", "wilson"), ("clopper-pearson", "beta")):
    ours = stats.proportion_interval(k, n, method=method)
    ref = smp.proportion_confint(k, n, alpha=0.05, method=theirs)
    np.testing.assert_allclose(ours, ref, atol=1e-9, err_msg=method)


def test_wilson_closed_form():
  # Wilson's score interval by its formula, z the normal quantile.
  k, n, z = 3, 8, scipy.stats.norm.ppf(0.975)
  p = k / n
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  np.testing.assert_allclose(stats.proportion_interval(k, n), (centre - half, centre + half),
                             atol=1e-12)


def test_clopper_pearson_zero_successes_closed_form():
  # k = 0: the exact upper bound solves (1 - p)^n = alpha / 2.
  for n in (4, 36, 100):
    low, high = stats.proportion_interval(0, n, method="clopper-pearson")
    assert low == 0.0
    np.testing.assert_allclose(high, 1 - 0.025 ** (1 / n), rtol=1e-9)


def test_coverage_near_nominal():
  # Wilson's interval covers about 95% at moderate n; Clopper-Pearson's at least 95% at any n
  # (at n = 4 Wilson's covers 0.5 only 87.5% of the time: 0/4 and 4/4 exclude it).
  rng = np.random.default_rng(0)
  for method, cases, floor in (("wilson", ((0.1, 36), (0.3, 100), (0.05, 900)), 0.92),
                               ("clopper-pearson", ((0.5, 4), (0.1, 36), (0.3, 100)), 0.94)):
    for p, n in cases:
      ks = rng.binomial(n, p, size=2000)
      cover = np.mean([lo <= p <= hi for lo, hi in
                       (stats.proportion_interval(int(k), n, method=method) for k in ks)])
      assert cover > floor, (method, p, n, cover)


@pytest.mark.parametrize("k1,n1,k2,n2", [(56, 70, 48, 80), (9, 10, 3, 10), (0, 36, 5, 36),
                                         (4, 4, 0, 4), (100, 900, 90, 900)])
def test_newcombe_difference_matches_statsmodels(k1, n1, k2, n2):
  ours = stats.difference(k1, n1, k2, n2)
  ref = smp.confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff",
                                       alpha=0.05)
  np.testing.assert_allclose((ours["low"], ours["high"]), ref, atol=1e-9)
  assert ours["difference"] == pytest.approx(k1 / n1 - k2 / n2)


def test_proportion_cell_and_errors():
  cell = stats.proportion(3, 8)
  assert cell["rate"] == 0.375 and cell["n"] == 8 and cell["low"] < 0.375 < cell["high"]
  assert stats.format_rate(cell) == "37.5% [13.7, 69.4] (3/8)"
  empty = stats.proportion(0, 0)
  assert empty["rate"] is None and stats.format_rate(empty) == "-"
  assert stats.of(np.array([True, False, True, True]))["successes"] == 3
  with pytest.raises(ValueError, match="5"):
    stats.proportion(5, 4)
  with pytest.raises(ValueError, match="whole"):
    stats.proportion(1.5, 4)
  with pytest.raises(ValueError, match="method"):
    stats.proportion(1, 4, method="wald")
  with pytest.raises(ValueError, match="boolean"):
    stats.of(np.array([1, 0]))


def test_bootstrap_mean_agrees_with_t_interval_and_is_seeded():
  x = np.random.default_rng(1).normal(2.0, 1.0, size=400)
  b = stats.bootstrap(x, seed=3)
  t = scipy.stats.t.interval(0.95, df=x.size - 1, loc=x.mean(), scale=scipy.stats.sem(x))
  assert b["estimate"] == pytest.approx(x.mean())
  np.testing.assert_allclose((b["low"], b["high"]), t, atol=0.02)
  assert stats.bootstrap(x, seed=3) == b
  assert stats.bootstrap(x, seed=4) != b


def test_bootstrap_two_samples_and_degenerate_cases():
  a, b = np.arange(10.0), np.arange(10.0) + 5
  cell = stats.bootstrap((a, b), lambda u, v: v.mean() - u.mean(), seed=0)
  assert cell["estimate"] == pytest.approx(5.0) and cell["low"] < 5.0 < cell["high"]
  assert cell["n"] == [10, 10]
  const = stats.bootstrap(np.full(5, 0.25))
  assert const["low"] == const["high"] == 0.25
  single = stats.bootstrap(np.array([1.0]))
  assert single["estimate"] == 1.0 and single["low"] is None
  assert stats.bootstrap(np.array([]))["estimate"] is None
  with pytest.raises(ValueError, match="non-finite"):
    stats.bootstrap(np.array([1.0, np.nan]))


def test_judge_and_paper_mark():
  assert stats.judge(0.2, 0.4, above=0.1) == stats.HOLDS
  assert stats.judge(0.0, 0.05, above=0.1) == stats.CONTRADICTED
  assert stats.judge(0.05, 0.3, above=0.1) == stats.INCONCLUSIVE
  assert stats.judge(-0.3, -0.1, below=0.0) == stats.HOLDS
  assert stats.judge(0.1, 0.3, below=0.0) == stats.CONTRADICTED
  assert stats.judge(None, None, below=0.0) == stats.INCONCLUSIVE
  with pytest.raises(ValueError):
    stats.judge(0.1, 0.2)
  assert stats.paper_mark(0.097, 0.2, 0.35) == "outside"
  assert stats.paper_mark(0.25, 0.2, 0.35) == "inside"
  assert stats.beside_paper(stats.proportion(3, 8), 0.097) == "9.7% (outside)"


def test_spread():
  s = stats.spread([0.039, 0.045, 0.041])
  assert s["mean"] == pytest.approx(0.041666, rel=1e-4) and s["n"] == 3
  assert s["std"] == pytest.approx(np.std([0.039, 0.045, 0.041], ddof=1))
  assert stats.spread([1.0])["std"] is None
  assert stats.format_estimate(s) == "0.0417 ± 0.00306 (n=3)"
