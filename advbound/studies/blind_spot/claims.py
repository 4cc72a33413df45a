"""The blind-spot paper's claims, each with the test that checks it and its verdict
(advbound.stats): a list of {"claim", "test", "verdict", "detail"} rows, computed from the
score stage's cells (report.md prints them; results.json keeps them under "claims").

Regime: the paper's blind-spot effect is a rise of success over an untransformed baseline that
is low (9.7% on MNIST, 6.4% on Fashion-MNIST). Where the paper's baseline success lies outside
our interval, our transformed rows are not in the paper's regime, and comparing them with the
paper's numbers is `stats.OUT_OF_REGIME`; the effect itself is judged against our own baseline
(the difference of two rates, Newcombe's interval against 0).
"""

from __future__ import annotations

from advbound import stats

ACCURACY_MARGIN = 0.01  # "barely changes": no drop of more than one point
DETECTION_MARGIN = 0.1  # "cannot detect": detection AUC within 0.5 +- 0.1


def _row(claim: str, test: str, verdict: str, detail: str) -> dict:
  return dict(claim=claim, test=test, verdict=verdict, detail=detail)


def _both(low, high, lo: float, hi: float) -> str:
  """Verdict on "lo < quantity < hi" from its interval."""
  a, b = stats.judge(low, high, above=lo), stats.judge(low, high, below=hi)
  if stats.CONTRADICTED in (a, b):
    return stats.CONTRADICTED
  return stats.HOLDS if a == b == stats.HOLDS else stats.INCONCLUSIVE


def _diff_text(d: dict) -> str:
  if d["difference"] is None:
    return "nothing to compare"
  return "difference " + stats.format_difference(d)


def regime(baseline: dict, paper_success) -> dict:
  """Whether our untransformed success at epsilon (a proportion cell) covers the paper's:
  {"mark": inside / outside / -, "in_regime": bool, "why": text}."""
  mark = stats.paper_mark(paper_success, baseline.get("low"), baseline.get("high"))
  theirs = "-" if paper_success is None else f"{100 * paper_success:.1f}%"
  why = (f"our untransformed success {stats.format_rate(baseline)} "
         f"{'covers' if mark == 'inside' else 'does not cover'} the paper's {theirs}")
  return dict(mark=mark, in_regime=mark == "inside", why=why)


