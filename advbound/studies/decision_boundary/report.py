"""The pipeline's report: `DIR/results.json` (stable keys for other tools) and `DIR/report.md`
(Tables 1-4 in the paper's layout with the paper's numbers beside ours, on ImageNet also the
Appendix's Table 5, figures, settings, timings per stage, software versions)."""

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
# He et al., Appendix D, Table 5 (ImageNet, Inception-ResNet-v2, 450 validation images): mean
# RMS distortion of successful examples; top-1 accuracy of point and region classification
# (hypercube radius 0.02 on [0, 1]); false positive / negative rates of a boundary classifier
# trained on the same attack (350 images train, 100 test). None: N/A in the paper.
PAPER_TABLE5 = {
    "benign": {"distortion": None, "point": 0.65, "region": 0.66, "false_positive": None,
               "false_negative": None},
    "optbrittle": {"distortion": 0.000526, "point": 0.0, "region": 0.64, "false_positive": 0.01,
                   "false_negative": 0.0},
    "optmargin": {"distortion": 0.00101, "point": 0.0, "region": 0.16, "false_positive": 0.04,
                  "false_negative": 0.03},
    "fgsm": {"distortion": 0.0308, "point": 0.22, "region": 0.22, "false_positive": 0.39,
             "false_negative": 0.41},
}
TABLE5_DATASET = "imagenet"
# The models the paper attacked: Madry et al.'s released CIFAR-10 WRN-32-10s (their paper's
# Table: natural 95.2%; adversarial 87.3% clean, 45.8% under PGD-20 at epsilon 8).
PAPER_MODELS = {"cifar10": {"natural": "95.2% / -", "adversarial": "87.3% / 45.8% (PGD-20)"},
                # Appendix D: TF-slim's Inception-ResNet-v2, top-1 on its 450 images (Table 5)
                "imagenet": {"natural": "65% / -"}}
_PAPER_MODEL_NAMES = {"imagenet": "TF-slim Inception-ResNet-v2"}


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
  paper = paper_table3(dataset)
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
  p = paper_table4(dataset)
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
  p2 = paper_table2(dataset)
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
          paper_t3 = paper_table3(dataset).get(v, {}).get("optmargin")
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


def paper_table2(dataset: str) -> dict:
  """The paper's Table 2 numbers for `dataset` ({variant: {"point" | "region": {kind: rate}}});
  on ImageNet those of Table 5 (the natural model only)."""
  if dataset == TABLE5_DATASET:
    return {"natural": {c: {k: r[c] for k, r in PAPER_TABLE5.items()}
                        for c in ("point", "region")}}
  return PAPER_TABLE2.get(dataset, {})


def paper_table3(dataset: str) -> dict:
  """The paper's Table 3 numbers for `dataset` ({variant: {training attack: (FP, {attack:
  FN})}}); on ImageNet Table 5's (each classifier tested on its own attack only)."""
  if dataset == TABLE5_DATASET:
    return {"natural": {a: (PAPER_TABLE5[a]["false_positive"],
                            {a: PAPER_TABLE5[a]["false_negative"]})
                        for a in ("optbrittle", "optmargin")}}
  return PAPER_TABLE3.get(dataset, {})


def paper_table4(dataset: str) -> tuple | None:
  """The paper's Table 4 (FGSM: FP, FN) for `dataset`; on ImageNet Table 5's FGSM row."""
  if dataset == TABLE5_DATASET:
    return PAPER_TABLE5["fgsm"]["false_positive"], PAPER_TABLE5["fgsm"]["false_negative"]
  return PAPER_TABLE4.get(dataset)


