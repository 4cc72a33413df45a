"""The pipeline's report: `DIR/results.json` (stable keys for other tools) and `DIR/report.md`
(Tables 1-4 in the paper's layout with the paper's numbers beside ours, figures, settings,
timings per stage, software versions)."""

from __future__ import annotations

import os

from advbound import io
from advbound import stages, train
from advbound.stages import versions
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


def format_table3(detect_result: dict, dataset: str) -> str:
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
      fn = r.get("false_negative", {})
      cells = [v, attack, _pct(r["false_positive"]), _pct(p[0]) if p else "-"]
      for a in attacks:
        pa = p[1].get(a.replace("_released", "")) if p else None
        cells += [_pct(fn.get(a)), _pct(pa)]
      paper_acc = 1 - max(p[0], p[1][attack.replace("_released", "")]) if p else None
      cells += [_pct(r["worst_case_accuracy"]), _pct(paper_acc), _pct(r.get("region_accuracy"))]
      if r.get("skipped"):
        cells[2] = f"skipped: {r['skipped']}"
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def format_table4(detect_result: dict, dataset: str) -> str:
  p = PAPER_TABLE4.get(dataset)
  lines = ["| model | FP: ours | paper | FN: ours | paper |", "|---" * 5 + "|"]
  for v, r in detect_result["table4"].items():
    paper_cells = [_pct(p[0]), _pct(p[1])] if p and v == "natural" else ["-", "-"]
    lines.append(f"| {v} | {_pct(r['false_positive'])} | {paper_cells[0]} | "
                 f"{_pct(r['false_negative'].get('fgsm'))} | {paper_cells[1]} |")
  return "\n".join(lines) + "\n"


def write(config, workdir: str, results: dict, timings: dict) -> dict:
  """Writes results.json and report.md from the stage results; returns results.json's dict."""
  attacks, region, bnd, det = (results["attacks"], results["region"], results["boundary"],
                               results["detect"])
  dataset = attacks["dataset"]
  table1 = {v: {a: {"success_rate": r["success_rate"], "rms": r["rms"]} for a, r in rows.items()}
            for v, rows in attacks["table1"].items()}
  table2 = {v: {c: dict(rows) for c, rows in t.items()} for v, t in region["table2"].items()}
  table3 = {v: {a: {"false_positive": r["false_positive"],
                    "false_negative": r["false_negative"],
                    "worst_case_accuracy": r["worst_case_accuracy"],
                    "region_accuracy": r.get("region_accuracy")} for a, r in rows.items()}
            for v, rows in det["table3"].items()}
  table4 = {v: {"false_positive": r["false_positive"],
                "false_negative": r["false_negative"].get("fgsm")}
            for v, r in det["table4"].items()}
  out = {
      "dataset": dataset,
      "table1": table1, "table2": table2, "table3": table3, "table4": table4,
      "paper": {"table1": PAPER_TABLE1.get(dataset), "table2": PAPER_TABLE2.get(dataset),
                "table3": PAPER_TABLE3.get(dataset), "table4": PAPER_TABLE4.get(dataset)},
      "models": results["train"],
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
        + (config.get("note", "") or ""), "",
        "## Models", "", "| model | architecture | test accuracy | PGD accuracy | paper's "
        "model (Madry et al.): clean / PGD |", "|---|---|---|---|---|"]
  pgd = config.eval.pgd
  for v, m in results["train"].items():
    stop = m.get("guard", {}).get("stopped_at")
    note = f"; stopped by the overfitting guard at step {stop}" if stop is not None else ""
    md.append(f"| {v} | {train.variant_model(config, v).name}{note} | "
              f"{_pct(m['test_accuracy'])} ({m['test_examples']}) | "
              f"{_pct(m['pgd_accuracy'])} ({m['pgd_examples']}) | "
              f"{PAPER_MODELS.get(dataset, {}).get(v, '-')} |")
  md += ["", f"PGD: epsilon {pgd.epsilon:g}, {pgd.num_steps} steps of {pgd.step_size:g}"
         f"{', random start' if pgd.random_start else ''}."]
  md += ["", "## Table 1: attacks", "", format_table1(attacks),
         "## Table 2: point and region classification", "", format_table2(region),
         "## Table 3: boundary classifier (false positive / negative rates)", "",
         f"Trained on the first {det['train_inputs']} attacked images, tested on the other "
         f"{det['test_inputs']}.", "", format_table3(det, dataset),
         "## Table 4: boundary classifier on FGSM", "", format_table4(det, dataset),
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

