"""He et al.'s Table 1: each named attack on each trained model, with success and distortion.

Artifacts under `workdir/attacks/`: `<variant>/<attack>.npz` (indices of the test images,
adversarial examples, success, RMS / L2 / L-inf / L0 distortion), written atomically and reused
when their settings match; `table1.json` and `table1.md`.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import logging

from advbound import data as data_lib, models, stats
from advbound.analysis import evaluate
from advbound.attacks import presets
from advbound.runtime import checks, io, probe
from advbound.studies import variants as variants_lib
from advbound.studies.decision_boundary.settings import Attack

# He et al., Table 1: success rate and mean RMS distortion of successful examples.
PAPER_TABLE1 = {
    "mnist": {"natural": {"optbrittle": (1.00, 0.0732), "optmargin": (1.00, 0.158),
                          "optstrong": (1.00, 0.214), "fgsm": (0.91, 0.219)},
              "adversarial": {"optbrittle": (1.00, 0.0879), "optmargin": (1.00, 0.168),
                              "optstrong": (0.28, 0.391), "fgsm": (0.06, 0.221)}},
    "cifar10": {"natural": {"optbrittle": (1.00, 0.824), "optmargin": (1.00, 1.13),
                            "optstrong": (1.00, 2.86), "fgsm": (0.82, 8.00)},
                "adversarial": {"optbrittle": (1.00, 3.83), "optmargin": (1.00, 4.08),
                                "optstrong": (0.73, 37.4), "fgsm": (0.36, 8.00)}},
}


def select_images(logits_fns, test: data_lib.Dataset, num: int, seed: int,
                  pool: int | None = None) -> np.ndarray:
  """Indices int64 [num] of seeded random test images that every model classifies correctly,
  drawn from the first `pool` test images (None: all of them; e.g. 1,000 for the exact images
  of ../shared/data/cifar10_test.npz)."""
  n = len(test) if pool is None else checks.check_count(pool, "attack.pool (or None)", len(test))
  order = np.random.default_rng(seed).permutation(n)
  correct = np.ones(n, bool)
  for fn in logits_fns:
    correct &= evaluate.predict(fn, test.images[:n]) == test.labels[:n]
  if probe.active() and correct.sum() < num:
    # the probe's models are trained for a few steps: draw the images as if they were correct
    logging.info("probe: %d of %d test images are classified correctly by the barely trained "
                 "models; drawing among all of them", int(correct.sum()), n)
    correct[:] = True
  chosen = order[correct[order]][:num]
  if len(chosen) < num:
    raise ValueError(f"only {len(chosen)} of the first {n} test images are classified correctly "
                     f"by every model; asked for {num}")
  return chosen


def _attack_settings(config, name: str, dataset: str) -> dict:
  kwargs = presets.settings(name, dataset)
  if name != "fgsm":
    kwargs.update(config.attack.cw.to_dict())
    kwargs["batch_size"] = config.attack.batch_size
  return kwargs


def load_models(config, workdir: str, *, variants=None, splits=("train", "test")):
  """Loads the requested data splits once and trains (or loads) the run's models.

  Returns:
    ({split: Dataset}, {variant: logits_fn}).
  """
  data = dict(zip(splits, variants_lib.load_splits(config.data, splits)))
  fns = {}
  for v in variants_lib.variant_names(config, variants):
    model = variants_lib.train_variant(config, v, data["train"], workdir)
    fns[v] = models.as_logits_fn(model)
  return data, fns


def run(config, workdir: str, *, variants=None, loaded=None) -> dict:
  """Trains (or loads) the config's models, attacks the selected test images with every attack
  of `config.attack.names`, and writes the artifacts and Table 1. The images are chosen among
  those every model of this run (all variants, or `variants`) classifies correctly.

  Args:
    loaded: the result of `load_models` when the caller already has it (else loaded here).

  Returns:
    {"table1": {variant: {attack: {"success_rate", "rms"}}}, "num_images": n,
     "indices": the attacked test images, ...}.
  """
  data, fns = loaded or load_models(config, workdir, variants=variants)
  test = data["test"]
  names = list(fns)
  acfg = config.attack
  idx = select_images(list(fns.values()), test, acfg.num_images, acfg.seed,
                      pool=Attack.of(acfg).pool)
  x, y = test.images[idx], test.labels[idx]
  n_table = table_images(config, len(idx))
  settings = {name: _attack_settings(config, name, test.name) for name in acfg.names}
  table = {}
  for v in names:
    table[v] = {}
    for name in acfg.names:
      kwargs = settings[name]
      path = os.path.join(workdir, "attacks", v, f"{name}.npz")
      stamp = json.dumps({"kwargs": kwargs, "indices": idx.tolist(), "seed": acfg.seed,
                          "model": variants_lib.model_stamp(config, v)}, sort_keys=True)
      result = io.read_npz_if_current(path, stamp)
      if result is None:
        result = _attack_in_parts(path, stamp, name, fns[v], acfg, x, y, test, kwargs, idx)
        logging.info("%s / %s: %.0f%% success, mean RMS %s, %.1f s (%.2f s per image)", v,
                     name, 100 * result["success"].mean(), _mean_rms(result),
                     result["seconds"], result["seconds"] / len(idx))
      first = {k: result[k][:n_table] for k in ("success", "rms")}
      ok = first["success"].astype(bool)
      table[v][name] = {**stats.of(ok), "success_rate": float(ok.mean()),
                        "rms": _mean_rms(first),
                        "rms_interval": stats.bootstrap(first["rms"][ok], seed=acfg.seed),
                        "seconds": float(result["seconds"])}
  out = {"table1": table, "num_images": int(len(idx)), "table_images": n_table,
         "indices": idx.tolist(),
         "dataset": test.name,
         "settings": settings}
  io.write_json(os.path.join(workdir, "attacks", "table1.json"), out)
  with io.atomic_path(os.path.join(workdir, "attacks", "table1.md")) as tmp, open(tmp, "w") as f:
    f.write(format_table1(out))
  return out


def _attack_in_parts(path, stamp, name, fn, acfg, x, y, test, kwargs, idx) -> dict:
  """Attack `name` on x [n, ...] in chunks of acfg.batch_size images, each chunk saved as a
  part (see io.compute_npz_in_parts), so a killed run loses at most the chunk in flight. The
  chunks share the key (OPTMARGIN's one set of perturbations) and CW stops each example on
  its own loss, so the chunking does not change the result. Returns the artifact's arrays."""
  key = jax.random.fold_in(jax.random.key(acfg.seed), 1)

  def compute(lo, hi):
    t0 = time.time()
    r = presets.run(name, fn, key, x[lo:hi], y[lo:hi], dataset=test.name, bounds=test.bounds,
                    **kwargs)
    out = {"adversarial": r.adversarial, "success": r.success, **r.distortion}
    out = jax.block_until_ready(out)
    out["seconds"] = np.full(hi - lo, (time.time() - t0) / (hi - lo))  # per image
    return out

  def finish(rows):
    return {**rows, "seconds": np.float64(rows["seconds"].sum()), "indices": idx}

  return io.compute_npz_in_parts(path, stamp, len(x), acfg.batch_size, compute, finish=finish)


def table_images(config, num_images: int) -> int:
  """How many of the attacked images (the first ones) Tables 1 and 2 report on:
  `config.attack.table_images`, or all `num_images` when it is None. The paper reports Tables
  1-2 on 100 images and trains and tests the boundary classifier (Table 3) on more."""
  n = Attack.of(config.attack).table_images
  return num_images if n is None else checks.check_count(n, "attack.table_images (or None)",
                                                         num_images)


def _mean_rms(result) -> float | None:
  """Mean RMS distortion of the successful examples; None (JSON null) when none succeeded."""
  ok = result["success"].astype(bool)
  return float(result["rms"][ok].mean()) if ok.any() else None


def format_table1(out) -> str:
  """Markdown in the paper's Table 1 layout, ours (success rate with its 95% Wilson interval and
  count; mean RMS with its 95% bootstrap interval) beside the paper's, each paper number marked
  inside / outside our interval."""
  paper = PAPER_TABLE1.get(out["dataset"], {})
  variants = list(out["table1"])
  head = "| attack | " + " | ".join(f"{v}: ours | {v}: paper" for v in variants) + " |"
  lines = [f"Success rate [95% Wilson interval] (successes/images) and mean RMS distortion of "
           f"successful examples [95% bootstrap interval] "
           f"({out.get('table_images', out['num_images'])} test images, {out['dataset']}). "
           "The paper's numbers are marked inside / outside our interval.",
           "", head,
           "|---" * (1 + 2 * len(variants)) + "|"]
  for name in out["table1"][variants[0]]:
    cells = []
    for v in variants:
      r = out["table1"][v][name]
      p = paper.get(v, {}).get(name.replace("_released", ""))
      rate, rms_cell = r, r.get("rms_interval")
      rms = ("-" if r["rms"] is None else stats.format_estimate(rms_cell, ".4g") if rms_cell
             else f"{r['rms']:.4g}")
      cells.append(f"{stats.format_rate(rate)}; RMS {rms}")
      cells.append(f"{stats.beside_paper(rate, p[0])}; RMS {p[1]:.4g} "
                   f"({stats.paper_mark(p[1], (rms_cell or {}).get('low'), (rms_cell or {}).get('high'))})"
                   if p else "-")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
