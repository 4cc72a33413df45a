"""What reduced precision changes in He et al.'s measurements, against true float32.

  python -m benchmarks.mixed_precision --config=configs/quickstart.py --workdir=/tmp/qs
  python -m benchmarks.mixed_precision --config=configs/cifar_fast.py --workdir=runs/cifar_fast \
      --config.data.source=npz --config.data.path='../shared/data/cifar10_{split}*.npz'

The config's trained models (trained first if the workdir lacks them) are run in several modes:
the reference "float32_highest" (float32 compute, convolutions and matmuls at
`jax.default_matmul_precision("highest")`: true float32 everywhere), and the candidates
"float32_default" (JAX's default precision, which on recent NVIDIA GPUs computes float32
convolutions with TF32 tensor cores, 10 bits of mantissa; on CPU it is true float32) and
"bfloat16" (`models.as_logits_fn(model, "bfloat16")`: float32 parameters, bfloat16 compute).
For each model variant and candidate it prints
  (1) predictions: the share of test images whose class agrees, and the largest logit change;
  (2) He et al.'s OPTBRITTLE (--attack; the paper's settings for the data set, with the
      config's attack.cw, or --cw_iterations / --cw_steps) on the same images: success rates,
      mean L2 of the examples both found, and the share of the candidate's examples that are
      still adversarial under the reference;
  (3) the boundary search (the config's step, range and method) along --directions random
      orthogonal directions, from the benign images and from the reference's examples: the
      share of (image, direction) pairs with the same distance, within one grid step, and the
      same adjacent class, and the share of inputs whose centre class agrees;
  (4) region classification (the config's radius and samples, one key) of the same inputs:
      the share of agreeing region labels;
  (5') the study run wholly in each mode: each mode's own CW examples searched in that mode,
      summarised (share of directions with the boundary at the first grid step, median
      distance), since the examples differ;
  (5) seconds of CW and of each boundary search, candidate / reference (compilation
      included; a speed figure only on an accelerator: XLA's CPU emulates bfloat16).
--out writes the figures as JSON.
"""

import contextlib
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from advbound import boundary, models, region
from advbound.analysis import evaluate
from advbound.attacks import presets
from advbound.directions import random_orthogonal
from advbound.runtime import io
from advbound.studies import variants as variants_lib

_CONFIG = config_flags.DEFINE_config_file("config", "configs/quickstart.py", "study config")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/qs", "workdir of the config's models "
                               "(trained there if missing)")
_VARIANTS = flags.DEFINE_list("variants", None, "model variants (default: all)")
_IMAGES = flags.DEFINE_integer("images", 20, "correctly classified test images attacked")
_DIRECTIONS = flags.DEFINE_integer("directions", 100, "boundary search directions")
_ATTACK = flags.DEFINE_enum("attack", "optbrittle", ["optbrittle", "optstrong", "optmargin"],
                            "He et al.'s CW-based attack (the paper's settings for the data set, "
                            "updated by the config's attack.cw and the flags below)")
_CW_ITERATIONS = flags.DEFINE_integer("cw_iterations", None, "CW iterations per binary-search "
                                      "step (default: the config's attack.cw)")
_CW_STEPS = flags.DEFINE_integer("cw_steps", None, "CW binary-search steps (default: config)")
_CANDIDATES = flags.DEFINE_list("candidates", ["float32_default", "bfloat16"],
                                "modes compared with true float32 (float32_highest): "
                                "float32_default (JAX's default precision: TF32 convolutions "
                                "on recent NVIDIA GPUs, true float32 on CPU), bfloat16")
_OUT = flags.DEFINE_string("out", None, "write the figures as JSON here")


def _timed(f):
  t0 = time.perf_counter()
  out = jax.block_until_ready(f())
  return out, time.perf_counter() - t0


def _summary(result, step) -> dict:
  """Summaries of a boundary search from adversarial examples: the share of directions whose
  boundary is at the first grid step (where He et al.'s OPTBRITTLE examples sit), and the
  median over inputs of the median distance (finite directions)."""
  d = np.asarray(result.distance)
  finite = np.where(np.isfinite(d), d, np.nan)
  medians = np.nanmedian(finite, axis=1) if np.isfinite(d).any() else np.array([np.nan])
  return {"first_step_share": float(np.mean(d <= step * 1.001)),
          "median_distance": float(np.nanmedian(medians)),
          "inputs": int(d.shape[0])}


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


