"""Stage "divergence": the train/test divergence of the paper's Table 1. Per class, an equal
number of training and test embeddings (one model's feature extractor) are projected together
to 2-D by t-SNE (scikit-learn), each set gets a Gaussian KDE (Scott's rule, scipy), and
KL(train || test) is integrated over the points' bounding box (advbound.analysis.divergence); the
classes are averaged.

Equal counts: Scott's bandwidth scales as n^(-1/6) and t-SNE's layout depends on n, so a KL is
comparable between data sets only at the same numbers of points. Every class of every data set
draws exactly `divergence.train_per_class` training and `test_per_class` test images (a seeded
draw; a class with fewer is an error, not a smaller draw).

Uncertainty, two sources: the t-SNE layout (`divergence.seeds` maps of the same points, their
class-mean KLs summarised by `stats.spread`), and the sample of points (a percentile
`stats.bootstrap` of the class-mean KL over `divergence.resamples` resamples, with replacement,
of each class's training and test points on the first map; the map itself is not recomputed).
The resamples' duplicated points sharpen the KDEs, so the bootstrap distribution sits above the
estimate (with few points the percentile interval can exclude it): its width is the sampling
spread (tests/blind_spot_study_test.py checks it against fresh samples), its centre is biased.
And a KDE KL of two finite samples of ONE distribution is not 0: `permutation_mean_kl` gives
that floor at the run's counts (train / test labels permuted within each class of the first
map, `divergence.resamples` times) and the permutation p-value of the observed KL.

The settings the paper leaves open are ours: scikit-learn's (Barnes-Hut) t-SNE with perplexity
30 (capped at (n - 1) / 3 for small classes), `divergence.init` initialisation ("random", the
scikit-learn default when the paper was written, up to 1.1; "pca" goes through a randomised
SVD whose BLAS results vary with the machine and thread count, which changes the whole layout),
the "auto" learning rate, `divergence.max_iter` iterations; the KL grid has `divergence.grid`
points per axis.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
from absl import logging
from sklearn import manifold

from advbound import stats
from advbound.analysis import divergence
from advbound.runtime import io, probe
from advbound.studies.blind_spot import distances

INITS = ("random", "pca")


def draw(labels, c: int, count: int, seed) -> np.ndarray:
  """int [count]: a seeded draw of exactly `count` indices of class c from labels [N],
  ascending. Raises ValueError if the class has fewer."""
  idx = np.flatnonzero(np.asarray(labels) == c)
  if len(idx) < int(count):
    raise ValueError(f"class {c} has {len(idx)} images, fewer than the {count} per class the "
                     "divergence draws (equal counts for every class and data set)")
  return np.sort(np.random.default_rng(seed).choice(idx, int(count), replace=False))


def tsne_seed(seed: int, c: int, j: int) -> int:
  """The t-SNE random_state of map j of class c (independent streams per class and map)."""
  return int(np.random.SeedSequence([int(seed), int(c), int(j)]).generate_state(1)[0])


def tsne(points, *, perplexity: float, max_iter: int, seed: int,
         init: str = "random") -> np.ndarray:
  """float32 [N, 2] t-SNE of float [N, D] points (scikit-learn, settings in the docstring)."""
  if init not in INITS:
    raise ValueError(f"init must be one of {INITS}, got {init!r}")
  points = np.asarray(points, np.float32)
  perplexity = min(float(perplexity), (len(points) - 1) / 3.0)
  return manifold.TSNE(n_components=2, perplexity=perplexity, init=init, learning_rate="auto",
                       max_iter=int(max_iter), random_state=int(seed)).fit_transform(points)


def bootstrap_mean_kl(maps, *, grid: int, resamples: int, seed: int) -> dict:
  """Percentile bootstrap of the class-mean KL(train || test) over resamples of the points.

  Args:
    maps: per class, (train float [n_c, 2], test float [m_c, 2]) points of one t-SNE map.
    grid, resamples, seed: the KL grid, the number of resamples, the resampling seed.
  Returns:
    a `stats.bootstrap` cell {"estimate" (the class-mean KL of the points as drawn), "low",
    "high", "n" (points per class, train + test), ...}: each class's training and test points
    are resampled independently, with replacement, at their own sizes.
  """
  maps = [(np.asarray(a, np.float64), np.asarray(b, np.float64)) for a, b in maps]
  if not maps:
    raise ValueError("bootstrap_mean_kl needs at least one class")
  groups = tuple(np.arange(len(p), dtype=np.float64) for pair in maps for p in pair)

  def mean_kl(*idx):
    kls = [divergence.kl_divergence(a[idx[2 * c].astype(int)], b[idx[2 * c + 1].astype(int)],
                                    grid=grid) for c, (a, b) in enumerate(maps)]
    return float(np.mean(kls))

  cell = stats.bootstrap(groups, mean_kl, seed=int(seed), num_resamples=int(resamples))
  cell["n"] = [len(maps[0][0]), len(maps[0][1])]
  cell["resamples"] = int(resamples)
  return cell


def permutation_mean_kl(maps, *, grid: int, permutations: int, seed: int) -> dict:
  """The same-distribution floor of the class-mean KL at these counts, and a permutation test.

  Per class, the map's training and test points are pooled and split at random into sets of
  the same sizes (what train and test would look like if they came from one distribution),
  and the class-mean KL is recomputed, `permutations` times. A KDE KL of two finite samples of
  one distribution is not 0, so the observed KL is a divergence only beyond this floor.

  Returns {"observed", "null": stats.spread of the permuted class-mean KLs, "excess":
  observed - null mean, "p_value": (1 + #{null >= observed}) / (1 + permutations),
  "permutations", "seed"}.
  """
  maps = [(np.asarray(a, np.float64), np.asarray(b, np.float64)) for a, b in maps]
  if not maps or int(permutations) < 1:
    raise ValueError(f"permutation_mean_kl needs classes and permutations >= 1, got "
                     f"{len(maps)} classes, {permutations!r} permutations")
  observed = float(np.mean([divergence.kl_divergence(a, b, grid=grid) for a, b in maps]))
  rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
  null = []
  for _ in range(int(permutations)):
    kls = []
    for a, b in maps:
      pooled = np.concatenate([a, b])[rng.permutation(len(a) + len(b))]
      kls.append(divergence.kl_divergence(pooled[:len(a)], pooled[len(a):], grid=grid))
    null.append(float(np.mean(kls)))
  spread = stats.spread(null)
  return dict(observed=observed, null=spread, excess=observed - spread["mean"],
              p_value=(1 + int(np.sum(np.asarray(null) >= observed))) / (1 + len(null)),
              permutations=int(permutations), seed=int(seed))


def run(config, workdir: str, *, data: dict, trained: dict, stamps: dict) -> dict:
  """Per class: DIR/divergence/class_<c>.json ({"kl": [per map], "train", "test"} counts) and
  class_<c>.npz (the first map's 2-D points, for the figure and the bootstrap). Returns

    {"model", "per_class": [KL of map 0], "mean": their mean, "counts": [[train, test] ...],
     "per_map": [[KL per class] per map], "seeds": stats.spread of the class-mean KL over the
     maps, "bootstrap": bootstrap_mean_kl of map 0, "permutation": permutation_mean_kl of map 0
     (divergence.resamples permutations), "init"}.
  """
  cfg = config.divergence
  model = trained[cfg.model]
  train, test = data["train"], distances.test_split(config, data["test"])
  stamp = json.dumps(dict(divergence=cfg.to_dict(), test_images=config.study.test_images,
                          model=stamps[cfg.model]), sort_keys=True, default=str)
  folder = os.path.join(workdir, "divergence")
  maps_kl, counts, first = [], [], []

  def of_class(c: int) -> dict:
    path = os.path.join(folder, f"class_{c}.json")
    npz = os.path.join(folder, f"class_{c}.npz")
    done = io.read_json_if_current(path, stamp)
    if done is None or not os.path.exists(npz):
      tr = draw(train.labels, c, cfg.train_per_class, [int(cfg.seed), c, 0])
      te = draw(test.labels, c, cfg.test_per_class, [int(cfg.seed), c, 1])
      emb = distances.embed(model, np.concatenate([train.images[tr], test.images[te]]),
                            batch_size=int(config.study.batch_size))

      def one_map(j: int) -> float:
        points = tsne(emb, perplexity=cfg.perplexity, max_iter=cfg.max_iter,
                      seed=tsne_seed(cfg.seed, c, j), init=cfg.init)
        if j == 0:
          with io.atomic_path(npz) as tmp:
            np.savez(tmp, train=points[:len(tr)].astype(np.float32),
                     test=points[len(tr):].astype(np.float32))
        return divergence.kl_divergence(points[:len(tr)], points[len(tr):], grid=int(cfg.grid))

      # the maps (and the classes, below) are alike: --estimate runs a few and projects the rest
      kls = probe.each(one_map, int(cfg.seeds), "t-SNE maps")
      done = dict(settings=stamp, kl=kls, train=int(len(tr)), test=int(len(te)))
      io.write_json(path, done)
      logging.info("divergence: class %d, %d train + %d test points, KL(train || test) over "
                   "%d maps: %s", c, len(tr), len(te), len(kls),
                   ", ".join(f"{k:.4f}" for k in kls))
    return done

  classes = probe.each(lambda c: (of_class(c), c), train.num_classes, "divergence classes")
  for c, (done, source) in enumerate(classes):
    if source != c:  # a class a probe skipped: the warm class's map stands in for it
      shutil.copy2(os.path.join(folder, f"class_{source}.npz"),
                   os.path.join(folder, f"class_{c}.npz"))
      io.write_json(os.path.join(folder, f"class_{c}.json"), done)
    maps_kl.append([float(k) for k in done["kl"]])
    counts.append([done["train"], done["test"]])
    with np.load(os.path.join(folder, f"class_{c}.npz")) as f:
      first.append((f["train"], f["test"]))
  per_map = np.asarray(maps_kl).T  # [maps, classes]
  # each resample / permutation recomputes 10 KLs: --estimate times a few and projects the rest
  boot = probe.reduced(int(cfg.resamples), "bootstrap resamples", lambda k: bootstrap_mean_kl(
      first, grid=int(cfg.grid), resamples=k, seed=int(cfg.seed)))
  floor = probe.reduced(int(cfg.resamples), "permutations", lambda k: permutation_mean_kl(
      first, grid=int(cfg.grid), permutations=k, seed=int(cfg.seed)))
  logging.info("divergence: class-mean KL %s; over %d maps %s; permuted floor %s (p = %.3g)",
               stats.format_estimate(boot), per_map.shape[0],
               stats.format_estimate(stats.spread(per_map.mean(1))),
               stats.format_estimate(floor["null"]), floor["p_value"])
  return dict(model=cfg.model, per_class=per_map[0].tolist(), mean=float(per_map[0].mean()),
              counts=counts, per_map=per_map.tolist(), seeds=stats.spread(per_map.mean(1)),
              bootstrap=boot, permutation=floor, init=cfg.init)
