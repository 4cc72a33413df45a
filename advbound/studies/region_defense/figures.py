"""Cao & Gong's Figure 2 (label histograms of cube samples) and image grids (Figures 1, 5, 9)
(stage "figures").

Figure 2: `figures.histogram_samples` uniform samples of the cube of the learned radius around
one evaluated benign image (the first of class 0, else the first) and around each of its T-CW
examples (one per target), for T-CW-L2, T-CW-L0 and T-CW-Linf: `figures/figure2_<attack>.png`
and the counts in `figures/figure2.npz`. Grids: one evaluated image per class (rows) x every
target (columns; the benign image on the diagonal), each cell captioned with the region
classifier's label (green where it is the target): T-CW-L2 (Figure 1), T-CW-L2 at kappa
`grid_kappa` (Figure 5), T-CW-L2-A at alpha `grid_alpha` (Figure 9).
"""

from __future__ import annotations

import os

import jax
import numpy as np

from advbound import region
from advbound.attacks import compose
from advbound.runtime import io
from advbound.studies import plots
from advbound.studies.region_defense import attacks as attacks_lib, protocol, region_scores


def _one_per_class(labels, num_classes):
  """Positions (in the evaluated images) of the first image of each class present."""
  return {c: int(np.flatnonzero(labels == c)[0]) for c in range(num_classes)
          if np.any(labels == c)}


def run(config, workdir: str, *, data: dict, fns: dict, radius: float, attacked: dict) -> dict:
  test = data["test"]
  point = config.study.point
  fcfg = config.figures
  chosen = attacks_lib.load_chosen(workdir)
  x = test.images[chosen["indices"]]
  k = test.num_classes
  made = attacked["attacks"][point]
  folder = os.path.join(workdir, "figures")
  out = {"figure2": {}, "grids": {}}
  # Figure 2
  zeros = np.flatnonzero(chosen["labels"] == 0)
  img = int(zeros[0]) if len(zeros) else 0
  pairs = np.flatnonzero(chosen["rows"] == img)
  counts = {}
  for attack in ("T-CW-L2", "T-CW-L0", "T-CW-Linf"):
    if attack not in made:
      continue
    adv = attacks_lib.load(workdir, point, attack)["adversarial"][pairs]
    inputs = np.concatenate([x[img:img + 1], adv])
    c = region.count_votes(fns[point], jax.random.key(fcfg.seed), inputs, scale=radius,
                           num_samples=int(fcfg.histogram_samples), bounds=test.bounds,
                           batch_size=config.region.batch_size)
    counts[attack] = np.asarray(c)
    titles = [f"benign ({chosen['labels'][img]})"] + [f"target {t}"
                                                      for t in chosen["targets"][pairs]]
    name = f"figure2_{attack}.png"
    plots.save(plots.label_histograms(counts[attack], titles), os.path.join(folder, name))
    out["figure2"][attack] = {"file": f"figures/{name}", "image": int(chosen["indices"][img]),
                              "label": int(chosen["labels"][img]),
                              "majority": np.argmax(counts[attack], 1).tolist(),
                              "targets": chosen["targets"][pairs].tolist()}
  if counts:
    with io.atomic_path(os.path.join(folder, "figure2.npz")) as tmp:
      np.savez(tmp, **counts)
  # grids
  rows = _one_per_class(chosen["labels"], k)
  grids = [("figure1", "T-CW-L2", None)]
  stem = attacks_lib.artifact_name("T-CW-L2", float(fcfg.grid_kappa))
  if stem in made:
    grids.append(("figure5", stem, None))
  if "T-CW-L2" in made:
    grids.append(("figure9", "T-CW-L2", float(fcfg.grid_alpha)))
  adapted = "T-CW-L2" in config.adapted.attacks
  alphas = [float(a) for a in config.adapted.alphas] if adapted else []
  benign = region_scores.load(workdir, "benign")[0]  # the grids show the first noise draw
  for name, stem, alpha in grids:
    if stem not in made:
      continue
    adv = attacks_lib.load(workdir, point, stem)["adversarial"]
    if alpha is None:  # the region stage labelled these examples already
      labels = region_scores.load(workdir, stem)[0]
    else:
      xs = attacks_lib.inputs(chosen, test, "T-CW-L2")[0]
      adv = np.asarray(compose.amplify(xs, adv, alpha, bounds=test.bounds))
      if alpha in alphas:  # ... and these, at each alpha of the adapted attack
        labels = region_scores.load(workdir, "adapted_T-CW-L2")[alphas.index(alpha)][0]
      else:
        labels = protocol.region_labels(fns[point], adv, radius=radius, bounds=test.bounds,
                                        region_cfg=config.region, query=f"T-CW-L2-A_{alpha:g}")
    cells, notes, good, fooled = [], [], [], 0
    for c, i in rows.items():
      row_cells, row_notes, row_good = [], [], []
      for t in range(k):
        p = None if t == c else int(np.flatnonzero((chosen["rows"] == i)
                                                   & (chosen["targets"] == t))[0])
        row_cells.append(x[i] if p is None else adv[p])
        label = benign[i] if p is None else labels[p]
        row_notes.append(f"RC {label}")
        row_good.append(bool(label == t))
        fooled += int(p is not None and label == t)
      cells.append(row_cells), notes.append(row_notes), good.append(row_good)
    fig = plots.example_grid(cells, notes, bounds=test.bounds,
                             row_titles=[str(c) for c in rows],
                             col_titles=[f"target {t}" for t in range(k)], good=good)
    plots.save(fig, os.path.join(folder, f"{name}.png"))
    out["grids"][name] = {"file": f"figures/{name}.png", "examples": stem,
                          "alpha": alpha, "region_fooled": fooled,
                          "cells": len(rows) * (k - 1)}
  return out
