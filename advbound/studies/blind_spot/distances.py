"""Stage "distance": every test image's distance to the training set in each extractor's
embedding space (the mean L2 distance to its k nearest training embeddings, all classes), for
the test set and for each scale-and-shift transformation of it, and every model's predictions
of those inputs (Tables 2-3's accuracy)."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
from absl import logging

from advbound import models, stats
from advbound.analysis import evaluate, knn, scale_shift
from advbound.runtime import io
from advbound.studies.blind_spot import paper, protocol

PATH = os.path.join("distance", "distances.npz")


def test_split(config, test):
  """The test images the study uses: the first study.test_images (None: all)."""
  n = config.study.test_images
  if n is None:
    return test
  return dataclasses.replace(test, images=test.images[:int(n)], labels=test.labels[:int(n)])


def embed(model, x, *, batch_size: int) -> np.ndarray:
  """float32 [N, D] embeddings of x in compiled chunks (NaN / inf raise)."""
  return evaluate.logits(models.as_embedding_fn(model), x, batch_size=batch_size)


def run(config, workdir: str, *, data: dict, trained: dict, stamps: dict) -> dict:
  """Computes (or reads back) DIR/distance/distances.npz:

    pairs float32 [P, 2]; labels int32 [T];
    distance_<model> float32 [P, T]: mean distance to the k nearest training embeddings;
    predicted_<model> int32 [P, T].

  Returns {"accuracy": {model: {pair key: accuracy}}, "accuracy_cells": {model: {pair key:
  stats.proportion of correct predictions over the T test images}}, "mean_distance": {model:
  {pair key: ..}}, "test_images": T, "train_images": N}."""
  test = test_split(config, data["test"])
  train = data["train"]
  grid = protocol.pairs(config.study.alphas)
  names = sorted(set(config.study.extractors) | {config.study.attacked})
  stamp = json.dumps(dict(study=config.study.to_dict(), distance=config.distance.to_dict(),
                          models={m: stamps[m] for m in names}), sort_keys=True, default=str)
  path = os.path.join(workdir, PATH)
  arrays = io.read_npz_if_current(path, stamp)
  if arrays is None:
    arrays = dict(pairs=np.asarray(grid, np.float32), labels=test.labels.astype(np.int32))
    bs, d = int(config.study.batch_size), config.distance
    transformed = [np.asarray(scale_shift.scale_shift(test.images, a, b, bounds=test.bounds))
                   for a, b in grid]
    for name in names:
      model = trained[name]
      fn = models.as_logits_fn(model)
      arrays[f"predicted_{name}"] = np.stack(
          [evaluate.predict(fn, x, batch_size=bs) for x in transformed])
      if name not in config.study.extractors:
        continue
      reference = embed(model, train.images, batch_size=bs)
      rows = []
      for (a, b), x in zip(grid, transformed):
        rows.append(knn.mean_knn_distance(embed(model, x, batch_size=bs), reference, int(d.k),
                                          query_chunk=int(d.query_chunk),
                                          reference_block=int(d.reference_block)))
        logging.info("distance %s at %s: mean %.4g", name, paper.pair_key(a, b),
                     float(rows[-1].mean()))
      arrays[f"distance_{name}"] = np.stack(rows).astype(np.float32)
    with io.atomic_path(path) as tmp:
      np.savez(tmp, settings=np.asarray(stamp), **arrays)
  keys = [paper.pair_key(a, b) for a, b in grid]
  labels = arrays["labels"]
  return dict(
      test_images=int(len(labels)), train_images=int(len(train)),
      accuracy={m: {k: float(np.mean(arrays[f"predicted_{m}"][i] == labels))
                    for i, k in enumerate(keys)} for m in names},
      accuracy_cells={m: {k: stats.of(arrays[f"predicted_{m}"][i] == labels)
                          for i, k in enumerate(keys)} for m in names},
      mean_distance={m: {k: float(arrays[f"distance_{m}"][i].mean()) for i, k in enumerate(keys)}
                     for m in config.study.extractors})


def load(workdir: str) -> dict:
  """The arrays of DIR/distance/distances.npz."""
  with np.load(os.path.join(workdir, PATH)) as f:
    return {k: f[k] for k in f.files if k != "settings"}