def evaluate(*, rows: dict, order: list, table1: dict, trend: dict, shifts: dict,
             paper_rows: dict, paper_table1: dict | None, histogram_key: str | None,
             permutation: dict | None = None) -> list:
  """The claims' rows. rows: score's scale_shift rows by pair key (order[0] untransformed);
  trend: figure1.trend by extractor; shifts: figure5 by extractor and pair key; paper_rows:
  {pair key: {"accuracy", "epsilon", "alpha_epsilon"}}; paper_table1: paper.TABLE1[dataset];
  permutation: split_divergence.permutation_mean_kl's result (None: no divergence claim)."""
  out = []
  base = rows[order[0]]
  paper_t1 = paper_table1 or {}
  reg = regime(base["epsilon"], paper_t1.get("success_rate"))
  if paper_t1.get("success_rate") is not None:
    out.append(_row(
        "our attacked model is in the paper's regime (Table 1's success on the test set)",
        "the paper's baseline success inside our 95% Wilson interval",
        stats.HOLDS if reg["in_regime"] else stats.OUT_OF_REGIME,
        reg["why"] + ("" if reg["in_regime"] else
                      "; so the transformed rows are not compared with the paper's numbers, "
                      "and the blind-spot effect is judged against our own baseline")))
  for key in order[1:]:
    r = rows[key]
    change = r.get("accuracy_change")
    if change is not None and change["estimate"] is not None:  # paired, per image
      out.append(_row(
          f"{key}: the transformation barely changes the accuracy",
          f"paired bootstrap 95% interval of accuracy(transformed) - accuracy(original) over "
          f"the same test images above -{100 * ACCURACY_MARGIN:g} point",
          stats.judge(change["low"], change["high"], above=-ACCURACY_MARGIN),
          f"change {100 * change['estimate']:+.2f} points [{100 * change['low']:+.2f}, "
          f"{100 * change['high']:+.2f}] (n={change['n']})"))
    else:
      acc_t, acc_0 = r["accuracy_cell"], base["accuracy_cell"]
      d = stats.difference_of(acc_t, acc_0)
      out.append(_row(
          f"{key}: the transformation barely changes the accuracy",
          f"Newcombe 95% interval of accuracy(transformed) - accuracy(original) above "
          f"-{100 * ACCURACY_MARGIN:g} point (unpaired: conservative for the same images)",
          stats.judge(d["low"], d["high"], above=-ACCURACY_MARGIN), _diff_text(d)))
    for thr, name in (("epsilon", "epsilon"), ("alpha_epsilon", "alpha * epsilon")):
      t, b0 = r[thr], base["epsilon"]
      d = stats.difference_of(t, b0)
      out.append(_row(
          f"{key}: success within {name} rises above the untransformed success within epsilon",
          "Newcombe 95% interval of the difference of the two rates above 0",
          stats.judge(d["low"], d["high"], above=0.0), _diff_text(d)))
    ref = paper_rows.get(key)
    if ref:
      if paper_t1.get("success_rate") is not None and not reg["in_regime"]:
        verdict, detail = stats.OUT_OF_REGIME, reg["why"]
      else:
        marks = [stats.paper_mark(ref[k], r[k]["low"], r[k]["high"])
                 for k in ("epsilon", "alpha_epsilon")]
        verdict = (stats.HOLDS if all(m == "inside" for m in marks) else
                   stats.CONTRADICTED if "outside" in marks else stats.INCONCLUSIVE)
        detail = f"the paper's rates {ref['epsilon']:.1%} / {ref['alpha_epsilon']:.1%}: {marks}"
      out.append(_row(f"{key}: success rates as the paper's (Tables 2-3)",
                      "the paper's two rates inside our 95% Wilson intervals", verdict, detail))
  for m, tr in trend.items():
    ci = tr["auc_ci"]
    out.append(_row(
        f"success grows with the distance to the training set ({m} extractor, Figures 1-3)",
        "bootstrap 95% interval of the AUC of distance separating successes from failures "
        "above 0.5", stats.judge(ci["low"], ci["high"], above=0.5),
        f"AUC {stats.format_estimate(ci)}"))
  for m, by_pair in shifts.items():
    for key in ([histogram_key] if histogram_key in by_pair else []):
      ci = by_pair[key]["detection_auc_ci"]
      out.append(_row(
          f"{key}: the distance to the training set cannot detect the transformed inputs "
          f"({m} extractor, Figure 5)",
          f"bootstrap 95% interval of the detection AUC inside 0.5 +- {DETECTION_MARGIN:g}",
          _both(ci["low"], ci["high"], 0.5 - DETECTION_MARGIN, 0.5 + DETECTION_MARGIN),
          f"AUC {stats.format_estimate(ci)}"))
  if permutation is not None:
    p = permutation["p_value"]
    out.append(_row(
        "the training and test embeddings differ: KL(train || test) above its "
        "same-distribution floor (Table 1)",
        f"permutation test ({permutation['permutations']} permutations of the train / test "
        "labels within each class of the first t-SNE map), p < 0.05",
        stats.HOLDS if p < 0.05 else stats.INCONCLUSIVE,
        f"KL {permutation['observed']:.4f}, floor {stats.format_estimate(permutation['null'])},"
        f" p = {p:.3g}"))
  out.append(_row(
      "the data set with the lower KL(train || test) has the lower success (Table 1)",
      "across data sets: compare the reports of runs with the same divergence counts",
      stats.NOT_RUN, "one data set per run"))
  return out
