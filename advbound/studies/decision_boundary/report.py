"""The pipeline's report: `DIR/results.json` (stable keys for other tools) and `DIR/report.md`
(Tables 1-4 in the paper's layout with the paper's numbers beside ours, figures, settings,
timings per stage, software versions)."""

from __future__ import annotations

import os

from advbound import stats
from advbound.runtime import io, stages
from advbound.runtime.stages import versions
from advbound.studies import variants as variants_lib
from advbound.studies.decision_boundary import settings
from advbound.studies.decision_boundary.attack_study import PAPER_TABLE1, format_table1
from advbound.studies.decision_boundary.region_study import PAPER_TABLE2, format_table2

# He et al., Table 3: (false positive, {attack: false negative}); worst case = 1 - max(FP, FN).
PAPER_TABLE3 = {
    "mnist": {"natural": {"optbrittle": (0.010, {"optbrittle": 0.010, "optmargin": 0.741}),
                          "optmargin": (0.096, {"optbrittle": 0.006, "optmargin": 0.072})},
              "adversarial": {"optbrittle": (0.026, {"optbrittle": 0.020, "optmargin": 0.398}),
                              "optmargin": (0.103, {"optbrittle": 0.004, "optmargin": 0.145})}},
    "cifar10": {"natural": {"optbrittle": (0.053, {"optbrittle": 0.032, "optmargin": 0.568}),
                            "optmargin": (0.084, {"optbrittle": 0.074, "optmargin": 0.053})},
                "adversarial": {"optbrittle": (0.000, {"optbrittle": 0.024, "optmargin": 0.518}),
                                "optmargin": (0.036, {"optbrittle": 0.000,
                                                      "optmargin": 0.012})}},
}
# He et al., Table 4 (normal training): FGSM, (false positive, false negative).
PAPER_TABLE4 = {"mnist": (0.070, 0.128), "cifar10": (0.200, 0.329)}
# The models the paper attacked: Madry et al.'s released CIFAR-10 WRN-32-10s (their paper's
# Table: natural 95.2%; adversarial 87.3% clean, 45.8% under PGD-20 at epsilon 8).
PAPER_MODELS = {"cifar10": {"natural": "95.2% / -", "adversarial": "87.3% / 45.8% (PGD-20)"}}


def _pct(v) -> str:
  return "-" if v is None else f"{100 * v:.1f}%"


def _fraction(rate, n) -> dict:
  """A `stats.proportion` cell of a stored rate over n inputs (rate = k / n exactly)."""
  if rate is None or not n:
    return stats.proportion(0, 0)
  return stats.proportion(int(round(rate * n)), int(n))


def _wc(cell) -> str:
  if cell is None or cell["estimate"] is None:
    return "-"
  return f"{_pct(cell['estimate'])} [{100 * cell['low']:.1f}, {100 * cell['high']:.1f}]"


def format_table3(detect_result: dict, dataset: str) -> str:
  """Table 3 with each FP / FN rate's 95% Wilson interval and count, the worst-case accuracy's
  95% interval, and the paper's numbers marked inside / outside our interval."""
  paper = PAPER_TABLE3.get(dataset, {})
  attacks = []
  for rows in detect_result["table3"].values():
    for r in rows.values():
      attacks += [a for a in r.get("false_negative", {}) if a not in attacks]
  head = ["model", "training attack", "FP benign: ours", "paper"]
  for a in attacks:
    head += [f"FN {a}: ours", "paper"]
  head += ["worst-case accuracy: ours", "paper", "region cls. accuracy (Cao & Gong): ours"]
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  for v, rows in detect_result["table3"].items():
    for attack, r in rows.items():
      p = paper.get(v, {}).get(attack.replace("_released", ""))
      cells_r = r.get("cells", {})
      fp = cells_r.get("false_positive")
      cells = [v, attack, stats.format_rate(fp), stats.beside_paper(fp, p[0]) if p else "-"]
      for a in attacks:
        pa = p[1].get(a.replace("_released", "")) if p else None
        fn = cells_r.get("false_negative", {}).get(a)
        cells += [stats.format_rate(fn), stats.beside_paper(fn, pa)]
      paper_acc = 1 - max(p[0], p[1][attack.replace("_released", "")]) if p else None
      wc = cells_r.get("worst_case_accuracy")
      cells += [_wc(wc), stats.beside_paper(wc, paper_acc), _pct(r.get("region_accuracy"))]
      if r.get("skipped"):
        cells[2] = f"skipped: {r['skipped']}"
      lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Rates [95% Wilson interval] (count/inputs); worst-case accuracy 1 - max(FP, FN) "
            "[95% interval: both rates' 97.5% intervals, Bonferroni]. The paper's numbers are "
            "marked inside / outside our interval."]
  return "\n".join(lines) + "\n"


