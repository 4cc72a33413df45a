"""report.md and results.json of Cao & Gong's study (stage "report").

results.json (stable keys; rows "point", "adversarial_training", "distillation", "region"; every
cell a `protocol.rates` cell or null where its examples were not computed: a `stats.proportion`
{"rate", "successes", "n", "low", "high", ...} with the legacy keys "success_rate", "attempts",
"noise" (mean over the successful examples: L0 in changed values, pixels for colour images;
L2 / L-inf on [0, 1]) and "noise_ci" (its bootstrap interval); region cells are pooled over the
region classifier's noise draws and add "draws" (`stats.spread` of the per-draw rates) and
"per_query" (the interval the paper's mark and the claims use)):

  dataset                                  "mnist" | "cifar10" | ...
  table3[dataset][row]                     test accuracy: a `stats.proportion` cell with
                                           "accuracy" (= rate)
  benign_correct[classifier]               a proportion of the drawn images it labels correctly
                                           (region: pooled over its noise draws)
  draw                                     the image-draw rule (evaluation.draw)
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
  claims                                   [{"id", "claim", "test", "verdict", "evidence"}]
                                           (`claims.check`)
  seconds, settings, versions
"""

from __future__ import annotations

import os

from advbound import stats
from advbound.runtime import io, stages
from advbound.studies import variants as variants_lib
from advbound.studies.region_defense import claims as claims_lib, paper, tables
from advbound.studies.region_defense.settings import Config


def _success(cell: dict | None) -> str:
  """Our success rate with its interval; a region cell: the mean over the noise draws, the
  per-query interval, the pooled count and the spread over the draws."""
  if cell is None:
    return "not run"
  if not cell.get("n"):
    return "-"
  if "per_query" not in cell:
    return stats.format_rate(cell)
  q, d = cell["per_query"], cell["draws"]
  std = "" if d["std"] is None else f" ± {100 * d['std']:.1f}"
  return (f"{100 * cell['rate']:.1f}% [{100 * q['low']:.1f}, {100 * q['high']:.1f}] per query "
          f"(n={q['n']}); {d['n']} draws: {100 * d['mean']:.1f}{std}, "
          f"pooled {cell['successes']}/{cell['n']} [{100 * cell['low']:.1f}, "
          f"{100 * cell['high']:.1f}]")


def _noise(cell: dict | None) -> str:
  if cell is None or cell.get("noise_ci") is None:
    return "-"
  return stats.format_estimate(cell["noise_ci"])


def _paper(cell: dict | None, theirs) -> tuple[str, str]:
  if theirs is None:
    return "-", "-"
  return stats.beside_paper(claims_lib.judged(cell), theirs[0]), f"{theirs[1]:.3g}"


def _table(ours: dict, theirs: dict | None, cols) -> list[str]:
  lines = ["| attack | classifier | success [95% CI] (k/n) | mean noise [95% CI] | paper "
           "success (our CI) | paper noise |", "|---|---|---|---|---|---|"]
  for c in cols:
    for row in paper.ROWS:
      if row not in ours:
        continue
      cell = ours[row].get(c)
      ps, pn = _paper(cell, (theirs or {}).get(row, {}).get(c))
      lines.append(f"| {c} | {paper.ROW_NAMES[row]} | {_success(cell)} | {_noise(cell)} | "
                   f"{ps} | {pn} |")
  return lines + [""]


def _curve(series: dict, unit: str, theirs: dict | None = None) -> list[str]:
  if not series:
    return ["(not computed)", ""]
  lines = [f"| series | {unit} | success [95% CI] (k/n) | mean noise [95% CI] | paper success "
           "(our CI) |", "|---|---|---|---|---|"]
  for name, s in series.items():
    for k, cell in s.items():
      ref = ((theirs or {}).get(name) or {}).get(k)
      mark = "-" if ref is None else stats.beside_paper(claims_lib.judged(cell), ref)
      lines.append(f"| {name} | {k} | {_success(cell)} | {_noise(cell)} | {mark} |")
  return lines + [""]


def _accuracy(correct: int, n: int) -> dict:
  cell = stats.proportion(int(correct), int(n))
  cell["accuracy"] = cell["rate"]
  return cell


