"""He et al.'s boundary study (section 4): boundary information of benign and adversarial inputs,
its summaries, and Figures 1-3 (RMS) with their L-inf versions (Figures 6-7).

Artifacts under `workdir/boundary/`:
  `<variant>/<examples>.npz`: center, distance, adjacent, evaluations for every input, the
    example's attack success (all True for benign) and a settings stamp. While it is computed,
    every chunk of `config.boundary.chunk_images` inputs is written atomically to
    `<variant>/<examples>.parts/`; a rerun continues after the parts it finds, and an artifact
    or part whose stamp differs (or that cannot be read) is recomputed.
  `summary.json`: per variant and example type, averages of the per-input summaries.
  `figures/figure{1,2,3}_<variant>_{rms,linf}.png`.
The adversarial examples come from `attack_study.run` (computed there if missing).
"""

from __future__ import annotations

import hashlib
import json
import os

import jax
import numpy as np

from advbound import boundary
from advbound.runtime import io
from advbound.studies import plots, variants as variants_lib

from advbound.directions import random_orthogonal
from advbound.studies.decision_boundary import attack_study

_FIELDS = ("center", "distance", "adjacent", "evaluations")


def directions_for(config, image_shape) -> jax.Array:
  """The study's directions [M, *image_shape] from config.boundary (num, both_signs, seed)."""
  b = config.boundary
  return random_orthogonal(jax.random.key(b.seed), b.num_directions, tuple(image_shape),
                           both_signs=b.both_signs)


def search_resumable(path: str, stamp: str, fn, x, success, directions, search_kwargs: dict,
                     chunk: int) -> dict:
  """boundary.search over `x` [N, ...] chunk by chunk, resumable with no lost chunk.

  Each finished chunk is written atomically to its own file `<path without .npz>.parts/<first
  row>.npz` (so the I/O stays linear in N however many chunks there are); a rerun continues
  after the contiguous run of parts whose stamp matches. When all rows are done they are
  joined into `path` and the parts are removed.

  Returns dict of numpy arrays: center [N], distance [N, M], adjacent [N, M], evaluations [N],
  success [N].
  """
  n = len(x)
  done = io.read_npz_if_current(path, stamp, _FIELDS)
  if done is None or len(done["center"]) != n:
    def compute(lo, hi):
      r = boundary.search(fn, x[lo:hi], directions, **search_kwargs)
      return {k: getattr(r, k) for k in _FIELDS}

    # a partial `path` (written by earlier versions after every chunk) counts as the first part
    done = io.compute_npz_in_parts(path, stamp, n, chunk, compute, done=done,
                                   finish=lambda rows: {**rows, "success": np.asarray(success)})
  return {**{k: done[k] for k in _FIELDS}, "success": np.asarray(success, bool)}


def summarize_examples(info: dict, directions, num_classes: int, labels) -> dict:
  """Averages over the inputs that count (successful attacks; every benign input). Minimum
  distances and purity are averaged over the inputs with at least one boundary found
  ("inputs_with_a_boundary"); "fraction_none" counts directions with none.

  labels: int [N], the true classes (to measure how many boundaries lead back to them).
  """
  ok = info["success"].astype(bool)
  result = boundary.BoundaryResult(**{k: info[k][ok] for k in _FIELDS})
  s = {k: np.asarray(v) for k, v in boundary.summarize(
      result, num_classes=num_classes, directions=directions).items()}
  adj = info["adjacent"][ok]
  found = adj >= 0
  any_found = found.any(axis=1)
  to_true = (adj == np.asarray(labels)[ok][:, None]) & found

  def finite_mean(v):  # over the inputs with a finite value (at least one boundary found)
    v = np.asarray(v)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else None

  return {
      "inputs": int(ok.sum()),
      "inputs_with_a_boundary": int(any_found.sum()),
      "mean_min_rms": finite_mean(s["min"]),
      "median_median_rms": float(np.median(s["median"])) if ok.any() else None,
      "mean_min_linf": finite_mean(s["linf_min"]),
      "fraction_none": float(s["fraction_none"].mean()) if ok.any() else None,
      "fraction_to_true_class": float(to_true.sum() / found.sum()) if found.any() else None,
      "purity": s["purity"][any_found].mean(axis=0).tolist() if any_found.any() else None,
      "evaluations_per_direction": float(info["evaluations"][ok].mean() / adj.shape[1])
      if ok.any() else None,
  }


