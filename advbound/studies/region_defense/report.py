"""report.md and results.json of Cao & Gong's study (stage "report").

results.json (stable keys; rows "point", "adversarial_training", "distillation", "region"; every
cell {"success_rate", "noise", "successes", "attempts"} or null where its examples were not
computed; noise L0 in changed values (pixels for colour images), L2 / L-inf on [0, 1]):

  dataset                                  "mnist" | "cifar10" | ...
  table3[dataset][row]                     test accuracy
  table4[dataset][row][T-attack]           targeted attacks (all pairs)
  table5[dataset][row][U-attack|DeepFool]  untargeted attacks (one per image)
  table6[dataset][row][T-CA-*|U-CA-*]      combined attacks
  figure4[dataset]                         {"radius", "radius_fraction", "history": [{radius,
                                           accuracy}], "validation_point_accuracy"}
  figure6[dataset][row][kappa]             high-confidence T-CW-L2
  figure7[dataset][row][kappa]             high-confidence U-CW-L2
  figure8[dataset][T-CW-*-A][alpha]        adapted attacks against region classification
  adaptive[dataset][targeted|untargeted][epsilon]  EOT-PGD against region classification
  figures                                  {"figure2": ..., "grids": ...} (files under figures/)
  images, pairs, indices                   the evaluated test images
  paper                                    Cao & Gong's numbers for the same keys
  seconds, settings, versions
"""

from __future__ import annotations

import os

from advbound import io, stages
from advbound.studies.region_defense import paper, tables


def _cell(ours, theirs=None) -> str:
  if ours is None:
    text = "not run"
  elif ours["success_rate"] is None:
    text = "-"
  else:
    noise = "-" if ours["noise"] is None else f"{ours['noise']:.3g}"
    text = f"{100 * ours['success_rate']:.1f}% / {noise}"
  if theirs is not None:
    text += f" ({100 * theirs[0]:.3g}% / {theirs[1]:.3g})"
  return text


