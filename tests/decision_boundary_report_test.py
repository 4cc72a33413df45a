"""He et al.'s report: intervals of the detection rates and the verdicts on the paper's claims,
checked on hand-made counts against statsmodels' intervals and the verdict rule."""

import pytest

from advbound import stats
from advbound.studies.decision_boundary import pipeline, report

smp = pytest.importorskip("statsmodels.stats.proportion")


def test_worst_case_interval_bonferroni_of_wilson():
  fp, fn = stats.proportion(3, 40), stats.proportion(10, 40)
  cell = pipeline.worst_case_interval(fp, fn)
  fpl, fph = smp.proportion_confint(3, 40, alpha=0.025, method="wilson")
  fnl, fnh = smp.proportion_confint(10, 40, alpha=0.025, method="wilson")
  assert cell["estimate"] == pytest.approx(0.75)
  assert cell["low"] == pytest.approx(1 - max(fph, fnh))
  assert cell["high"] == pytest.approx(1 - max(fpl, fnl))
  empty = pipeline.worst_case_interval(fp, stats.proportion(0, 0))
  assert empty["estimate"] is None


def _results(region_counts, n, fn_counts=None, fn_n=50):
  cells = {"region": {a: stats.proportion(k, n) for a, k in region_counts.items()},
           "point": {a: stats.proportion(0, n) for a in region_counts}}
  table3 = {"natural": {}}
  if fn_counts:
    table3["natural"]["optbrittle"] = {"cells": {
        "false_negative": {a: stats.proportion(k, fn_n) for a, k in fn_counts.items()},
        "worst_case_accuracy": {"estimate": None}}}
  return {"region": {"table2_cells": {"natural": cells}}, "detect": {"table3": table3}}


def test_claims_verdicts_follow_the_intervals():
  # 95/100 recovered OPTBRITTLE, 3/100 OPTMARGIN: both claims hold, the difference too
  rows = report.claims(_results({"optbrittle": 95, "optmargin": 3}, 100), "mnist")
  by = {r["claim"]: r for r in rows}
  verdicts = [r["verdict"] for r in rows]
  assert verdicts.count(stats.HOLDS) == 3
  assert verdicts.count(stats.BY_CONSTRUCTION) == 1  # point misclassification of successes
  assert any("(inside)" in r["paper"] for r in by.values())  # paper's 95% inside [89, 98]
  # 2/4 and 1/4: nothing can be told apart at n = 4
  rows = report.claims(_results({"optbrittle": 2, "optmargin": 1}, 4), "mnist")
  assert [r["verdict"] for r in rows if r["verdict"] != stats.BY_CONSTRUCTION] == [
      stats.INCONCLUSIVE] * 3
  # each OPTMARGIN objective the run attacked with is judged on its own
  rows = report.claims(_results({"optbrittle": 95, "optmargin": 60, "optmargin_released": 2},
                                100), "mnist")
  evade = {r["claim"]: r["verdict"] for r in rows if "evade" in r["claim"]}
  assert evade == {"OPTMARGIN examples evade region classification (region accuracy < 50%)":
                   stats.CONTRADICTED,
                   "OPTMARGIN (released objective) examples evade region classification "
                   "(region accuracy < 50%)": stats.HOLDS}
  # region accuracy 10/100 on OPTBRITTLE: the claim that it recovers them is contradicted
  rows = report.claims(_results({"optbrittle": 10, "optmargin": 12}, 100), "mnist")
  assert rows[0]["verdict"] == stats.CONTRADICTED


def test_claim_on_detector_generalisation():
  rows = report.claims(_results({}, 100, fn_counts={"optbrittle": 1, "optmargin": 37}),
                       "mnist")
  (row,) = [r for r in rows if "misses OPTMARGIN" in r["claim"]]
  assert row["verdict"] == stats.HOLDS
  rows = report.claims(_results({}, 100, fn_counts={"optbrittle": 20, "optmargin": 22}),
                       "mnist")
  (row,) = [r for r in rows if "misses OPTMARGIN" in r["claim"]]
  assert row["verdict"] == stats.INCONCLUSIVE


def test_rescored_tables_of_an_older_results_json():
  old = {"dataset": "mnist", "num_images": 100, "table_images": None,
         "table1": {"natural": {"optbrittle": {"success_rate": 0.69, "rms": 0.1}}},
         "table2": {"natural": {c: {"benign": 0.99, "optbrittle": 0.02}
                                for c in ("point", "region", "region_learned")}}}
  md = report.rescored_tables(old)
  low, high = smp.proportion_confint(69, 100, alpha=0.05, method="wilson")
  assert f"69.0% [{100 * low:.1f}, {100 * high:.1f}] (69/100)" in md
  assert "| 100.0% (outside) |" in md  # the paper's 100% OPTBRITTLE success, outside [59, 77]
  assert "2.0% [0.6, 7.0] (2/100)" in md


def test_claim_boundary_classifier_beats_region_classification():
  results = _results({"optbrittle": 95, "optmargin": 2}, 100)
  fp, fn = stats.proportion(1, 40), stats.proportion(3, 40)
  results["detect"]["table3"]["natural"]["optmargin"] = {"cells": {
      "false_negative": {"optmargin": fn},
      "worst_case_accuracy": pipeline.worst_case_interval(fp, fn)}}
  (row,) = [r for r in report.claims(results, "mnist") if "better than region" in r["claim"]]
  assert row["verdict"] == stats.HOLDS  # [~77, ~99] against [0.6, 7.0]
  assert row["paper"] == "90.4% vs 1.0%"
  fp, fn = stats.proportion(8, 16), stats.proportion(8, 16)
  results["detect"]["table3"]["natural"]["optmargin"]["cells"]["worst_case_accuracy"] = (
      pipeline.worst_case_interval(fp, fn))
  results["region"]["table2_cells"]["natural"]["region"]["optmargin"] = stats.proportion(40, 100)
  (row,) = [r for r in report.claims(results, "mnist") if "better than region" in r["claim"]]
  assert row["verdict"] == stats.INCONCLUSIVE
