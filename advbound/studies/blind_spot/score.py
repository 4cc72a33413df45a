"""Stage "score": Tables 1-3, the distance bins of Figures 1-3, Figure 5's two-sample
comparison, the paper's claims with their verdicts (claims.py), and the figures (files under
DIR/figures/). Every rate is a `stats.proportion` cell; every mean, median and AUC gets a
percentile `stats.bootstrap` interval of RESAMPLES resamples from BOOTSTRAP_SEED."""

from __future__ import annotations

import os

import numpy as np

from advbound import stats
from advbound.runtime import io
from advbound.studies import plots
from advbound.studies.blind_spot import attacks, claims, distances, figures, paper, protocol

BOOTSTRAP_SEED = 0
RESAMPLES = 1000


def compute(config, workdir: str, *, test, divergence: dict, distance: dict) -> dict:
  """Returns score/tables.json's content (the layout is documented in report.py)."""
  study = config.study
  grid = protocol.pairs(study.alphas)
  dist = distances.load(workdir)
  labels = dist["labels"]
  eps = float(study.epsilon)
  rows, attacked = {}, {}
  right = dist[f"predicted_{study.attacked}"] == labels  # bool [P, T]
  for i, (alpha, beta) in enumerate(grid):
    key = paper.pair_key(alpha, beta)
    a = attacks.load(workdir, alpha, beta)
    attacked[key] = a
    correct = a["correct"]
    best = _over_drawn(correct, a["best"])
    by_start = {s: protocol.success(correct, _over_drawn(correct, a[f"linf_{s}"]), eps)
                for s in config.attack.starts}
    found = a["best"][np.isfinite(a["best"])]
    rows[key] = dict(
        alpha=alpha, beta=beta,
        accuracy=distance["accuracy"][study.attacked][key],
        accuracy_cell=distance["accuracy_cells"][study.attacked][key],
        # paired: per test image, correct after the transformation minus correct before
        accuracy_change=stats.bootstrap(right[i].astype(np.float64) - right[0],
                                        seed=BOOTSTRAP_SEED, num_resamples=RESAMPLES),
        epsilon=protocol.success(correct, best, eps),
        alpha_epsilon=protocol.success(correct, best, alpha * eps),
        thresholds=[eps, alpha * eps], by_start=by_start,
        median_distortion=float(np.median(found)) if found.size else None,
        median_distortion_ci=stats.bootstrap(found, np.median, seed=BOOTSTRAP_SEED,
                                             num_resamples=RESAMPLES))
  first = paper.pair_key(*grid[0])
  table1 = dict(kl_divergence=divergence["mean"],
                success_rate=rows[first]["epsilon"]["success_rate"],
                test_accuracy=rows[first]["accuracy"],
                successes=rows[first]["epsilon"]["successes"],
                attempts=rows[first]["epsilon"]["attempts"], divergence_model=divergence["model"],
                success=rows[first]["epsilon"], accuracy=rows[first]["accuracy_cell"],
                kl=dict(bootstrap=divergence["bootstrap"], seeds=divergence["seeds"],
                        permutation=divergence["permutation"],
                        counts=divergence["counts"][0]))

  # Figures 1-3: success at epsilon on the untransformed images against their distance
  a0 = attacked[first]
  ok = a0["best"] <= np.float32(eps)  # as protocol.success counts (inf: nothing found)
  bins, trend = {}, {}
  for m in study.extractors:
    d0 = dist[f"distance_{m}"][0]
    bins[m] = protocol.binned(d0, d0[a0["index"]], ok, int(config.distance.bins))
    trend[m] = protocol.distance_trend(d0[a0["index"]], ok, seed=BOOTSTRAP_SEED,
                                       resamples=RESAMPLES)

  # Figure 5: the distances of the transformed test images against the originals'
  shifts = {m: {paper.pair_key(al, be): protocol.shift(dist[f"distance_{m}"][0],
                                                       dist[f"distance_{m}"][i],
                                                       seed=BOOTSTRAP_SEED, resamples=RESAMPLES)
                for i, (al, be) in enumerate(grid) if i > 0}
            for m in study.extractors}
  mean_distance = {m: {paper.pair_key(al, be): stats.bootstrap(
      dist[f"distance_{m}"][i], seed=BOOTSTRAP_SEED, num_resamples=RESAMPLES)
                       for i, (al, be) in enumerate(grid)} for m in study.extractors}
  ds = config.data.name
  pair = config.figures.histogram_pair
  found_claims = claims.evaluate(
      rows=rows, order=[paper.pair_key(a, b) for a, b in grid], table1=table1, trend=trend,
      shifts=shifts,
      paper_rows={paper.pair_key(*k): dict(accuracy=v[0], epsilon=v[1], alpha_epsilon=v[2])
                  for k, v in paper.SCALE_SHIFT.get(ds, {}).items()},
      paper_table1=paper.TABLE1.get(ds),
      histogram_key=None if pair is None else paper.pair_key(*map(float, pair)),
      permutation=divergence["permutation"])
  out = dict(table1=table1, scale_shift=rows, figure1=dict(bins=bins, trend=trend),
             figure5=shifts, mean_distance=mean_distance, claims=found_claims,
             test_images=int(len(labels)))
  _figures(config, workdir, out, dist, attacked, grid, distances.test_split(config, test))
  return out


def _over_drawn(correct, values) -> np.ndarray:
  """float32 [N]: per drawn image, its attacked row's value, inf where it was not attacked."""
  out = np.full(len(correct), np.inf, np.float32)
  out[correct] = values
  return out


def _figures(config, workdir, out, dist, attacked, grid, test) -> None:
  folder = os.path.join(workdir, "figures")
  study = config.study
  plots.save(figures.success_by_distance(out["figure1"]["bins"], epsilon=study.epsilon),
             os.path.join(folder, "figure1.png"))
  pair = config.figures.histogram_pair
  h = None if pair is None else tuple(float(v) for v in pair)
  if h is not None and h in grid:
    i = list(grid).index(h)
    plots.save(figures.distance_histograms(
        {m: (dist[f"distance_{m}"][0], dist[f"distance_{m}"][i]) for m in study.extractors},
        label=paper.pair_key(*h), bins=int(config.figures.histogram_bins)),
        os.path.join(folder, "figure5.png"))
  plots.save(figures.examples(attacked, grid, test, int(config.figures.examples),
                              epsilon=float(study.epsilon)),
             os.path.join(folder, "figure4.png"))
  plots.save(figures.tsne(workdir), os.path.join(folder, "tsne.png"))


def run(config, workdir: str, *, test, divergence: dict, distance: dict) -> dict:
  out = compute(config, workdir, test=test, divergence=divergence, distance=distance)
  io.write_json(os.path.join(workdir, "score", "tables.json"), out)
  return out