def format_table4(detect_result: dict, dataset: str) -> str:
  p = PAPER_TABLE4.get(dataset)
  lines = ["| model | FP: ours | paper | FN: ours | paper |", "|---" * 5 + "|"]
  for v, r in detect_result["table4"].items():
    cells_r = r.get("cells", {})
    fp, fn = cells_r.get("false_positive"), cells_r.get("false_negative", {}).get("fgsm")
    theirs = p if p and v == "natural" else (None, None)
    lines.append(f"| {v} | {stats.format_rate(fp)} | {stats.beside_paper(fp, theirs[0])} | "
                 f"{stats.format_rate(fn)} | {stats.beside_paper(fn, theirs[1])} |")
  return "\n".join(lines) + "\n"


# The OPTMARGIN variants a claim is checked on: the objective as the paper's text states it,
# and the one the authors' released code ran (README of the papers).
_OPTMARGINS = {"optmargin": "OPTMARGIN", "optmargin_released": "OPTMARGIN (released objective)"}


def claims(results: dict, dataset: str) -> list[dict]:
  """He et al.'s central claims, each judged on our intervals by a stated test.

  Returns [{"claim", "model", "test", "ours", "paper", "verdict"}]. A claim holds when its whole
  95% interval lies on the claim's side, is contradicted when the whole interval lies on the
  other side, and is inconclusive at this sample size otherwise (`stats.judge`). Claims on
  OPTMARGIN are checked for each of its objectives that the run attacked with.
  """
  out = []
  t2 = results["region"].get("table2_cells", {})
  p2 = PAPER_TABLE2.get(dataset, {})
  for v, cells in t2.items():
    region = cells["region"]
    paper = p2.get(v, {}).get("region", {})
    c = region.get("optbrittle")
    if c is not None:
      out.append({"claim": "region classification recovers the true class of most OPTBRITTLE "
                           "examples (accuracy > 50%)", "model": v,
                  "test": "95% Wilson interval of region accuracy above 0.5",
                  "ours": stats.format_rate(c),
                  "paper": stats.beside_paper(c, paper.get("optbrittle")),
                  "verdict": stats.judge(c["low"], c["high"], above=0.5)})
    for m, name in _OPTMARGINS.items():
      a = region.get(m)
      if a is None:
        continue
      out.append({"claim": f"{name} examples evade region classification (region accuracy "
                           "< 50%)", "model": v,
                  "test": "95% Wilson interval of region accuracy below 0.5",
                  "ours": stats.format_rate(a),
                  "paper": stats.beside_paper(a, paper.get("optmargin")),
                  "verdict": stats.judge(a["low"], a["high"], below=0.5)})
      if c is not None:
        d = stats.difference_of(a, c)
        out.append({"claim": f"region accuracy is lower on {name} than on OPTBRITTLE",
                    "model": v, "test": "95% Newcombe interval of the difference below 0",
                    "ours": stats.format_difference(d),
                    "paper": "-" if not paper else
                             f"{100 * (paper['optmargin'] - paper['optbrittle']):+.0f} points",
                    "verdict": stats.judge(d["low"], d["high"], below=0.0)})
    point = cells["point"]
    fooled = [f"{k} {point[k]['successes']}/{point[k]['n']}"
              for k in ("optbrittle", *_OPTMARGINS) if k in point]
    if fooled:
      out.append({"claim": "the point classifier is fooled by OPTBRITTLE and OPTMARGIN",
                  "model": v, "test": "none: an attack counts as successful only where the "
                                      "point classifier misclassifies its example",
                  "ours": "point accuracy " + ", ".join(fooled), "paper": "0%",
                  "verdict": stats.BY_CONSTRUCTION})
  for v, rows in results["detect"]["table3"].items():
    r = rows.get("optbrittle", {}).get("cells")
    for m, name in _OPTMARGINS.items():
      if r and m in r["false_negative"] and "optbrittle" in r["false_negative"]:
        a, b = r["false_negative"][m], r["false_negative"]["optbrittle"]
        d = stats.difference_of(a, b)
        if d["difference"] is not None:
          out.append({"claim": f"a boundary classifier trained on OPTBRITTLE misses {name} "
                               "examples more often than OPTBRITTLE ones",
                      "model": v, "test": f"95% Newcombe interval of FN({m}) - "
                                          "FN(optbrittle) above 0",
                      "ours": stats.format_difference(d), "paper": "-",
                      "verdict": stats.judge(d["low"], d["high"], above=0.0)})
    for m, name in _OPTMARGINS.items():
      r = rows.get(m, {}).get("cells")
      if r and r["worst_case_accuracy"]["estimate"] is not None:
        wc = r["worst_case_accuracy"]
        out.append({"claim": f"a boundary classifier trained on {name} tells its examples "
                             "from benign inputs better than chance (worst-case accuracy > 50%)",
                    "model": v, "test": "95% interval of 1 - max(FP, FN) above 0.5",
                    "ours": _wc(wc), "paper": "-", "verdict": stats.judge(
                        wc["low"], wc["high"], above=0.5)})
        rc = t2.get(v, {}).get("region", {}).get(m)
        if rc is not None:
          # the two intervals must not overlap (a conservative test: each is 95%)
          verdict = (stats.HOLDS if wc["low"] > rc["high"] else
                     stats.CONTRADICTED if wc["high"] < rc["low"] else stats.INCONCLUSIVE)
          paper_t3 = PAPER_TABLE3.get(dataset, {}).get(v, {}).get("optmargin")
          paper_text = "-" if paper_t3 is None or "region" not in p2.get(v, {}) else (
              f"{_pct(1 - max(paper_t3[0], paper_t3[1]['optmargin']))} vs "
              f"{_pct(p2[v]['region']['optmargin'])}")
          out.append({"claim": f"the boundary classifier detects {name} examples better than "
                               "region classification classifies them", "model": v,
                      "test": "the 95% interval of its worst-case accuracy lies wholly above "
                              "that of region accuracy on the same attack (no overlap)",
                      "ours": f"{_wc(wc)} vs {stats.format_rate(rc)}", "paper": paper_text,
                      "verdict": verdict})
  return out