# name -> (compute dtype, matmul / conv precision for float32 operands; None: JAX's default)
MODES = {"float32_highest": ("float32", "highest"), "float32_default": ("float32", None),
         "bfloat16": ("bfloat16", None)}
REFERENCE = "float32_highest"


def _in_mode(mode: str, thunk):
  """thunk() traced and run under the mode's matmul precision (jit caches per precision)."""
  precision = MODES[mode][1]
  with jax.default_matmul_precision(precision) if precision else contextlib.nullcontext():
    return _timed(thunk)


def measure(config, model, test, *, images: int, directions: int, cw: dict,
            candidates=("bfloat16",), attack: str = "optbrittle") -> dict:
  """The figures of one model: each candidate mode against the reference, true float32."""
  modes = (REFERENCE,) + tuple(candidates)
  fns = {m: models.as_logits_fn(model, MODES[m][0]) for m in modes}
  bounds = test.bounds
  seconds = {m: {} for m in modes}
  pred, logits = {}, {}
  for m in modes:  # one pass: the classes of every test image, the logits of the first 500
    z, _ = _in_mode(m, lambda m=m: np.asarray(evaluate.logits(fns[m], test.images)))
    pred[m], logits[m] = np.argmax(z, axis=-1), z[:500]
  ok = np.all([pred[m] == test.labels for m in modes], axis=0)
  idx = np.flatnonzero(ok)[:images]
  x, y = test.images[idx], test.labels[idx]
  attacks = {}
  for m in modes:
    attacks[m], seconds[m]["cw"] = _in_mode(m, lambda m=m: presets.run(
        attack, fns[m], jax.random.key(2), x, y, dataset=test.name, bounds=bounds,
        batch_size=len(x), **cw))
  ref_success = np.asarray(attacks[REFERENCE].success)
  bcfg = config.boundary
  dirs = random_orthogonal(jax.random.key(0), directions, test.images.shape[1:])
  inputs = {"benign": x, "cw": np.asarray(attacks[REFERENCE].adversarial)[ref_success]}
  searched, votes = {}, {}
  for m in modes:
    for name, z in inputs.items():
      if len(z):
        searched[m, name], seconds[m][f"boundary_{name}"] = _in_mode(m, lambda m=m, z=z: (
            boundary.search(fns[m], z, dirs, step=bcfg.step, max_distance=bcfg.max_distance,
                            bounds=bounds, method=bcfg.method, batch_size=bcfg.batch_size)))
        votes[m, name], _ = _in_mode(m, lambda m=m, z=z: np.asarray(region.classify(
            fns[m], jax.random.key(1), z, radius=config.region.radius,
            num_samples=config.region.num_samples, bounds=bounds,
            batch_size=config.region.batch_size)[0]))
  # Self-consistent: each mode's own CW examples searched with its own function (a study run
  # wholly in that mode); compared by summaries, since the examples differ.
  own = {REFERENCE: searched.get((REFERENCE, "cw"))}
  for m in candidates:
    z = np.asarray(attacks[m].adversarial)[np.asarray(attacks[m].success)]
    if len(z):
      own[m], _ = _in_mode(m, lambda m=m, z=z: boundary.search(
          fns[m], z, dirs, step=bcfg.step, max_distance=bcfg.max_distance, bounds=bounds,
          method=bcfg.method, batch_size=bcfg.batch_size))
  out = {"images": len(idx), "directions": directions, "cw_examples": int(ref_success.sum()),
         "own_cw_boundary": {m: _summary(r, bcfg.step) for m, r in own.items() if r is not None}}
  for m in candidates:
    success = np.asarray(attacks[m].success)
    both = ref_success & success
    l2 = {k: np.asarray(attacks[k].distortion["l2"]) for k in (REFERENCE, m)}
    # the candidate's examples checked by the reference model: still adversarial?
    checked, _ = _in_mode(REFERENCE, lambda m=m: evaluate.predict(
        fns[REFERENCE], np.asarray(attacks[m].adversarial)))
    out[m] = {
        "predictions_agree": float(np.mean(pred[m] == pred[REFERENCE])),
        "max_logit_change": float(np.max(np.abs(logits[m] - logits[REFERENCE]))),
        "cw": {"success_reference": float(ref_success.mean()),
               "success": float(success.mean()),
               "mean_l2_reference": float(l2[REFERENCE][both].mean()) if both.any() else None,
               "mean_l2": float(l2[m][both].mean()) if both.any() else None,
               "adversarial_under_reference": float(np.mean((checked != y)[success]))
               if success.any() else None},
        "boundary": {name: _boundary_agreement(searched[REFERENCE, name], searched[m, name],
                                               bcfg.step)
                     for name in inputs if (m, name) in searched},
        "region_labels_agree": {name: float(np.mean(votes[m, name] == votes[REFERENCE, name]))
                                for name in inputs if (m, name) in votes},
        "seconds_ratio": {k: seconds[m][k] / seconds[REFERENCE][k] for k in seconds[m]
                          if seconds[REFERENCE][k] > 0},
    }
  return out