def table5(results: dict) -> dict:
  """He et al.'s Table 5 from this run's Tables 1-4, per model variant: {variant: {"rows":
  {kind: {"distortion", "point", "region", "false_positive", "false_negative"}},
  "top1_all": ...}}.

  Each rate is a `stats.proportion` cell (rate, successes, n, 95% Wilson interval) and the
  distortion a `stats.bootstrap` cell (mean RMS of the successful examples): point and region
  accuracy over the attacked images (Table 2's; a failed attack keeps its input), FP / FN of
  the boundary classifier trained on the same attack, on the test images' valid inputs (Table
  3's, FGSM's from Table 4). "top1_all": the model's top-1 accuracy on every test image (its
  evaluation), the unfiltered sample the paper's benign row measured. None where the stage
  made no such number (a skipped classifier, no successful example)."""
  attacks, region, det = results["attacks"], results["region"], results["detect"]
  out = {}
  for v, rows in attacks["table1"].items():
    cells = region.get("table2_cells", {}).get(v, {})
    table = {}
    for kind in ("benign",) + tuple(k for k in PAPER_TABLE5 if k != "benign"):
      if kind != "benign" and kind not in rows:
        continue
      row = {"distortion": None if kind == "benign" else rows[kind].get("rms_interval"),
             "point": cells.get("point", {}).get(kind),
             "region": cells.get("region", {}).get(kind),
             "false_positive": None, "false_negative": None, "skipped": None}
      detector = (det["table4"].get(v) if kind == "fgsm"
                  else det["table3"].get(v, {}).get(kind)) if kind != "benign" else None
      if detector is not None:
        found = detector.get("cells") or {}
        row["false_positive"] = found.get("false_positive")
        row["false_negative"] = (found.get("false_negative") or {}).get(kind)
        row["skipped"] = detector.get("skipped")
      table[kind] = row
    m = results["train"].get(v, {})
    top1 = _fraction(m.get("test_accuracy"), m.get("test_examples"))
    out[v] = {"rows": table, "top1_all": top1}
  return out


