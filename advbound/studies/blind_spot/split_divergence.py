"""Stage "divergence": the train/test divergence of the paper's Table 1. Per class, the training
and test embeddings (one model's feature extractor) are projected together to 2-D by t-SNE
(scikit-learn), each set gets a Gaussian KDE (Scott's rule, scipy), and KL(train || test) is
integrated over the points' bounding box (advbound.divergence); the classes are averaged.

The settings the paper leaves open are ours: scikit-learn's (Barnes-Hut) t-SNE with perplexity
30 (capped at (n - 1) / 3 for small classes), PCA initialisation, the "auto" learning rate, `divergence.max_iter` iterations and
random_state = seed + class; the KL grid has `divergence.grid` points per axis.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import logging
from sklearn import manifold

from advbound import divergence, io
from advbound.studies.blind_spot import distances


def _subsample(idx: np.ndarray, limit, rng) -> np.ndarray:
  if limit is None or len(idx) <= int(limit):
    return idx
  return np.sort(rng.choice(idx, int(limit), replace=False))


def tsne(points, *, perplexity: float, max_iter: int, seed: int) -> np.ndarray:
  """float64 [N, 2] t-SNE of float [N, D] points (scikit-learn, settings in the docstring)."""
  points = np.asarray(points, np.float32)
  perplexity = min(float(perplexity), (len(points) - 1) / 3.0)
  return manifold.TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                       max_iter=int(max_iter), random_state=int(seed)).fit_transform(points)


def run(config, workdir: str, *, data: dict, trained: dict, stamps: dict) -> dict:
  """Per class: DIR/divergence/class_<c>.json ({"kl", "train", "test"} counts) and
  class_<c>.npz (the 2-D points, for the figure). Returns {"model", "per_class": [KL ...],
  "mean", "counts": [[train, test] ...]}."""
  cfg = config.divergence
  model = trained[cfg.model]
  train, test = data["train"], distances.test_split(config, data["test"])
  stamp = json.dumps(dict(divergence=cfg.to_dict(), test_images=config.study.test_images,
                          model=stamps[cfg.model]), sort_keys=True, default=str)
  folder = os.path.join(workdir, "divergence")
  per_class, counts = [], []
  for c in range(train.num_classes):
    path = os.path.join(folder, f"class_{c}.json")
    done = io.read_json_if_current(path, stamp)
    if done is None:
      rng = np.random.default_rng(int(cfg.seed) + c)
      tr = _subsample(np.flatnonzero(train.labels == c), cfg.train_per_class, rng)
      te = _subsample(np.flatnonzero(test.labels == c), cfg.test_per_class, rng)
      if len(tr) < 3 or len(te) < 3:
        raise ValueError(f"class {c}: {len(tr)} training and {len(te)} test images; the KDE "
                         "needs at least 3 of each")
      bs = int(config.study.batch_size)
      emb = distances.embed(model, np.concatenate([train.images[tr], test.images[te]]),
                            batch_size=bs)
      points = tsne(emb, perplexity=cfg.perplexity, max_iter=cfg.max_iter,
                    seed=int(cfg.seed) + c)
      kl = divergence.kl_divergence(points[:len(tr)], points[len(tr):], grid=int(cfg.grid))
      with io.atomic_path(os.path.join(folder, f"class_{c}.npz")) as tmp:
        np.savez(tmp, train=points[:len(tr)].astype(np.float32),
                 test=points[len(tr):].astype(np.float32))
      done = dict(settings=stamp, kl=kl, train=int(len(tr)), test=int(len(te)))
      io.write_json(path, done)
      logging.info("divergence: class %d, %d train + %d test points, KL(train || test) = %.4f",
                   c, len(tr), len(te), kl)
    per_class.append(float(done["kl"]))
    counts.append([done["train"], done["test"]])
  return dict(model=cfg.model, per_class=per_class, mean=float(np.mean(per_class)),
              counts=counts)
