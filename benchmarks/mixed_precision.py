"""What bfloat16 compute changes in He et al.'s measurements, against float32 on the same models.

  python -m benchmarks.mixed_precision --config=configs/quickstart.py --workdir=/tmp/qs
  python -m benchmarks.mixed_precision --config=configs/cifar_fast.py --workdir=runs/cifar_fast \
      --config.data.source=npz --config.data.path='../shared/data/cifar10_{split}*.npz'

The config's trained models (trained first if the workdir lacks them) are evaluated twice:
float32, and `models.as_logits_fn(model, "bfloat16")` (float32 parameters, bfloat16 compute).
For each model variant it prints
  (1) predictions: the share of test images whose class agrees, and the largest logit change;
  (2) CW-L2 (the config's CW settings, or --cw_iterations) on the same images: success rates,
      mean L2 of the examples both found, and the share of bfloat16's examples that are still
      adversarial when checked in float32;
  (3) the boundary search (the config's step, range and method) along --directions random
      orthogonal directions, from the benign images and from float32's CW examples: the share
      of (image, direction) pairs with the same distance, within one grid step, and the same
      adjacent class, and the share of images whose centre class agrees;
  (4) region classification (the config's radius and samples, one key) of the same inputs:
      the share of agreeing region labels;
and the seconds of each, bfloat16 over float32 (a speed figure only on an accelerator with
bfloat16 units; XLA's CPU emulates bfloat16). --out writes the figures as JSON.
"""

import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from advbound import boundary, evaluate, io, models, region, train
from advbound.attacks import carlini_wagner_l2
from advbound.directions import random_orthogonal

_CONFIG = config_flags.DEFINE_config_file("config", "configs/quickstart.py", "study config")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/qs", "workdir of the config's models "
                               "(trained there if missing)")
_VARIANTS = flags.DEFINE_list("variants", None, "model variants (default: all)")
_IMAGES = flags.DEFINE_integer("images", 20, "correctly classified test images attacked")
_DIRECTIONS = flags.DEFINE_integer("directions", 100, "boundary search directions")
_CW_ITERATIONS = flags.DEFINE_integer("cw_iterations", None, "CW iterations per binary-search "
                                      "step (default: the config's attack.cw)")
_CW_STEPS = flags.DEFINE_integer("cw_steps", None, "CW binary-search steps (default: config)")
_OUT = flags.DEFINE_string("out", None, "write the figures as JSON here")


def _timed(f):
  t0 = time.perf_counter()
  out = jax.block_until_ready(f())
  return out, time.perf_counter() - t0


def _boundary_agreement(a, b, step) -> dict:
  da, db = np.asarray(a.distance), np.asarray(b.distance)
  both = np.isfinite(da) & np.isfinite(db)
  same = (da == db) | (~np.isfinite(da) & ~np.isfinite(db))
  gap = np.abs(np.where(both, da, 0.0) - np.where(both, db, 0.0))
  return {
      "same_center": float(np.mean(np.asarray(a.center) == np.asarray(b.center))),
      "same_distance": float(np.mean(same)),
      "within_one_step": float(np.mean(same | (both & (gap <= step * 1.001)))),
      "same_adjacent": float(np.mean(np.asarray(a.adjacent) == np.asarray(b.adjacent))),
      "mean_abs_difference_steps": float(gap[both].mean() / step) if both.any() else 0.0,
      "pairs": int(da.size),
  }


