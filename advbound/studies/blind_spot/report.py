"""report.md and results.json of the blind-spot study (stage "report").

results.json (stable keys; a pair key is "alpha=0.9,beta=0.05", beta on the paper's [-0.5, 0.5]
scale). A rate cell is a `stats.proportion` cell {"rate", "successes", "n", "low", "high",
"confidence", "method"} (95% Wilson interval) that also keeps the older keys "success_rate"
(= rate, null if nothing attacked) and "attempts" (= n); success is counted over the attacked
images the model classifies correctly after the transformation. A bootstrap cell is
`stats.bootstrap`'s {"estimate", "low", "high", "n", ...} (percentile, score.RESAMPLES
resamples from score.BOOTSTRAP_SEED unless said otherwise); a spread is `stats.spread`'s.

  dataset                       "mnist" | "fashion_mnist" | "cifar10"
  table1                        {kl_divergence (class-mean KL of the first t-SNE map),
                                 success_rate, test_accuracy, successes, attempts,
                                 divergence_model, success: rate cell, accuracy: rate cell,
                                 kl: {bootstrap: bootstrap cell over divergence.resamples
                                 resamples of the points, seeds: spread of the class-mean KL
                                 over divergence.seeds t-SNE maps, permutation: {observed,
                                 null: spread, excess, p_value, permutations, seed}, counts:
                                 [train, test] per class}}
  scale_shift[pair]             Tables 2-3: {alpha, beta, accuracy (all study test images),
                                 accuracy_cell: rate cell, accuracy_change: paired
                                 bootstrap cell of the per-image change of correctness
                                 against the untransformed images, epsilon: rate cell,
                                 alpha_epsilon:
                                 rate cell, thresholds, by_start[start]: rate cell at epsilon,
                                 median_distortion, median_distortion_ci: bootstrap cell}
  accuracy[model][pair]         every model's accuracy on the transformed test images
  accuracy_cells[model][pair]   the same as rate cells
  mean_distance[extractor][pair]  mean distance to the k nearest training embeddings
  mean_distance_ci[extractor][pair]  its bootstrap cell
  figure1.bins[extractor]       Figures 1-3: {edges, counts, attempts, successes, success_rate,
                                 cells: rate cell per bin}
  figure1.trend[extractor]      {auc (distance separating successes from failures), auc_ci,
                                 p_value, nearest_quarter, farthest_quarter (success rates),
                                 nearest_cell, farthest_cell, quarters_difference (Newcombe)}
  figure5[extractor][pair]      {ks_statistic, ks_p_value, mean_original, mean_transformed,
                                 std_original, std_transformed, mean_shift_in_std,
                                 detection_auc, mean_original_ci, mean_transformed_ci,
                                 detection_auc_ci (paired bootstrap over images)}
  claims                        [{claim, test, verdict, detail}] (claims.py)
  divergence                    {model, per_class: [KL of the first map], mean, counts:
                                 [[train, test]], per_map: [[KL per class] per map], seeds,
                                 bootstrap, permutation, init}
  test_images, train_images, attacked_images, epsilon
  departures                    the config's remaining departures from the paper (its note)
  paper                         {table1, scale_shift[pair]: {accuracy, epsilon, alpha_epsilon},
                                 figure4[pair]: distortion}
  seconds, settings, versions
"""

from __future__ import annotations

import os

from advbound import stats
from advbound.runtime import io, stages
from advbound.studies import variants as variants_lib
from advbound.studies.blind_spot import claims, paper, protocol, settings


def _beside(cell, value, out_of_regime: bool = False) -> str:
  """The paper's number with its mark against our interval ("-" where the paper has none)."""
  text = stats.beside_paper(cell, value)
  return text if value is None or not out_of_regime else text[:-1] + "; out of regime)"