def format_table5(t5: dict, *, attacked: int, table: int, detect_split: dict) -> str:
  """Table 5 in the paper's layout, ours beside the paper's: every rate with its 95% Wilson
  interval and count, the distortion with its 95% bootstrap interval, the paper's numbers
  marked inside / outside our interval."""
  head = ["examples", "distortion (RMS): ours", "paper", "point cls. top-1: ours", "paper",
          "region cls. top-1: ours", "paper", "boundary cls. FP: ours", "paper",
          "boundary cls. FN: ours", "paper"]
  lines = []
  for v, t in t5.items():
    lines += [f"Model: {v}.", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for kind, r in t["rows"].items():
      p = PAPER_TABLE5.get(kind, {})
      d = r["distortion"] or {}
      dist = ("N/A" if kind == "benign" else "-" if d.get("estimate") is None
              else stats.format_estimate(d, ".3g"))
      pd = p.get("distortion")
      paper_d = ("N/A" if pd is None else
                 f"{pd:.3g} ({stats.paper_mark(pd, d.get('low'), d.get('high'))})")
      cells = [kind + (" (attacked images)" if kind == "benign" else ""), dist, paper_d]
      for c in ("point", "region"):
        if kind == "benign":  # 100% point accuracy by construction: not the paper's sample
          cells += [stats.format_rate(r[c]), f"{100 * p[c]:.0f}% (not comparable)"]
        else:
          cells += [stats.format_rate(r[c]), stats.beside_paper(r[c], p.get(c))]
      for c in ("false_positive", "false_negative"):
        if kind == "benign":
          cells += ["N/A", "N/A"]
        elif r.get("skipped"):
          cells += [f"skipped: {r['skipped']}", stats.beside_paper(None, p.get(c))]
        else:
          cells += [stats.format_rate(r[c]), stats.beside_paper(r[c], p.get(c))]
      lines.append("| " + " | ".join(cells) + " |")
    top1 = t["top1_all"]
    paper_top1 = stats.beside_paper(top1, PAPER_TABLE5["benign"]["point"])
    lines.append(f"| benign (every test image, unfiltered) | N/A | N/A | "
                 f"{stats.format_rate(top1)} | {paper_top1} | not measured | 66% | N/A | N/A "
                 "| N/A | N/A |")
    lines.append("")
  lines += [
      f"Point and region top-1 accuracy over the {table} attacked images "
      f"(of {attacked}; a failed attack keeps its input), [95% Wilson interval] "
      "(correct/images); distortion: mean RMS of the successful examples [95% bootstrap "
      "interval] (n = successful examples); FP / FN: the boundary classifier trained on the "
      f"same attack's examples of the first {detect_split['train']} attacked images and "
      f"tested on the other {detect_split['test']} (rates over the correctly classified benign "
      "and the successful adversarial test inputs). The paper's numbers (450 validation images, "
      "350 + 100 for the classifier) are marked inside / outside our interval. The attacked "
      "images are drawn among those the model classifies correctly, so our benign row is not "
      "the paper's: the last row is the model's top-1 accuracy on every test image, the "
      "unfiltered sample the paper's 65% measured (its 66% region accuracy is not measured "
      "here)."]
  return "\n".join(lines) + "\n"


# He et al.'s Appendix D names the boundary figures of ImageNet Figures 8 (one image and its
# adversarial examples; the paper's also shows the images) and 9 (distances and purity).
_IMAGENET_FIGURES = {
    "figure1": "Figure 8: decision boundary distances around one validation image and its "
               "adversarial examples",
    "figure2": "Figure 9 (left, middle): minimum and median boundary distances",
    "figure3": "Figure 9 (right): average purity of the adjacent classes",
}


def figure_caption(path: str, dataset: str) -> str:
  """The caption of a figure of the report (its path; on ImageNet the Appendix's numbering)."""
  name = os.path.splitext(os.path.basename(path))[0]
  kind = name.split("_")[0]
  if dataset != TABLE5_DATASET or kind not in _IMAGENET_FIGURES:
    return path
  rest = name[len(kind) + 1:]  # <variant>_<metric>
  variant, _, metric = rest.rpartition("_")
  if kind == "figure3":  # purity: the same in both metrics
    return f"{_IMAGENET_FIGURES[kind]} ({variant})"
  metric = {"rms": "RMS distance", "linf": "L-inf distance"}.get(metric, metric)
  return f"{_IMAGENET_FIGURES[kind]}, {metric} ({variant})"


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
  if dataset == TABLE5_DATASET:
    out["table5"] = table5(results)
    out["paper"]["table5"] = PAPER_TABLE5
  io.write_json(os.path.join(workdir, "results.json"), out)
  md = [f"# He et al. (ICLR 2018) reproduced on {dataset}", "",
        _images_line(out["table_images"], out["num_images"]) + "Settings under \"Settings\" below. "
        + settings.Config.of(config).note, "",
        "## Models", "", "| model | architecture | test accuracy | PGD accuracy | AutoAttack "
        f"accuracy | paper's model ({_PAPER_MODEL_NAMES.get(dataset, 'Madry et al.')}): "
        "clean / PGD |", "|---|---|---|---|---|---|"]
  pgd = config.eval.pgd
  for v, m in results["train"].items():
    stop = m.get("guard", {}).get("stopped_at")
    note = f"; stopped by the overfitting guard at step {stop}" if stop is not None else ""
    cells = out["model_cells"][v]
    arch = m["source"] if m.get("imported") else variants_lib.variant_model(config, v).name
    md.append(f"| {v} | {arch}{note} | "
              f"{stats.format_rate(cells['test_accuracy'])} | "
              f"{stats.format_rate(cells['pgd_accuracy'])} | "
              f"{variants_lib.autoattack_cell(m)} | "
              f"{PAPER_MODELS.get(dataset, {}).get(v, '-')} |")
  md += ["", f"PGD: epsilon {pgd.epsilon:g}, {pgd.num_steps} steps of {pgd.step_size:g}"
         f"{', random start' if pgd.random_start else ''}"
         + ("; imported models: their own models.<variant>.eval (below)."
            if any(variants_lib.is_imported(config, v) for v in results["train"]) else ".")]
  md += [""] + variants_lib.source_lines(config, workdir)
  if "table5" in out:
    md += ["", "## Table 5: ImageNet (Appendix D)", "",
           format_table5(out["table5"], attacked=out["num_images"],
                         table=out["table_images"], detect_split=out["detect_split"]),
           "Tables 1-4 below hold the same run's numbers in the main text's layout."]
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
  md += [f"![{figure_caption(f, dataset)}]({f})" for f in out["figures"]] + [""]
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