def measure(config, model, test, *, images: int, directions: int, cw: dict) -> dict:
  """The figures of one model (see the module docstring)."""
  fns = {"float32": models.as_logits_fn(model),
         "bfloat16": models.as_logits_fn(model, "bfloat16")}
  bounds = test.bounds
  out = {"seconds": {}}
  pred = {k: evaluate.predict(f, test.images) for k, f in fns.items()}
  logits = {k: np.asarray(evaluate.logits(f, test.images[:500])) for k, f in fns.items()}
  out["predictions_agree"] = float(np.mean(pred["float32"] == pred["bfloat16"]))
  out["max_logit_change"] = float(np.max(np.abs(logits["float32"] - logits["bfloat16"])))
  ok = np.flatnonzero((pred["float32"] == test.labels) & (pred["bfloat16"] == test.labels))
  idx = ok[:images]
  x, y = test.images[idx], test.labels[idx]

  attacks = {}
  for k, f in fns.items():
    attacks[k], out["seconds"][f"cw_{k}"] = _timed(
        lambda f=f: carlini_wagner_l2(f, x, y, bounds=bounds, batch_size=len(x), **cw))
  s32, s16 = (np.asarray(attacks[k].success) for k in ("float32", "bfloat16"))
  l2 = {k: np.asarray(attacks[k].distortion["l2"]) for k in attacks}
  both = s32 & s16
  still = np.asarray(evaluate.predict(fns["float32"], np.asarray(attacks["bfloat16"].adversarial)))
  out["cw"] = {
      "success_float32": float(s32.mean()), "success_bfloat16": float(s16.mean()),
      "mean_l2_float32": float(l2["float32"][both].mean()) if both.any() else None,
      "mean_l2_bfloat16": float(l2["bfloat16"][both].mean()) if both.any() else None,
      "bfloat16_examples_adversarial_in_float32": float(np.mean((still != y)[s16]))
      if s16.any() else None,
  }

  bcfg = config.boundary
  dirs = random_orthogonal(jax.random.key(0), directions, test.images.shape[1:])
  inputs = {"benign": x, "cw_float32": np.asarray(attacks["float32"].adversarial)[s32]}
  out["boundary"], out["region"] = {}, {}
  for name, z in inputs.items():
    if not len(z):
      continue
    res = {}
    for k, f in fns.items():
      res[k], out["seconds"][f"boundary_{name}_{k}"] = _timed(lambda f=f: boundary.search(
          f, z, dirs, step=bcfg.step, max_distance=bcfg.max_distance, bounds=bounds,
          method=bcfg.method, batch_size=bcfg.batch_size))
    out["boundary"][name] = _boundary_agreement(res["float32"], res["bfloat16"], bcfg.step)
    votes = {k: np.asarray(region.classify(
        f, jax.random.key(1), z, radius=config.region.radius,
        num_samples=config.region.num_samples, bounds=bounds,
        batch_size=config.region.batch_size)[0]) for k, f in fns.items()}
    out["region"][name] = float(np.mean(votes["float32"] == votes["bfloat16"]))
  return out


def main(argv):
  del argv
  config = _CONFIG.value
  data, trained = {}, {}
  train_data, test = train.load_splits(config.data, ("train", "test"))
  for v in train.variant_names(config, _VARIANTS.value):
    trained[v] = train.train_variant(config, v, train_data, _WORKDIR.value)
  cw = dict(config.attack.cw.to_dict())
  if _CW_ITERATIONS.value:
    cw["max_iterations"] = _CW_ITERATIONS.value
  if _CW_STEPS.value:
    cw["binary_search_steps"] = _CW_STEPS.value
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); {_IMAGES.value} "
        f"images, {_DIRECTIONS.value} directions, CW {cw}")
  for v, model in trained.items():
    r = measure(config, model, test, images=_IMAGES.value, directions=_DIRECTIONS.value, cw=cw)
    data[v] = r
    print(f"\n== {v}")
    print(f"predictions agree on {100 * r['predictions_agree']:.2f}% of {len(test)} test "
          f"images; largest logit change {r['max_logit_change']:.4g}")
    print("CW-L2: " + ", ".join(f"{k} {v_}" for k, v_ in r["cw"].items()))
    for name, b in r["boundary"].items():
      print(f"boundary from {name}: " + ", ".join(f"{k} {v_:.4f}" for k, v_ in b.items()))
    for name, agree in r["region"].items():
      print(f"region labels from {name} agree: {agree:.4f}")
    s = r["seconds"]
    ratios = {k[:-len("_float32")]: s[k[:-len("_float32")] + "_bfloat16"] / s[k]
              for k in s if k.endswith("_float32") and s[k] > 0}
    print("seconds bfloat16 / float32: " + ", ".join(f"{k} {v_:.2f}" for k, v_ in ratios.items()))
  if _OUT.value:
    io.write_json(_OUT.value, data)


if __name__ == "__main__":
  app.run(main)