def run(config, workdir: str, *, variants=None, loaded=None, attacked=None) -> dict:
  """Boundary information, summaries and figures for the config's models and attacks.

  Args:
    loaded, attacked: `attack_study.load_models`'s and `attack_study.run`'s results, when the
      caller has them (else computed here).
  """
  data, fns = loaded or attack_study.load_models(config, workdir, variants=variants)
  attacked = attacked or attack_study.run(config, workdir, loaded=(data, fns))
  idx = np.asarray(attacked["indices"])
  test = data["test"]
  bcfg = config.boundary
  directions = directions_for(config, test.images.shape[1:])
  search_kwargs = dict(step=bcfg.step, max_distance=bcfg.max_distance, bounds=test.bounds,
                       method=bcfg.method, batch_size=bcfg.batch_size)
  summary, figures = {}, []
  for v, fn in fns.items():
    examples = {}
    for kind in ("benign",) + tuple(bcfg.examples):
      if kind == "benign":
        x, success = test.images[idx], np.ones(len(idx), bool)
      else:
        with np.load(os.path.join(workdir, "attacks", v, f"{kind}.npz")) as f:
          x, success = f["adversarial"], f["success"]
      stamp = json.dumps({"boundary": bcfg.to_dict(), "indices": idx.tolist(),
                          "inputs_sha": _digest(x), "model": variants_lib.model_stamp(config, v)},
                         sort_keys=True)
      path = os.path.join(workdir, "boundary", v, f"{kind}.npz")
      examples[kind] = search_resumable(path, stamp, fn, x, success, directions, search_kwargs,
                                        bcfg.chunk_images)
      examples[kind]["labels"] = test.labels[idx]
    summary[v] = {k: summarize_examples(e, directions, test.num_classes, e["labels"])
                  for k, e in examples.items()}
    figures += _draw(workdir, v, examples, directions, bcfg, test.num_classes)
  out = {"summary": summary, "figures": figures, "settings": bcfg.to_dict()}
  io.write_json(os.path.join(workdir, "boundary", "summary.json"), out)
  return out


def _digest(x) -> str:
  return hashlib.sha256(np.ascontiguousarray(x, np.float32).tobytes()).hexdigest()[:16]


def _draw(workdir, variant, examples, directions, bcfg, num_classes) -> list[str]:
  """Figures 1-3 for one model variant, in RMS and L-inf; returns the written paths."""
  d = np.asarray(directions)
  linf_scale = np.abs(d.reshape(len(d), -1)).max(axis=1)
  written = []
  for metric in ("rms", "linf"):
    scale = 1.0 if metric == "rms" else linf_scale[None, :]
    top = bcfg.max_distance * (1.0 if metric == "rms" else float(linf_scale.max()))
    panels, series2, series3 = [], {}, {}
    for kind, e in examples.items():
      ok = e["success"].astype(bool)
      if not ok.any():
        continue
      dist = e["distance"][ok] * scale
      first = int(np.flatnonzero(ok)[0])
      panels.append((f"{kind} (input {first})", dist[0], e["adjacent"][ok][0]))
      series2[kind] = (dist.min(axis=1), np.asarray(boundary.median(dist)))
      with_boundary = (e["adjacent"][ok] >= 0).any(axis=1)  # purity is undefined without one
      series3[kind] = np.asarray(boundary.purity(e["adjacent"][ok][with_boundary],
                                                 num_classes, 3))
    figs = {"figure1": plots.figure1(panels, max_distance=top, region_radius=bcfg.region_radius,
                                     metric=metric, num_classes=num_classes),
            "figure2": plots.figure2(series2, max_distance=top,
                                     region_radius=bcfg.region_radius, metric=metric)}
    if metric == "rms":  # purity does not depend on the metric
      figs["figure3"] = plots.figure3(series3)
    for name, fig in figs.items():
      path = os.path.join(workdir, "boundary", "figures", f"{name}_{variant}_{metric}.png")
      plots.save(fig, path)
      written.append(os.path.relpath(path, workdir))
  return written