def format_claims(rows: list[dict]) -> str:
  lines = ["| claim | model | test | ours | paper | verdict |", "|---" * 6 + "|"]
  lines += [f"| {r['claim']} | {r['model']} | {r['test']} | {r['ours']} | {r['paper']} | "
            f"{r['verdict']} |" for r in rows]
  return "\n".join(lines) + "\n"


def write(config, workdir: str, results: dict, timings: dict) -> dict:
  """Writes results.json and report.md from the stage results; returns results.json's dict."""
  attacks, region, bnd, det = (results["attacks"], results["region"], results["boundary"],
                               results["detect"])
  dataset = attacks["dataset"]
  table1 = {v: {a: {k: r.get(k) for k in ("success_rate", "rms", "rms_interval", "successes",
                                           "n", "low", "high", "confidence", "method")}
                for a, r in rows.items()}
            for v, rows in attacks["table1"].items()}
  table2 = {v: {c: dict(rows) for c, rows in t.items()} for v, t in region["table2"].items()}
  table3 = {v: {a: {"false_positive": r["false_positive"],
                    "false_negative": r["false_negative"],
                    "worst_case_accuracy": r["worst_case_accuracy"],
                    "region_accuracy": r.get("region_accuracy")} for a, r in rows.items()}
            for v, rows in det["table3"].items()}
  for v, rows in det["table3"].items():
    for a, r in rows.items():
      table3[v][a]["cells"] = r.get("cells")
  table4 = {v: {"false_positive": r["false_positive"],
                "false_negative": r["false_negative"].get("fgsm"), "cells": r.get("cells")}
            for v, r in det["table4"].items()}
  out = {
      "dataset": dataset,
      "table1": table1, "table2": table2, "table3": table3, "table4": table4,
      "table2_cells": region.get("table2_cells"),
      "claims": claims(results, dataset),
      "paper": {"table1": PAPER_TABLE1.get(dataset), "table2": PAPER_TABLE2.get(dataset),
                "table3": PAPER_TABLE3.get(dataset), "table4": PAPER_TABLE4.get(dataset)},
      "models": results["train"],
      "model_cells": {v: {"test_accuracy": _fraction(m["test_accuracy"], m["test_examples"]),
                          "pgd_accuracy": _fraction(m["pgd_accuracy"], m["pgd_examples"])}
                      for v, m in results["train"].items()},
      "radius": region["radius"],
      "certified": region["certified"],
      "boundary_summary": bnd["summary"],
      "figures": bnd["figures"] + sorted(
          os.path.join("region", "figures", f)
          for f in os.listdir(os.path.join(workdir, "region", "figures"))),
      "num_images": attacks["num_images"],
      "table_images": attacks.get("table_images", attacks["num_images"]),
      "detect_split": {"train": det["train_inputs"], "test": det["test_inputs"]},
      "seconds": timings,
      "settings": config.to_dict(),
      "versions": versions(),
  }
  io.write_json(os.path.join(workdir, "results.json"), out)
  md = [f"# He et al. (ICLR 2018) reproduced on {dataset}", "",
        _images_line(out["table_images"], out["num_images"]) + "Settings under \"Settings\" below. "
        + settings.Config.of(config).note, "",
        "## Models", "", "| model | architecture | test accuracy | PGD accuracy | paper's "
        "model (Madry et al.): clean / PGD |", "|---|---|---|---|---|"]
  pgd = config.eval.pgd
  for v, m in results["train"].items():
    stop = m.get("guard", {}).get("stopped_at")
    note = f"; stopped by the overfitting guard at step {stop}" if stop is not None else ""
    cells = out["model_cells"][v]
    arch = m["source"] if m.get("imported") else variants_lib.variant_model(config, v).name
    md.append(f"| {v} | {arch}{note} | "
              f"{stats.format_rate(cells['test_accuracy'])} | "
              f"{stats.format_rate(cells['pgd_accuracy'])} | "
              f"{PAPER_MODELS.get(dataset, {}).get(v, '-')} |")
  md += ["", f"PGD: epsilon {pgd.epsilon:g}, {pgd.num_steps} steps of {pgd.step_size:g}"
         f"{', random start' if pgd.random_start else ''}"
         + ("; imported models: their own models.<variant>.eval (below)."
            if any(variants_lib.is_imported(config, v) for v in results["train"]) else ".")]
  md += [""] + variants_lib.source_lines(config, workdir)
  md += ["", "## Table 1: attacks", "", format_table1(attacks),
         "## Table 2: point and region classification", "", format_table2(region),
         "## Table 3: boundary classifier (false positive / negative rates)", "",
         f"Trained on the first {det['train_inputs']} attacked images, tested on the other "
         f"{det['test_inputs']}.", "", format_table3(det, dataset),
         "## Table 4: boundary classifier on FGSM", "", format_table4(det, dataset),
         "## The paper's claims, judged on this run", "",
         "Each claim's test is stated; a verdict is \"holds\" or \"contradicted\" only when "
         "the whole 95% interval lies on one side, else \"inconclusive at this sample size\".",
         "", format_claims(out["claims"]),
         "## Figures", ""]
  md += [f"![{f}]({f})" for f in out["figures"]] + [""]
  stages.write_report(workdir, md, timings=timings, versions=out["versions"],
                      settings=out["settings"])
  return out


