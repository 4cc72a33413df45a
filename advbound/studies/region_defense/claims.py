"""Cao & Gong's claims, each checked by a stated test on our cells (`advbound.stats`).

Every claim is {"id", "claim", "test", "verdict", "evidence"}: verdict "holds" / "contradicted"
/ "inconclusive at this sample size" from `stats.judge` on an interval (a Newcombe interval of a
difference of two rates, or one rate's Wilson interval against the paper's threshold),
`stats.BY_CONSTRUCTION` where our protocol makes the claim true whatever the data, or
`stats.NOT_RUN` where its cells were not computed, or `stats.OUT_OF_REGIME` where a claim about
region classification rests on an attack that does not reach the paper's success on our point
classifier (the paper's point-row rate lies outside our interval: the attack is weaker or
stronger than theirs, so what the region classifier does with its examples is not comparable;
for the high-confidence sweep, where the paper's point classifier is fooled at every kappa: our
point success below 90%). A region-row rate enters as its "per_query"
cell (the mean over the noise draws, with the interval of one query per example: the
conservative one; `protocol.rates`).

Rates of two classifiers on the same examples are paired; Newcombe's interval treats them as
independent, which makes it wider (conservative), never narrower.
"""

from __future__ import annotations

from advbound import stats
from advbound.studies.region_defense import paper

CW = ("T-CW-L0", "T-CW-Linf", "T-CW-L2")
BASELINES = ("adversarial_training", "distillation")


def judged(cell: dict | None) -> dict | None:
  """The proportion a claim or the paper's mark is judged on: a region cell's "per_query"
  interval, otherwise the cell itself."""
  if cell is None:
    return None
  return cell.get("per_query", cell)


def _diff(a: dict, b: dict) -> dict:
  return stats.difference_of(judged(a), judged(b))


def _pct(v) -> str:
  return "-" if v is None else f"{100 * v:.1f}"


def _show_diff(d: dict) -> str:
  return "difference " + stats.format_difference(d, signed=False)


def _claim(cid, claim, test, verdict, evidence) -> dict:
  return {"id": cid, "claim": claim, "test": test, "verdict": verdict, "evidence": evidence}


def _lower(cid, claim, a, b, name_a, name_b, note: str = "") -> dict:
  """Claim "rate a < rate b"."""
  test = f"Newcombe 95% interval of {name_a} - {name_b} success lies below 0{note}"
  if a is None or b is None or not judged(a)["n"] or not judged(b)["n"]:
    return _claim(cid, claim, test, stats.NOT_RUN, "cells not computed")
  d = _diff(a, b)
  return _claim(cid, claim, test, stats.judge(d["low"], d["high"], below=0.0),
                f"{name_a} {stats.format_rate(judged(a))}, {name_b} "
                f"{stats.format_rate(judged(b))}; {_show_diff(d)}")


def _threshold(cid, claim, cell, name, *, above=None, below=None) -> dict:
  side = f"above {_pct(above)}%" if above is not None else f"below {_pct(below)}%"
  test = f"Wilson 95% interval of {name} success lies {side}"
  if cell is None or not judged(cell)["n"]:
    return _claim(cid, claim, test, stats.NOT_RUN, "cell not computed")
  c = judged(cell)
  return _claim(cid, claim, test, stats.judge(c["low"], c["high"], above=above, below=below),
                f"{name} {stats.format_rate(c)}")


def _regime(ds: str, table: str, cell: dict | None, attack: str) -> str | None:
  """Why `attack`'s point-row `cell` is out of the paper's regime, or None (in regime, or
  nothing to compare)."""
  theirs = getattr(paper, table.upper()).get(ds, {}).get("point", {}).get(attack)
  if cell is None or theirs is None or not cell.get("n"):
    return None
  if stats.paper_mark(theirs[0], cell["low"], cell["high"]) == "outside":
    return (f"our point classifier's {attack} success {stats.format_rate(cell)} excludes the "
            f"paper's {_pct(theirs[0])}%")
  return None


def _out(c: dict, why: str | None) -> dict:
  if why:
    c = dict(c, verdict=stats.OUT_OF_REGIME, evidence=f"{why}; {c['evidence']}")
  return c