def _table(ours: dict, theirs: dict | None, cols) -> list[str]:
  lines = ["| classifier | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
  for row in paper.ROWS:
    if row not in ours:
      continue
    ref = (theirs or {}).get(row, {})
    lines.append(f"| {paper.ROW_NAMES[row]} | " + " | ".join(
        _cell(ours[row].get(c), ref.get(c)) for c in cols) + " |")
  return lines + [""]


def _curve(series: dict, unit: str) -> list[str]:
  if not series:
    return ["(not computed)", ""]
  keys = list(next(iter(series.values())))
  lines = [f"| {unit} | " + " | ".join(series) + " |", "|---" * (len(series) + 1) + "|"]
  for k in keys:
    lines.append(f"| {k} | " + " | ".join(_cell(s.get(k)) for s in series.values()) + " |")
  return lines + [""]


def write(config, workdir: str, results: dict, timings: dict) -> dict:
  """Writes results.json and report.md from the stage results; returns results.json's dict."""
  ds = config.data.name
  scored, radius = results["score"], results["radius"]
  rows = {c: tables.ROWS.get(c, c) for c in config.study.classifiers}
  table3 = {rows[c]: radius["test_accuracy"][c] for c in config.study.classifiers}
  table3["region"] = radius["test_accuracy"]["region"]
  figure4 = {k: radius[k] for k in ("radius", "radius_fraction", "history",
                                    "validation_point_accuracy", "validation_images")}
  out = {
      "dataset": ds,
      "table3": {ds: table3},
      "table4": {ds: scored["table4"]}, "table5": {ds: scored["table5"]},
      "table6": {ds: scored["table6"]},
      "figure4": {ds: figure4},
      "figure6": {ds: scored["figure6"]}, "figure7": {ds: scored["figure7"]},
      "figure8": {ds: scored["figure8"]},
      "adaptive": {ds: results["adaptive"]},
      "figures": results["figures"],
      "images": results["attacks"]["images"], "pairs": results["attacks"]["pairs"],
      "indices": results["attacks"]["indices"],
      "paper": {"table3": paper.TABLE3.get(ds), "table4": paper.TABLE4.get(ds),
                "table5": paper.TABLE5.get(ds), "table6": paper.TABLE6.get(ds),
                "radius": paper.RADIUS.get(ds), "claims": paper.CLAIMS.get(ds)},
      "seconds": timings,
      "settings": config.to_dict(),
      "versions": stages.versions(),
  }
  io.write_json(os.path.join(workdir, "results.json"), out)
  ref3 = paper.TABLE3.get(ds, {})
  md = [f"# Cao & Gong (ACSAC 2017, extended) reproduced on {ds}", "",
        f"{out['images']} evaluated test images ({out['pairs']} image-target pairs for the "
        "targeted attacks), the same for every attack and classifier. Cells: success rate / "
        "mean noise of the successful examples (L0: changed values, or pixels for colour "
        "images; L2 and L-inf on the [0, 1] scale); the paper's in parentheses. "
        + (config.get("note", "") or ""), "",
        "## Table 3: clean test accuracy", "", "| classifier | ours | paper |", "|---|---|---|"]
  for row, acc in table3.items():
    theirs = ref3.get(row)
    md.append(f"| {paper.ROW_NAMES[row]} | {100 * acc:.1f}% | "
              f"{'-' if theirs is None else f'{100 * theirs:.1f}%'} |")
  md += ["", f"Region classifier: r = {radius['radius']:.4g} ({radius['radius_fraction']:.3g} "
         f"of the range; paper {paper.RADIUS.get(ds, '-')}) learned by Algorithm 1 on "
         f"{radius['validation_images']} validation images (Figure 4), "
         f"m = {config.region.num_samples} samples.", "",
         "![Figure 4](radius/figure4.png)", "",
         "## Table 4: targeted attacks", ""]
  md += _table(scored["table4"], paper.TABLE4.get(ds), tables.TARGETED)
  md += ["## Table 5: untargeted attacks", ""]
  md += _table(scored["table5"], paper.TABLE5.get(ds),
               tuple("U-" + a[2:] for a in tables.TARGETED) + ("DeepFool",))
  md += ["## Table 6: combined attacks", ""]
  md += _table(scored["table6"], paper.TABLE6.get(ds),
               ("T-CA-L0", "T-CA-Linf", "T-CA-L2", "U-CA-L0", "U-CA-Linf", "U-CA-L2"))
  md += ["## Figures 6 and 7: high-confidence CW-L2 (success / mean L2 noise by kappa)", "",
         "Targeted:", ""] + _curve(scored["figure6"], "kappa")
  md += ["Untargeted:", ""] + _curve(scored["figure7"], "kappa")
  md += [f"![{f[:-4]}](figures/{f}) " for f in ("figure6.png", "figure7.png")
         if os.path.exists(os.path.join(workdir, "figures", f))] + [""]
  md += ["## Figure 8: adapted attacks against region classification (by alpha)", ""]
  md += _curve(scored["figure8"], "alpha")
  if os.path.exists(os.path.join(workdir, "figures", "figure8.png")):
    md += ["![Figure 8](figures/figure8.png)", ""]
  md += ["## Beyond the paper: EOT-PGD through the region classifier's noise", "",
         "L-inf PGD on the loss averaged over samples of the cube (an attacker who knows the "
         "defence), at each L-inf budget (fraction of the range); success judged by the "
         "deployed region classifier. Compare the region rows of the L-inf attacks above.", ""]
  md += _curve({k: v for k, v in results["adaptive"].items()}, "epsilon")
  md += ["## Claims stated in the paper's text", ""]
  md += [f"- {c}" for c in paper.CLAIMS.get(ds, [])] + [""]
  md += ["## Figures 2, 1, 5 and 9", ""]
  for attack, f in results["figures"]["figure2"].items():
    md.append(f"Figure 2 ({attack}), test image {f['image']} (label {f['label']}): majority "
              f"labels {f['majority']} for the benign image and targets {f['targets']}.")
    md += ["", f"![Figure 2 {attack}]({f['file']})", ""]
  for name, g in results["figures"]["grids"].items():
    md += [f"{name}: {g['examples']}" + (f" amplified by alpha {g['alpha']}" if g["alpha"]
                                          is not None else "")
           + f"; the region classifier gives the target for {g['region_fooled']} of "
           f"{g['cells']} examples.", "", f"![{name}]({g['file']})", ""]
  stages.write_report(workdir, md, timings=timings, versions=out["versions"],
                      settings=out["settings"])
  return out