def _images_line(table: int, attacked: int) -> str:
  if table == attacked:
    return f"{attacked} attacked test images. "
  return (f"{attacked} attacked test images: Tables 1 and 2 report on the first {table}, the "
          f"boundary classifier (Tables 3, 4) trains and tests on all {attacked}. ")



def rescored_tables(results: dict) -> str:
  """Tables 1 and 2 of a results.json written before rates carried intervals (their rates are
  k / n over `table_images`, or `num_images`), as markdown with each rate's 95% Wilson interval
  and count and the paper's numbers marked inside / outside. Table 3's denominators (the valid
  inputs of the test side) were not stored then, so it is not rescored here.

  python -c "import json; from advbound.studies.decision_boundary import report; \
    print(report.rescored_tables(json.load(open('docs/h100_mnist_results.json'))))"
  """
  n = results.get("table_images") or results["num_images"]
  ds = results["dataset"]
  variants = list(results["table1"])
  lines = [f"Table 1 (success; {n} images):", "",
           "| attack | " + " | ".join(f"{v}: ours | paper" for v in variants) + " |",
           "|---" * (1 + 2 * len(variants)) + "|"]
  for a in results["table1"][variants[0]]:
    cells = []
    for v in variants:
      c = _fraction(results["table1"][v][a]["success_rate"], n)
      p = PAPER_TABLE1.get(ds, {}).get(v, {}).get(a.replace("_released", ""))
      cells += [stats.format_rate(c), stats.beside_paper(c, p[0]) if p else "-"]
    lines.append(f"| {a} | " + " | ".join(cells) + " |")
  cols = [(c, v) for c in ("region", "point") for v in variants]
  lines += ["", f"Table 2 (accuracy; {n} images):", "",
            "| examples | " + " | ".join(f"{c} {v}: ours | paper" for c, v in cols) + " |",
            "|---" * (1 + 2 * len(cols)) + "|"]
  for k in results["table2"][variants[0]]["point"]:
    cells = []
    for c, v in cols:
      cell = _fraction(results["table2"][v][c][k], n)
      p = PAPER_TABLE2.get(ds, {}).get(v, {}).get(c, {}).get(k.replace("_released", ""))
      cells += [stats.format_rate(cell), stats.beside_paper(cell, p)]
    lines.append(f"| {k} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