def check(ds: str, table3: dict, scored: dict) -> list[dict]:
  """Every checked claim of the paper on data set `ds`.

  Args:
    table3: {row: proportion cell} of the test accuracies.
    scored: {"table4", "table5", "table6", "figure6", "figure7", "figure8"} of
      `tables.compute` (rows "point", "adversarial_training", "distillation", "region").
  """
  t4, t5, t6 = scored["table4"], scored["table5"], scored["table6"]
  out = []
  # Table 3
  if "region" in table3 and "point" in table3:
    r, p = judged(table3["region"]), table3["point"]
    d = stats.difference_of(r, p)
    out.append(_claim(
        "accuracy-kept", "Region classification keeps the point classifier's clean accuracy "
        "(Table 3)", "Newcombe 95% interval of region - point test accuracy lies above -1 "
        "point (Algorithm 1 chose r so that this held on the validation images: there it is "
        "by construction, on the test images it is evidence)",
        stats.judge(d["low"], d["high"], above=-0.01),
        f"region {stats.format_rate(r)}, point {stats.format_rate(p)}; {_show_diff(d)}"))
  for b in BASELINES:
    if b in table3 and "point" in table3:
      p, c = table3["point"], table3[b]
      d = stats.difference_of(p, c)
      out.append(_claim(
          f"accuracy-lost-{b}", f"{paper.ROW_NAMES[b]} sacrifices clean accuracy (Table 3)",
          f"Newcombe 95% interval of point - {b} test accuracy lies above 0",
          stats.judge(d["low"], d["high"], above=0.0),
          f"point {stats.format_rate(p)}, {b} {stats.format_rate(c)}; {_show_diff(d)}"))
  # Table 4: region lowers every targeted attack; the CW attacks below the paper's bound
  point, region = t4.get("point", {}), t4.get("region", {})
  regime = {a: _regime(ds, "table4", point.get(a), a) for a in point}
  for a in region:
    out.append(_out(_lower(
        f"lower-{a}", f"{a} succeeds less often against region classification than against "
        "the point classifier (Table 4)", region.get(a), point.get(a), "region", "point",
        note="; region <= point holds by construction (a region example must first fool the "
        "point classifier), so this tests a strict decrease"), regime.get(a)))
  bound = {"mnist": 0.20, "cifar10": 0.07}.get(ds)
  if bound is not None:
    for a in CW:
      out.append(_out(_threshold(
          f"bound-{a}", f"{a} succeeds on less than {_pct(bound)}% against region "
          "classification (abstract)", region.get(a), "region", below=bound), regime.get(a)))
  for row in ("point",) + BASELINES:
    for a in CW:
      if a in t4.get(row, {}) and t4[row][a] is not None:
        out.append(_threshold(
            f"cw-{row}-{a}", f"{a} achieves 100% against {paper.ROW_NAMES[row]} (abstract; "
            "tested as at least 90%)", t4[row][a], row, above=0.9))
  # smaller noise on the point classifier, lower success against region (Section 6.3.1)
  for small, large in (("T-CW-L0", "T-JSMA"), ("T-IGSM", "T-FGSM")):
    out.append(_out(_lower(
        f"noise-order-{small}", f"The attack with less noise on the point classifier ({small}"
        f" vs {large} in the paper) succeeds less often against region classification",
        region.get(small), region.get(large), small, large),
        regime.get(small) or regime.get(large)))
  # untargeted from targeted (Table 5)
  out.append(_claim(
      "untargeted-higher", "Untargeted versions succeed more often than the targeted ones "
      "(Table 5)", "none needed", stats.BY_CONSTRUCTION,
      "U-X keeps per image the best of the same 9 T-X examples at the same noise draws, so an "
      "image's U-X success is at least the fraction of its T-X pairs that succeed"))
  # high confidence (Figure 6)
  f6 = scored["figure6"].get("region") or {}
  f6_point = scored["figure6"].get("point") or {}

  def weak(*kappas):
    """Why the sweep is out of regime at these kappas (point success below 90%), or None."""
    for k in kappas:
      c = f6_point.get(k)
      if c is not None and c.get("n") and c["high"] < 0.9:
        return (f"our point classifier's T-CW-L2 success at kappa {k} is "
                f"{stats.format_rate(c)} (the paper's is fooled at every kappa)")
    return None

  if f6:
    ks = sorted(f6, key=float)
    lo, hi = f6[ks[0]], f6[ks[-1]]
    out.append(_out(_lower(
        "kappa-rises", f"High-confidence T-CW-L2 succeeds more often against region "
        f"classification at larger kappa (Figure 6; kappa {ks[-1]} vs {ks[0]})",
        lo, hi, f"kappa {ks[0]}", f"kappa {ks[-1]}"), weak(ks[0], ks[-1])))
    n0, nk = (lo or {}).get("noise_ci"), (hi or {}).get("noise_ci")
    test = (f"bootstrap 95% intervals of the mean L2 noise at kappa {ks[-1]} and {ks[0]} are "
            "disjoint")
    if n0 and nk and n0["low"] is not None and nk["low"] is not None:
      verdict = (stats.HOLDS if nk["low"] > n0["high"] else stats.CONTRADICTED
                 if nk["high"] < n0["low"] else stats.INCONCLUSIVE)
      evidence = (f"kappa {ks[-1]}: {stats.format_estimate(nk)}; kappa {ks[0]}: "
                  f"{stats.format_estimate(n0)}")
    else:
      verdict, evidence = stats.INCONCLUSIVE, "too few successful examples for an interval"
    out.append(_out(_claim("kappa-noise", "Its success against region classification costs "
                           "more noise (Figure 6)", test, verdict, evidence),
                    weak(ks[0], ks[-1])))
    if ds == "mnist":
      at20 = f6.get("20")
      out.append(_out(_threshold(
          "kappa-20", "High-confidence T-CW-L2 reaches 100% against region classification at "
          "kappa about 20 (Figure 6; tested as at least 90%)", at20, "kappa 20", above=0.9),
          weak("20")))
  # adapted attacks (Figure 8)
  for name, series in (scored.get("figure8") or {}).items():
    if not series:
      continue
    alphas = sorted(series, key=float)
    peak = max(alphas, key=lambda a: series[a]["success_rate"] or 0.0)
    c = judged(series[peak])
    why = regime.get(name[:-2])  # the attack the -A examples amplify
    out.append(_out(_claim(
        f"adapted-below-100-{name}", f"{name} never reaches 100% against region "
        "classification (Figure 8)", "Wilson 95% interval at the best alpha lies below 100% "
        "(the best alpha is chosen on the same data, which favours the claim's opposite)",
        stats.judge(c["low"], c["high"], below=1.0) if c["n"] else stats.NOT_RUN,
        f"alpha {peak}: {stats.format_rate(c)}"), why))
    rise = _lower("", "", series[alphas[0]], series[peak], f"alpha {alphas[0]}",
                  f"alpha {peak}")
    fall = _lower("", "", series[alphas[-1]], series[peak], f"alpha {alphas[-1]}",
                  f"alpha {peak}")
    verdicts = (rise["verdict"], fall["verdict"])
    verdict = (stats.HOLDS if verdicts == (stats.HOLDS,) * 2 else stats.CONTRADICTED
               if stats.CONTRADICTED in verdicts else stats.INCONCLUSIVE)
    out.append(_out(_claim(
        f"adapted-rise-fall-{name}", f"{name}'s success first rises then falls with alpha "
        "(Figure 8)", f"Newcombe intervals of success at alpha {alphas[0]} minus at the best "
        f"alpha, and at alpha {alphas[-1]} minus at the best alpha, both lie below 0 (best "
        "alpha chosen on the same data: optimistic)", verdict,
        f"rise: {rise['evidence']}; fall: {fall['evidence']}"), why))
  # combined attacks (Table 6)
  for ca in ("T-CA-L0", "T-CA-Linf"):
    for row in ("point",) + BASELINES:
      if row in t6 and t6[row].get(ca) is not None:
        out.append(_out(_lower(
            f"combined-{ca}-{row}", f"{ca} succeeds less often against region classification "
            f"than against {paper.ROW_NAMES[row]} (Table 6)",
            t6.get("region", {}).get(ca), t6[row][ca], "region", row),
            _regime(ds, "table6", t6.get("point", {}).get(ca), ca)))
  for ca in ("U-CA-L0", "U-CA-Linf", "U-CA-L2"):
    out.append(_threshold(
        f"combined-{ca}-high", f"{ca} still achieves a high success rate against region "
        "classification (Table 6; tested as above 50%)", t6.get("region", {}).get(ca),
        "region", above=0.5))
  del t5
  return out