def write(config, workdir: str, results: dict, timings: dict) -> dict:
  """Writes results.json and report.md from the stage results; returns results.json's dict."""
  ds = config.data.name
  scored, radius, attacked = results["score"], results["radius"], results["attacks"]
  rows = {c: tables.ROWS.get(c, c) for c in config.study.classifiers}
  n_test = int(radius["test_images"])
  correct = radius.get("test_correct") or {
      c: int(round(a * n_test)) for c, a in radius["test_accuracy"].items()}
  table3 = {rows[c]: _accuracy(correct[c], n_test) for c in config.study.classifiers}
  if "test_region" in radius:  # pooled over the region classifier's noise draws
    table3["region"] = dict(radius["test_region"], accuracy=radius["test_region"]["rate"])
  else:
    table3["region"] = _accuracy(round(radius["test_accuracy"]["region"] * n_test), n_test)
  images = int(attacked["images"])
  benign = {rows[c]: stats.proportion(k, images)
            for c, k in attacked.get("benign_correct", {}).items()}
  if "benign_correct" in results["region"]:
    benign["region"] = results["region"]["benign_correct"]
  figure4 = {k: radius[k] for k in ("radius", "radius_fraction", "history",
                                    "validation_point_accuracy", "validation_images")}
  checked = claims_lib.check(ds, table3, scored)
  out = {
      "dataset": ds,
      "imported": variants_lib.imported_metrics(config, workdir),
      "table3": {ds: table3},
      "table4": {ds: scored["table4"]}, "table5": {ds: scored["table5"]},
      "table6": {ds: scored["table6"]},
      "figure4": {ds: figure4},
      "figure6": {ds: scored["figure6"]}, "figure7": {ds: scored["figure7"]},
      "figure8": {ds: scored["figure8"]},
      "adaptive": {ds: results["adaptive"]},
      "figures": results["figures"],
      "images": images, "pairs": attacked["pairs"], "indices": attacked["indices"],
      "draw": attacked.get("draw"), "benign_correct": benign,
      "claims": checked,
      "paper": {"table3": paper.TABLE3.get(ds), "table4": paper.TABLE4.get(ds),
                "table5": paper.TABLE5.get(ds), "table6": paper.TABLE6.get(ds),
                "figure6": paper.FIGURE6.get(ds), "figure8": paper.FIGURE8.get(ds),
                "radius": paper.RADIUS.get(ds), "claims": paper.CLAIMS.get(ds)},
      "seconds": timings,
      "settings": config.to_dict(),
      "versions": stages.versions(),
  }
  io.write_json(os.path.join(workdir, "results.json"), out)
  ref3 = paper.TABLE3.get(ds, {})
  draws = int(config.region.score_draws)
  draw_rule = {"standard": "among the test images the standard point classifier labels "
                           "correctly (the paper's draw)",
               "all_correct": "among the test images every point classifier and the region "
                              "classifier label correctly (stricter than the paper: easier "
                              "images for every row)"}.get(out["draw"], str(out["draw"]))
  pool = config.evaluation.pool
  md = [f"# Cao & Gong (ACSAC 2017, extended) reproduced on {ds}", "",
        f"{images} evaluated test images ({out['pairs']} image-target pairs for the targeted "
        f"attacks), drawn {draw_rule}, from "
        + ("the whole test set" if pool is None else f"the first {pool} test images (a "
           "departure from the paper's whole test set)")
        + ", the same for every attack and classifier. Every row is scored over all of them "
        "(the paper's denominators): a classifier that misclassifies a drawn image is attacked "
        "and judged on it like on any other. Drawn images each classifier labels correctly: "
        + ", ".join(f"{paper.ROW_NAMES.get(r, r)} {c['successes']}/{c['n']}"
                    + (f" (pooled over {c['draws']['n']} noise draws)" if "draws" in c else "")
                    for r, c in benign.items()) + ".", "",
        "Cells: success rate with its 95% Wilson interval and count; mean noise of the "
        "successful examples (L0: changed values, or pixels for colour images; L2 and L-inf "
        "on the [0, 1] scale) with a 95% bootstrap interval (1,000 resamples, seed 0). "
        f"Region rows: the region classifier draws fresh noise at every query, so they are "
        f"scored at {draws} independent noise draws of the same examples: the mean rate, the "
        "interval of one query per example (n = examples; used for the paper's mark and the "
        "claims: conservative), the spread over the draws (mean ± std, in points) and the "
        "pooled count over all draws with its interval (narrower: it treats the draws of one "
        "example as independent trials). The paper's number stands beside ours, marked "
        "inside / outside our interval. Targeted rates count image-target pairs: the "
        f"{out['pairs'] // max(images, 1)} pairs of an image share it, and "
        "the intervals treat pairs as independent, so with few images they are optimistic. "
        + (Config.of(config).note or ""), ""] + variants_lib.source_lines(config, workdir) + [
        "## Table 3: clean test accuracy", "",
        "| classifier | ours [95% CI] (k/n) | paper (our CI) |", "|---|---|---|"]
  for row, acc in table3.items():
    md.append(f"| {paper.ROW_NAMES[row]} | {_success(acc)} | "
              f"{stats.beside_paper(claims_lib.judged(acc), ref3.get(row))} |")
  md += ["", f"The region row's test accuracy is scored at the {draws} noise draws, like its "
         "rows below.", "",
         f"Region classifier: r = {radius['radius']:.4g} ({radius['radius_fraction']:.3g} "
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
         "Targeted:", ""] + _curve(scored["figure6"], "kappa", paper.FIGURE6.get(ds))
  md += ["Untargeted:", ""] + _curve(scored["figure7"], "kappa")
  md += [f"![{f[:-4]}](figures/{f}) " for f in ("figure6.png", "figure7.png")
         if os.path.exists(os.path.join(workdir, "figures", f))] + [""]
  md += ["## Figure 8: adapted attacks against region classification (by alpha)", ""]
  md += _curve(scored["figure8"], "alpha", paper.FIGURE8.get(ds))
  if os.path.exists(os.path.join(workdir, "figures", "figure8.png")):
    md += ["![Figure 8](figures/figure8.png)", ""]
  md += ["## Beyond the paper: EOT-PGD through the region classifier's noise", "",
         "L-inf PGD on the loss averaged over samples of the cube (an attacker who knows the "
         "defence), at each L-inf budget (fraction of the range); success judged by the "
         "deployed region classifier (one vote of m samples per example, inside the attack). "
         "Compare the region rows of the L-inf attacks above."
         + (" autoattack_rand: AutoAttack's rand version (APGD-CE and APGD-DLR, each "
            "averaging its gradient over 20 draws of the cube; Croce & Hein), untargeted, "
            "judged by the same region classifier; success counts every evaluated image the "
            "region classifier misclassifies after it." if "autoattack_rand" in
            results["adaptive"] else ""), ""]
  md += _curve({k: v for k, v in results["adaptive"].items()}, "epsilon")
  md += ["## The paper's claims, checked", "",
         "Each claim with its test and verdict: holds / contradicted when the whole 95% "
         "interval is on one side, inconclusive at this sample size otherwise; true by "
         "construction where our protocol makes it so (not evidence).", "",
         "| claim | test | verdict | evidence |", "|---|---|---|---|"]
  md += [f"| {c['claim']} | {c['test']} | **{c['verdict']}** | {c['evidence']} |"
         for c in checked] + [""]
  md += ["## Figures 2, 1, 5 and 9", ""]
  for attack, f in results["figures"]["figure2"].items():
    md.append(f"Figure 2 ({attack}), test image {f['image']} (label {f['label']}): majority "
              f"labels {f['majority']} for the benign image and targets {f['targets']}.")
    md += ["", f"![Figure 2 {attack}]({f['file']})", ""]
  for name, g in results["figures"]["grids"].items():
    md += [f"{name}: {g['examples']}" + (f" amplified by alpha {g['alpha']}" if g["alpha"]
                                          is not None else "")
           + f"; the region classifier (first noise draw) gives the target for "
           f"{g['region_fooled']} of {g['cells']} examples.", "", f"![{name}]({g['file']})", ""]
  stages.write_report(workdir, md, timings=timings, versions=out["versions"],
                      settings=out["settings"])
  return out
