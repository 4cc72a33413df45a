"""He et al.'s Table 2 (point vs region classification on benign and adversarial examples),
Cao & Gong's learned radius and measurement study, and certified-accuracy curves.

Artifacts under `workdir/region/`, each written atomically and reused while its settings stamp
matches: `radius_<variant>.json` (Algorithm 1 on the validation split, with its history),
`table2.json` / `table2.md`, `certified.json`, `measurement_<variant>.npz`, and figures
`figures/{radius,certified,measurement}_<variant>.png`.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from advbound import region
from advbound.analysis import evaluate
from advbound.runtime import io
from advbound.studies import plots, variants as variants_lib

from advbound import stats
from advbound.attacks import carlini_wagner_l2, presets
from advbound.studies.decision_boundary import attack_study
from advbound.studies.decision_boundary.settings import Region

# He et al., Table 2: accuracy (fraction of the 100 examples classified as their true class).
PAPER_TABLE2 = {
    "mnist": {"natural": {"region": {"benign": 0.99, "fgsm": 0.16, "optbrittle": 0.95,
                                     "optmargin": 0.01},
                          "point": {"benign": 0.99, "fgsm": 0.09, "optbrittle": 0.0,
                                    "optmargin": 0.0}},
              "adversarial": {"region": {"benign": 1.00, "fgsm": 0.54, "optbrittle": 0.89,
                                         "optmargin": 0.10},
                              "point": {"benign": 1.00, "fgsm": 0.94, "optbrittle": 0.0,
                                        "optmargin": 0.0}}},
    "cifar10": {"natural": {"region": {"benign": 0.93, "fgsm": 0.16, "optbrittle": 0.71,
                                       "optmargin": 0.05},
                            "point": {"benign": 0.96, "fgsm": 0.17, "optbrittle": 0.0,
                                      "optmargin": 0.0}},
                "adversarial": {"region": {"benign": 0.86, "fgsm": 0.55, "optbrittle": 0.79,
                                           "optmargin": 0.05},
                                "point": {"benign": 0.86, "fgsm": 0.55, "optbrittle": 0.0,
                                          "optmargin": 0.06}}},
}
# Cao & Gong's learned radii (Algorithm 1), used by He et al.
PAPER_RADIUS = {"mnist": 0.3, "cifar10": 5.1}


def learned_radius(fn, key, val, rcfg, path: str, model_stamp: dict) -> dict:
  """Algorithm 1 on the first rcfg.validation_images validation images (cached at `path`;
  `model_stamp` identifies the model, see `advbound.studies.variants.model_stamp`)."""
  keys = ("step", "initial", "num_samples", "validation_images", "seed", "max_radius")
  stamp = json.dumps({"region": {k: rcfg.get(k) for k in keys}, "model": model_stamp},
                     sort_keys=True)
  cached = io.read_json_if_current(path, stamp)
  if cached is not None:
    return cached
  x, y = val.images[:rcfg.validation_images], val.labels[:rcfg.validation_images]
  r, history, point = region.learn_radius(fn, key, x, y, step=rcfg.step, bounds=val.bounds,
                                          num_samples=rcfg.num_samples, initial=rcfg.initial,
                                          max_radius=Region.of(rcfg).max_radius,
                                          batch_size=rcfg.batch_size, return_history=True)
  out = {"settings": stamp, "radius": r, "history": history, "point_accuracy": point}
  io.write_json(path, out)
  return out


def run(config, workdir: str, *, variants=None, loaded=None, attacked=None) -> dict:
  """Table 2, learned radii, certified curves and the measurement study for the config.

  Args:
    loaded: `attack_study.load_models`'s result with the validation and test splits, when the
      caller has it (else loaded here).
    attacked: `attack_study.run`'s result, when the caller has it (else run here).
  """
  data, fns = loaded or attack_study.load_models(config, workdir, variants=variants,
                                                 splits=("train", "validation", "test"))
  attacked = attacked or attack_study.run(config, workdir, loaded=(data, fns))
  # Table 2 (and the certified curves) use the attack study's first `table_images` images
  idx = np.asarray(attacked["indices"])
  idx = idx[:attack_study.table_images(config, len(idx))]
  val, test = data["validation"], data["test"]
  rcfg = config.region
  key = jax.random.key(rcfg.seed)
  vote_key = jax.random.fold_in(key, 1)
  out = {"table2": {}, "radius": {}, "certified": {}, "dataset": test.name,
         "paper_radius": PAPER_RADIUS.get(test.name)}
  for v, fn in fns.items():
    model_stamp = variants_lib.model_stamp(config, v)
    rad = learned_radius(fn, jax.random.fold_in(key, 0), val, rcfg,
                         os.path.join(workdir, "region", f"radius_{v}.json"), model_stamp)
    out["radius"][v] = {"learned": rad["radius"], "paper": rcfg.radius,
                        "point_accuracy_validation": rad["point_accuracy"]}
    plots.save(plots.radius_curve(rad["history"], rad["point_accuracy"], rad["radius"]),
               os.path.join(workdir, "region", "figures", f"radius_{v}.png"))
    table = {"point": {}, "region": {}, "region_learned": {}}
    cells = {c: {} for c in table}
    examples = _examples(workdir, v, test, idx, rcfg.attacks)
    for kind, (x, y) in examples.items():
      correct = {"point": np.asarray(evaluate.predict(fn, x)) == y}
      for name, r in (("region", rcfg.radius), ("region_learned", rad["radius"])):
        labels, _ = region.classify(fn, vote_key, x, radius=r, num_samples=rcfg.num_samples,
                                    bounds=test.bounds, batch_size=rcfg.batch_size)
        correct[name] = np.asarray(labels) == y
      for name, ok in correct.items():
        table[name][kind] = float(np.mean(ok))
        cells[name][kind] = stats.of(ok)
    out["table2"][v] = table
    out.setdefault("table2_cells", {})[v] = cells
    out["certified"][v] = _certified(fn, jax.random.fold_in(key, 2), *examples["benign"], test,
                                     rcfg)
    plots.save(plots.certified_curves(out["certified"][v]),
               os.path.join(workdir, "region", "figures", f"certified_{v}.png"))
    hist = _measurement(fn, jax.random.fold_in(key, 3), test, int(idx[0]), config, workdir, v,
                        model_stamp)
    plots.save(plots.label_histograms(hist["counts"], hist["titles"]),
               os.path.join(workdir, "region", "figures", f"measurement_{v}.png"))
  io.write_json(os.path.join(workdir, "region", "table2.json"), out)
  with io.atomic_path(os.path.join(workdir, "region", "table2.md")) as tmp, open(tmp, "w") as f:
    f.write(format_table2(out))
  return out


def _examples(workdir, variant, test, idx, attacks) -> dict:
  """{"benign" | attack: (x [n, ...], true labels [n])} for the first n = len(idx) attacked test
  images (`idx`, a prefix of the attack study's indices);
  failed attacks keep the input, as in the paper's Table 2 (accuracy over all of them)."""
  y = test.labels[idx]
  out = {"benign": (test.images[idx], y)}
  for name in attacks:
    with np.load(os.path.join(workdir, "attacks", variant, f"{name}.npz")) as f:
      out[name] = (f["adversarial"][:len(idx)], y)
  return out


def _certified(fn, key, x, y, test, rcfg) -> dict:
  """Certified accuracy curves on benign inputs for both noises: fraction correct with a
  certified radius >= r, on a grid of r."""
  curves = {}
  for noise, scale in (("gaussian", rcfg.certify_sigma), ("uniform", rcfg.radius)):
    labels, radii = region.certify(fn, jax.random.fold_in(key, len(curves)), x, noise=noise,
                                   scale=scale, num_select=rcfg.certify_select,
                                   num_estimate=rcfg.certify_estimate, alpha=rcfg.certify_alpha,
                                   bounds=test.bounds, batch_size=rcfg.batch_size)
    labels, radii = np.asarray(labels), np.asarray(radii)
    correct = labels == y
    top = float(radii.max()) if correct.any() else scale
    grid = np.linspace(0.0, max(top, 1e-6), 41)
    curves[noise] = {"scale": scale, "norm": "l2" if noise == "gaussian" else "l1",
                     "radius": grid.tolist(),
                     "certified_accuracy": [float(np.mean(correct & (radii >= r)))
                                            for r in grid],
                     "abstain": float(np.mean(labels < 0)),
                     "accuracy_at_zero": float(np.mean(correct))}
  return curves


def _measurement(fn, key, test, i, config, workdir, variant, model_stamp) -> dict:
  """Cao & Gong's measurement study: label histograms of `measurement_samples` cube samples
  around test image `i` and around its targeted CW-L2 example for each other class."""
  rcfg = config.region
  path = os.path.join(workdir, "region", f"measurement_{variant}.npz")
  x0, y0 = test.images[i], int(test.labels[i])
  # the `measurement_targets` classes the model ranks highest after y0, in class order (every
  # other class on a 10-class data set at the default 9)
  ranked = np.argsort(-np.asarray(fn(x0[None]))[0], kind="stable")
  count = Region.of(rcfg).measurement_targets
  targets = np.sort(np.array([c for c in ranked if c != y0][:count]))
  settings = {"radius": rcfg.radius, "samples": rcfg.measurement_samples, "seed": rcfg.seed,
              "image": i, "cw": config.attack.cw.to_dict(), "model": model_stamp}
  if len(targets) < test.num_classes - 1:  # stamps of runs on every other class unchanged
    settings["targets"] = targets.tolist()
  stamp = json.dumps(settings, sort_keys=True)
  cached = io.read_npz_if_current(path, stamp, ("counts", "titles"))
  if cached is not None:
    return {"counts": cached["counts"], "titles": list(cached["titles"])}
  kwargs = presets.settings("optbrittle", test.name)
  kwargs.update(config.attack.cw.to_dict())
  adv = carlini_wagner_l2(fn, np.repeat(x0[None], len(targets), 0), targets, targeted=True,
                          bounds=test.bounds, batch_size=config.attack.batch_size, **kwargs)
  xs = np.concatenate([x0[None], np.asarray(adv.adversarial)])
  _, counts = region.classify(fn, key, xs, radius=rcfg.radius,
                              num_samples=rcfg.measurement_samples, bounds=test.bounds,
                              batch_size=rcfg.batch_size)
  ok = np.asarray(adv.success)
  titles = [f"benign (label {y0})"] + [f"target {t}" + ("" if s else " (failed)")
                                       for t, s in zip(targets, ok)]
  with io.atomic_path(path) as tmp:
    np.savez(tmp, settings=np.asarray(stamp), counts=np.asarray(counts),
             titles=np.asarray(titles))
  return {"counts": np.asarray(counts), "titles": titles}


def format_table2(out) -> str:
  """Markdown in the paper's Table 2 layout (accuracy), ours beside the paper's."""
  paper = PAPER_TABLE2.get(out["dataset"], {})
  # natural before adversarial, benign before the attacks (sorted by name): the same order
  # whether `out` was computed in this process or read back from table2.json (sorted keys)
  variants = sorted(out["table2"], key=lambda v: (v != "natural", v))
  cols = [(c, v) for c in ("region", "point") for v in variants]
  radii = ", ".join("%s: paper %.4g, learned %.4g" % (v, out["radius"][v]["paper"],
                                                      out["radius"][v]["learned"])
                    for v in variants)
  head = (["examples"] + [x for c, v in cols for x in (f"{c} {v}: ours", "paper")]
          + [f"region {v} (learned r)" for v in variants])
  lines = [f"Accuracy of point and region classification ({out['dataset']}); region radius "
           f"{radii}.", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  kinds = sorted(out["table2"][variants[0]]["point"], key=lambda k: (k != "benign", k))
  cell = lambda v, c, kind: out["table2_cells"][v][c][kind]
  for kind in kinds:
    cells = []
    for c, v in cols:
      p = paper.get(v, {}).get(c, {}).get(kind.replace("_released", ""))
      cells += [stats.format_rate(cell(v, c, kind)), stats.beside_paper(cell(v, c, kind), p)]
    cells += [stats.format_rate(cell(v, "region_learned", kind)) for v in variants]
    lines.append(f"| {kind} | " + " | ".join(cells) + " |")
  lines += ["", "Accuracy [95% Wilson interval] (correct/images); the paper's numbers are "
            "marked inside / outside our interval. Every row uses one fixed noise draw of the "
            "region classifier (region.seed). The attacked images are drawn among those every "
            "model classifies correctly (the paper's 100 were an unfiltered sample), so our "
            "benign point rows are 100% by construction and not comparable with the paper's."]
  return "\n".join(lines) + "\n"