def main(argv):
  del argv
  config = _CONFIG.value
  unknown = [m for m in _CANDIDATES.value if m not in MODES or m == REFERENCE]
  if unknown:
    raise app.UsageError(f"--candidates: unknown mode(s) {unknown}; choose among "
                         f"{[m for m in MODES if m != REFERENCE]}")
  results, trained = {}, {}
  train_data, test = variants_lib.load_splits(config.data, ("train", "test"))
  for v in variants_lib.variant_names(config, _VARIANTS.value):
    trained[v] = variants_lib.train_variant(config, v, train_data, _WORKDIR.value)
  cw = dict(config.attack.cw.to_dict())
  if _CW_ITERATIONS.value:
    cw["max_iterations"] = _CW_ITERATIONS.value
  if _CW_STEPS.value:
    cw["binary_search_steps"] = _CW_STEPS.value
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); {_IMAGES.value} "
        f"images, {_DIRECTIONS.value} directions, {_ATTACK.value} "
        f"{presets.settings(_ATTACK.value, config.data.name) | cw}; reference {REFERENCE}")
  for v, model in trained.items():
    r = measure(config, model, test, images=_IMAGES.value, directions=_DIRECTIONS.value, cw=cw,
                candidates=_CANDIDATES.value, attack=_ATTACK.value)
    results[v] = r
    print(f"\n== {v}: {r['images']} images, {r['cw_examples']} {_ATTACK.value} examples "
          "(reference)")
    for m, summary in r["own_cw_boundary"].items():
      print(f"boundary from {m}'s own examples, in {m}: " + ", ".join(
          f"{k} {_fmt(v_)}" for k, v_ in summary.items()))
    for m in _CANDIDATES.value:
      c = r[m]
      print(f"-- {m} vs {REFERENCE}")
      print(f"predictions agree on {100 * c['predictions_agree']:.2f}% of {len(test)} test "
            f"images; largest logit change {c['max_logit_change']:.4g}")
      print(f"{_ATTACK.value}: " + ", ".join(f"{k} {_fmt(v_)}" for k, v_ in c["cw"].items()))
      for name, b in c["boundary"].items():
        print(f"boundary from {name}: " + ", ".join(f"{k} {_fmt(v_)}" for k, v_ in b.items()))
      print("region labels agree: " + ", ".join(f"{k} {_fmt(v_)}"
                                                for k, v_ in c["region_labels_agree"].items()))
      print("seconds / reference: " + ", ".join(f"{k} {v_:.2f}"
                                                 for k, v_ in c["seconds_ratio"].items()))
  if _OUT.value:
    io.write_json(_OUT.value, {"device": jax.devices()[0].device_kind, "cw": cw,
                               "attack": _ATTACK.value,
                               "results": results})


def _fmt(v) -> str:
  return "n/a" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


if __name__ == "__main__":
  app.run(main)