def write(config, workdir: str, results: dict, timings: dict) -> dict:
  """Writes results.json and report.md from the stage results; returns results.json's dict."""
  ds = config.data.name
  scored, dist = results["score"], results["distance"]
  ref_rows = paper.SCALE_SHIFT.get(ds, {})
  out = {
      "dataset": ds,
      "table1": scored["table1"],
      "scale_shift": scored["scale_shift"],
      "accuracy": dist["accuracy"],
      "accuracy_cells": dist["accuracy_cells"],
      "mean_distance": dist["mean_distance"],
      "mean_distance_ci": scored["mean_distance"],
      "claims": scored["claims"],
      "departures": settings.Config.of(config).note or "",
      "imported": variants_lib.imported_metrics(config, workdir),
      "figure1": scored["figure1"],
      "figure5": scored["figure5"],
      "divergence": results["divergence"],
      "test_images": dist["test_images"], "train_images": dist["train_images"],
      "attacked_images": int(config.attack.num_images), "epsilon": float(config.study.epsilon),
      "paper": {
          "table1": paper.TABLE1.get(ds),
          "scale_shift": {paper.pair_key(*k): dict(accuracy=v[0], epsilon=v[1],
                                                   alpha_epsilon=v[2])
                          for k, v in ref_rows.items()},
          "figure4": {paper.pair_key(*k): v for k, v in paper.FIGURE4.get(ds, {}).items()}},
      "seconds": timings,
      "settings": config.to_dict(),
      "versions": stages.versions(),
  }
  io.write_json(os.path.join(workdir, "results.json"), out)

  eps = float(config.study.epsilon)
  t1, ref1 = out["table1"], paper.TABLE1.get(ds) or {}
  div = out["divergence"]
  found_claims = scored["claims"]
  regime = claims.regime(t1["success"], ref1.get("success_rate"))
  outside = ref1.get("success_rate") is not None and not regime["in_regime"]
  boot, seeds, perm = t1["kl"]["bootstrap"], t1["kl"]["seeds"], t1["kl"]["permutation"]
  md = [f"# The blind-spot study reproduced on {ds}", "",
        "Models: " + ", ".join(f"{v} ({variants_lib.describe(config, v)})"
                               for v in variants_lib.variant_names(config))
        + f" (attacked: {config.study.attacked}). {out['test_images']} test images, {out['train_images']} "
        f"training images; C&W L-inf on {out['attacked_images']} of the test images (a seeded "
        f"draw) from the starts {tuple(config.attack.starts)}, epsilon {eps:g} on the data's "
        "scale.", "",
        "Every rate: ours with its 95% Wilson interval and denominator; means, medians, AUCs and "
        "KLs with a 95% percentile bootstrap interval. The paper's number beside ours is marked "
        "inside / outside our interval."
        + (f" **Out of regime**: {regime['why']}; the transformed rows are therefore not "
           "comparable with the paper's numbers (marked \"out of regime\"), and the blind-spot "
           "effect is judged against our own baseline (Claims)." if outside else ""), ""]
  if out["departures"]:
    md += ["Departures from the paper's protocol (the config's docstring): "
           + out["departures"], ""]
  md += variants_lib.source_lines(config, workdir)
  md += ["## Table 1: train/test divergence, success rate and accuracy", "",
         "| | ours | paper |", "|---|---|---|",
         f"| average KL(train \\|\\| test) ({t1['divergence_model']} embeddings, t-SNE + KDE; "
         f"bootstrap over {boot.get('resamples', '-')} resamples of the points, biased upward "
         "by their duplicates: read its width, see below) | "
         f"{stats.format_estimate(boot)} | "
         + ("- |" if ref1.get("kl_divergence") is None else
            f"{ref1['kl_divergence']:.3g} (not comparable: a KL depends on the points per "
            "class, and the paper's are not stated) |"),
         f"| the same over {seeds['n']} t-SNE maps (mean ± std, range "
         f"{seeds['min']:.3f}-{seeds['max']:.3f}) | {stats.format_estimate(seeds)} | |",
         f"| its same-distribution floor (train / test labels permuted within each class, "
         f"{perm['permutations']} times; mean ± std) and the permutation p of our KL | "
         f"{stats.format_estimate(perm['null'])}, p = {perm['p_value']:.3g} | |",
         f"| success rate on the test set (eps {eps:g}) | {stats.format_rate(t1['success'])} | "
         f"{_beside(t1['success'], ref1.get('success_rate'))} |",
         f"| test accuracy | {stats.format_rate(t1['accuracy'])} | "
         f"{_beside(t1['accuracy'], ref1.get('test_accuracy'))} |",
         "", f"Points per class, train/test: {t1['kl']['counts'][0]}/{t1['kl']['counts'][1]}, "
         "the same in every class (the KL depends on these counts: Scott's bandwidth scales as "
         "n^(-1/6); compare KLs only between runs with equal counts). The paper's KL was "
         "computed at its own (unstated) counts. The bootstrap resamples each class's points "
         "with replacement on the first t-SNE map: the duplicated points sharpen the KDEs, so "
         "the resampled KLs sit above the estimate (with few points the interval can lie "
         "wholly above it); read its width as the sampling spread of the KL, not as a "
         "bias-corrected interval. The spread over t-SNE maps is the layout's share. A KDE "
         "KL of two finite samples of one distribution is not 0: the permuted floor is that "
         "value at these counts, and only a KL above it is a train/test divergence. "
         "KL per class (first map): "
         + ", ".join(f"{k:.3f}" for k in div["per_class"]) + ".", "",
         "![t-SNE per class](figures/tsne.png)", "",
         f"## Table {2 if ds == 'mnist' else 3 if ds == 'fashion_mnist' else '2/3'}: "
         "scale and shift", "",
         "x' = alpha x + beta on the paper's [-0.5, 0.5] scale. Success: an example found within "
         "the threshold, over the attacked images still classified correctly. Each cell: ours, "
         "then the paper's with its mark.", "",
         "| alpha | beta | accuracy | success, eps | success, alpha * eps | noise start | "
         "grey start | median L-inf found |", "|---|---|---|---|---|---|---|---|"]
  order = [paper.pair_key(a, b) for a, b in protocol.pairs(config.study.alphas)]
  for n, key in enumerate(order):
    row = out["scale_shift"][key]
    ref = out["paper"]["scale_shift"].get(key) or {}
    oor = outside and n > 0

    def cell(c, k):
      theirs = ref.get(k)
      return stats.format_rate(c) + ("" if theirs is None else
                                     f"; paper {_beside(c, theirs, oor)}")
    starts = [stats.format_rate(row["by_start"][s]) if s in row["by_start"] else "-"
              for s in ("noise", "grey")]
    md.append(f"| {row['alpha']:g} | {row['beta']:g} | "
              f"{cell(row['accuracy_cell'], 'accuracy')} | {cell(row['epsilon'], 'epsilon')} | "
              f"{cell(row['alpha_epsilon'], 'alpha_epsilon')} | {starts[0]} | {starts[1]} | "
              f"{stats.format_estimate(row['median_distortion_ci'])} |")
  md += ["", "(noise / grey start: each start alone, at eps.)"
         + (" The searches stopped at their first example within alpha * eps "
            "(attack.stop_at_threshold), so the distortions are upper bounds."
            if config.attack.stop_at_threshold else ""), "",
         "## Claims, their tests and verdicts", "",
         "| claim | test | verdict | detail |", "|---|---|---|---|"]
  md += [f"| {c['claim']} | {c['test']} | **{c['verdict']}** | {c['detail']} |"
         for c in found_claims]
  md += ["", "## Figure 4: transformed inputs and their adversarial examples", "",
         "![Figure 4](figures/figure4.png)", "",
         "Paper's shown distortions: " + (", ".join(
             f"{k}: {v}" for k, v in out["paper"]["figure4"].items()) or "-") + ".", "",
         "## Figures 1-3: success rate against distance to the training set", "",
         "![Figures 1-3](figures/figure1.png)", "",
         "| extractor | AUC of distance, successes vs failures | p (Mann-Whitney) | success, "
         "nearest quarter | success, farthest quarter | farthest - nearest (Newcombe) |",
         "|---|---|---|---|---|---|"]
  for m, tr in out["figure1"]["trend"].items():
    p = "-" if tr["p_value"] is None else f"{tr['p_value']:.2g}"
    d = tr.get("quarters_difference")
    diff = "-" if not d or d["difference"] is None else (
        f"{100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] points")
    md.append(f"| {m} | {stats.format_estimate(tr['auc_ci'])} | {p} | "
              f"{stats.format_rate(tr.get('nearest_cell'))} | "
              f"{stats.format_rate(tr.get('farthest_cell'))} | {diff} |")
  md += ["", "## Figure 5: distances of transformed test images", ""]
  if os.path.exists(os.path.join(workdir, "figures", "figure5.png")):
    md += ["![Figure 5](figures/figure5.png)", ""]
  md += [
         "| extractor | pair | mean, original | mean, transformed | shift (original std) | "
         "KS statistic | KS p | detection AUC |", "|---|---|---|---|---|---|---|---|"]
  for m, rows in out["figure5"].items():
    for key in order[1:]:
      s = rows[key]
      shift = "-" if s["mean_shift_in_std"] is None else f"{s['mean_shift_in_std']:+.3f}"
      md.append(f"| {m} | {key} | {stats.format_estimate(s['mean_original_ci'], '.4g')} | "
                f"{stats.format_estimate(s['mean_transformed_ci'], '.4g')} | "
                f"{shift} | {s['ks_statistic']:.3f} | {s['ks_p_value']:.2g} | "
                f"{stats.format_estimate(s['detection_auc_ci'])} |")
  md += ["", "Detection AUC: a threshold on the distance separating transformed from original "
         "images (0.5: no better than chance); its bootstrap resamples images, each with its "
         "original and transformed distance (paired). The means' intervals are each mean's "
         "own.", ""]
  stages.write_report(workdir, md, timings=timings, versions=out["versions"],
                      settings=out["settings"])
  return out
