"""report.md and results.json of the blind-spot study (stage "report").

results.json (stable keys; a pair key is "alpha=0.9,beta=0.05", beta on the paper's [-0.5, 0.5]
scale; a rate cell is {"success_rate" (null if nothing attacked), "successes", "attempts"},
counted over the attacked images the model classifies correctly after the transformation):

  dataset                       "mnist" | "fashion_mnist" | "cifar10"
  table1                        {kl_divergence, success_rate, test_accuracy, successes,
                                 attempts, divergence_model}
  scale_shift[pair]             Tables 2-3: {alpha, beta, accuracy (all study test images),
                                 epsilon: rate cell, alpha_epsilon: rate cell, thresholds,
                                 by_start[start]: rate cell at epsilon, median_distortion}
  accuracy[model][pair]         every model's accuracy on the transformed test images
  mean_distance[extractor][pair]  mean distance to the k nearest training embeddings
  figure1.bins[extractor]       Figures 1-3: {edges, counts, attempts, successes, success_rate}
  figure1.trend[extractor]      {auc (distance separating successes from failures), p_value,
                                 nearest_quarter, farthest_quarter (success rates)}
  figure5[extractor][pair]      {ks_statistic, ks_p_value, mean_original, mean_transformed,
                                 std_original, std_transformed, mean_shift_in_std,
                                 detection_auc}
  divergence                    {model, per_class: [KL], mean, counts: [[train, test]]}
  test_images, train_images, attacked_images, epsilon
  paper                         {table1, scale_shift[pair]: {accuracy, epsilon, alpha_epsilon},
                                 figure4[pair]: distortion}
  seconds, settings, versions
"""

from __future__ import annotations

import os

from advbound import io, stages
from advbound.studies.blind_spot import paper, protocol


def _pct(v) -> str:
  return "-" if v is None else f"{100 * v:.1f}%"


def _rate(cell) -> str:
  return f"{_pct(cell['success_rate'])} ({cell['successes']}/{cell['attempts']})"


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
      "mean_distance": dist["mean_distance"],
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
  md = [f"# The blind-spot study reproduced on {ds}", "",
        f"Models: {config.model.name}, naturally trained and PGD-trained (attacked: "
        f"{config.study.attacked}). {out['test_images']} test images, {out['train_images']} "
        f"training images; C&W L-inf on {out['attacked_images']} of the test images (a seeded "
        f"draw) from the starts {tuple(config.attack.starts)}, epsilon {eps:g} on the data's scale. "
        "The paper's numbers in parentheses. " + (config.get("note", "") or ""), "",
        "## Table 1: train/test divergence, success rate and accuracy", "",
        "| | ours | paper |", "|---|---|---|",
        f"| average KL(train \\|\\| test) ({t1['divergence_model']} embeddings, t-SNE + KDE) | "
        f"{t1['kl_divergence']:.3f} | {ref1.get('kl_divergence', '-')} |",
        f"| success rate on the test set (eps {eps:g}) | {_pct(t1['success_rate'])} "
        f"({t1['successes']}/{t1['attempts']}) | {_pct(ref1.get('success_rate'))} |",
        f"| test accuracy | {_pct(t1['test_accuracy'])} | {_pct(ref1.get('test_accuracy'))} |",
        "", "KL per class: " + ", ".join(f"{k:.3f}" for k in out["divergence"]["per_class"])
        + " (points per class, train/test: "
        + ", ".join(f"{a}/{b}" for a, b in out["divergence"]["counts"]) + ").", "",
        "![t-SNE per class](figures/tsne.png)", "",
        f"## Table {2 if ds == 'mnist' else 3 if ds == 'fashion_mnist' else '2/3'}: "
        "scale and shift", "",
        "x' = alpha x + beta on the paper's [-0.5, 0.5] scale. Success: an example found within "
        "the threshold, over the attacked images still classified correctly.", "",
        "| alpha | beta | accuracy | success, eps | success, alpha * eps | noise start | "
        "grey start | median L-inf found |", "|---|---|---|---|---|---|---|---|"]
  order = [paper.pair_key(a, b) for a, b in protocol.pairs(config.study.alphas)]
  for key in order:
    row = out["scale_shift"][key]
    ref = out["paper"]["scale_shift"].get(key)
    theirs = (lambda k: f" ({_pct(ref[k])})") if ref else (lambda k: "")
    starts = [_rate(row["by_start"][s]) if s in row["by_start"] else "-"
              for s in ("noise", "grey")]
    med = row["median_distortion"]
    md.append(f"| {row['alpha']:g} | {row['beta']:g} | {_pct(row['accuracy'])}"
              f"{theirs('accuracy')} | {_rate(row['epsilon'])}{theirs('epsilon')} | "
              f"{_rate(row['alpha_epsilon'])}{theirs('alpha_epsilon')} | {starts[0]} | "
              f"{starts[1]} | {'-' if med is None else f'{med:.3f}'} |")
  md += ["", "(noise / grey start: each start alone, at eps.)"
         + (" The searches stopped at their first example within alpha * eps "
            "(attack.stop_at_threshold), so the distortions are upper bounds."
            if config.attack.stop_at_threshold else ""), "",
         "## Figure 4: transformed inputs and their adversarial examples", "",
         "![Figure 4](figures/figure4.png)", "",
         "Paper's shown distortions: " + (", ".join(
             f"{k}: {v}" for k, v in out["paper"]["figure4"].items()) or "-") + ".", "",
         "## Figures 1-3: success rate against distance to the training set", "",
         "![Figures 1-3](figures/figure1.png)", "",
         "| extractor | AUC of distance, successes vs failures | p (Mann-Whitney) | success, "
         "nearest quarter | success, farthest quarter |", "|---|---|---|---|---|"]
  for m, tr in out["figure1"]["trend"].items():
    auc = "-" if tr["auc"] is None else f"{tr['auc']:.3f}"
    p = "-" if tr["p_value"] is None else f"{tr['p_value']:.2g}"
    md.append(f"| {m} | {auc} | {p} | {_pct(tr['nearest_quarter'])} | "
              f"{_pct(tr['farthest_quarter'])} |")
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
      md.append(f"| {m} | {key} | {s['mean_original']:.4g} | {s['mean_transformed']:.4g} | "
                f"{shift} | {s['ks_statistic']:.3f} | {s['ks_p_value']:.2g} | "
                f"{s['detection_auc']:.3f} |")
  md += ["", "Detection AUC: a threshold on the distance separating transformed from original "
         "images (0.5: no better than chance).", ""]
  stages.write_report(workdir, md, timings=timings, versions=out["versions"],
                      settings=out["settings"])
  return out
