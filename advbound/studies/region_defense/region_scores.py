"""The region classifier of Cao & Gong: its radius (Algorithm 1, stage "radius") and its labels
of every example made on the point classifier (stage "region").

A deployed region classifier draws fresh noise at every query, so every set of examples is
labelled at D = `region.score_draws` independent noise draws (`protocol.query_key`: the set's
name and the draw index folded into the key of `region.seed`; same seed, same labels), and the
tables score the region rows over the D draws.

Artifacts: `radius/radius.json` (the learned r, the validation accuracy per radius: Figure 4,
the test accuracies of Table 3) and `radius/figure4.png`; `region/benign.npz` with `label` int32
[D, N] (the evaluated images); `region/<stem>.npz` with `label` int32 [D, M], the region
classifier's label of each example of `attacks/<point>/<stem>.npz` at each draw;
`region/adapted_<attack>.npz` with `label` int32 [A, D, M] for the examples amplified by each
alpha of `adapted.alphas` (Cao & Gong's -A attacks, x'' = clip(x + (1 + alpha)(x' - x))).
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from absl import logging

from advbound import region
from advbound.analysis import evaluate
from advbound.attacks import compose
from advbound.runtime import io
from advbound.studies import plots, variants as variants_lib
from advbound.studies.region_defense import attacks as attacks_lib, protocol
from advbound.studies.region_defense.settings import Radius


def learn(config, workdir: str, *, data: dict, fns: dict) -> dict:
  """Algorithm 1 on the validation split, then Table 3's test accuracies (point, and region at
  each of its noise draws: "test_region" is a `protocol.rates` cell pooled over them)."""
  rcfg = Radius.of(config.radius)
  point = config.study.point
  val, test = data["validation"], data["test"]
  n = len(val) if rcfg.validation_images is None else min(int(rcfg.validation_images), len(val))
  low, high = test.bounds
  r, history, point_val = region.learn_radius(
      fns[point], jax.random.key(rcfg.seed), val.images[:n], val.labels[:n],
      step=float(rcfg.step) * (high - low), initial=float(rcfg.initial) * (high - low),
      max_radius=None if rcfg.max_radius is None else float(rcfg.max_radius) * (high - low),
      bounds=test.bounds, num_samples=int(rcfg.num_samples), batch_size=config.region.batch_size,
      return_history=True, tolerance=float(rcfg.tolerance))
  accuracy = {c: evaluate.accuracy(fns[c], test.images, test.labels,
                                   batch_size=config.study.batch_size)
              for c in config.study.classifiers}
  labels = protocol.region_draws(fns[point], test.images, radius=r, bounds=test.bounds,
                                 region_cfg=config.region, query="test")  # [D, N]
  right = labels == test.labels[None]
  accuracy["region"] = float(np.mean(right))  # over the noise draws
  correct = {c: int(round(a * len(test))) for c, a in accuracy.items() if c != "region"}
  region_cell = protocol.rates(right, np.zeros(right.shape))
  for k in ("noise", "noise_ci"):
    region_cell.pop(k)
  out = {"radius": r, "radius_fraction": r / (high - low), "validation_images": n,
         "validation_point_accuracy": point_val,
         "history": [{"radius": a, "accuracy": b} for a, b in history],
         "test_accuracy": accuracy, "test_correct": correct, "test_region": region_cell,
         "test_images": len(test)}
  io.write_json(os.path.join(workdir, "radius", "radius.json"), out)
  plots.save(plots.radius_curve(history, point_val, r), os.path.join(workdir, "radius",
                                                                      "figure4.png"))
  logging.info("radius %.4g (%.3g of the range); test accuracy %s", r, r / (high - low),
               accuracy)
  return out


def _labels(config, path: str, stamp: str, x, fn, radius, bounds, query: str) -> np.ndarray:
  """int32 [D, M]: the region labels of x [M, *S] at each noise draw (cached at `path`)."""
  cached = io.read_npz_if_current(path, stamp, fields=("label",))
  if cached is None:
    cached = {"label": protocol.region_draws(fn, x, radius=radius, bounds=bounds,
                                             region_cfg=config.region, query=query)}
    with io.atomic_path(path) as tmp:
      np.savez(tmp, settings=np.asarray(stamp), **cached)
  return cached["label"]


def run(config, workdir: str, *, data: dict, fns: dict, radius: float, attacked: dict) -> dict:
  """Region labels (at each noise draw) of the benign images, of every example made on the point
  classifier and of the amplified (-A) examples; returns {"benign_accuracy" (mean over the
  draws), "benign_correct" (a `protocol.rates` cell of the drawn images the region classifier
  labels correctly, pooled over the draws), "examples": [stems], "adapted": {attack: alphas}}."""
  point = config.study.point
  test = data["test"]
  chosen = attacks_lib.load_chosen(workdir)
  x = test.images[chosen["indices"]]
  base = {"radius": radius, "region": config.region.to_dict(),
          "model": variants_lib.model_stamp(config, point)}
  stamp = json.dumps({**base, "inputs": "benign", "indices": chosen["indices"].tolist()},
                     sort_keys=True, default=str)
  benign = _labels(config, os.path.join(workdir, "region", "benign.npz"), stamp, x,
                   fns[point], radius, test.bounds, "benign")
  right = benign == chosen["labels"][None]
  correct = protocol.rates(right, np.zeros(right.shape))
  for k in ("noise", "noise_ci"):  # a count of correct labels has no noise
    correct.pop(k)
  out = {"benign_accuracy": float(np.mean(right)), "benign_correct": correct, "examples": [],
         "adapted": {}}
  for stem, info in attacked["attacks"][point].items():
    adv = attacks_lib.load(workdir, point, stem)["adversarial"]
    stamp = json.dumps({**base, "inputs": stem, "attack": info}, sort_keys=True, default=str)
    _labels(config, os.path.join(workdir, "region", f"{stem}.npz"), stamp, adv, fns[point],
            radius, test.bounds, stem)
    out["examples"].append(stem)
  alphas = [float(a) for a in config.adapted.alphas]
  for attack in config.adapted.attacks:
    if attack not in attacked["attacks"][point]:
      logging.warning("adapted %s-A: %s was not run on %s; skipped", attack, attack, point)
      continue
    adv = attacks_lib.load(workdir, point, attack)["adversarial"]
    xs = attacks_lib.inputs(chosen, test, attack)[0]
    path = os.path.join(workdir, "region", f"adapted_{attack}.npz")
    stamp = json.dumps({**base, "inputs": f"{attack}-A", "alphas": alphas,
                        "attack": attacked["attacks"][point][attack]}, sort_keys=True,
                       default=str)
    cached = io.read_npz_if_current(path, stamp, fields=("label",))
    if cached is None:
      labels = np.stack([protocol.region_draws(
          fns[point], np.asarray(compose.amplify(xs, adv, a, bounds=test.bounds)),
          radius=radius, bounds=test.bounds, region_cfg=config.region,
          query=f"{attack}-A_{a:g}") for a in alphas])  # [A, D, M]
      with io.atomic_path(path) as tmp:
        np.savez(tmp, settings=np.asarray(stamp), label=labels)
    out["adapted"][attack] = alphas
  return out


def load(workdir: str, name: str) -> np.ndarray:
  with np.load(os.path.join(workdir, "region", f"{name}.npz")) as f:
    return f["label"]
