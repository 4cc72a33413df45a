"""The attacks of Cao & Gong's evaluation, on every point classifier (stage "attacks").

The evaluated images are drawn once (`protocol.choose_images`) by the rule `evaluation.draw`:
"standard" (the paper, the default) among the test images of the pool that the standard point
classifier labels correctly; "all_correct" among those every point classifier and the region
classifier label correctly. Each classifier's correct count on the drawn images is recorded
(`benign_correct`): a classifier that misclassifies a drawn image is still attacked and scored
on it, over the same denominator as every other row. Each targeted attack runs on every (image,
other class) pair, DeepFool on the images; the high-confidence sweep runs T-CW-L2 at each kappa of
`evaluation.kappas`. Artifacts: `attacks/<classifier>/<name>.npz` (T-CW-L2 at kappa k:
`T-CW-L2_k<k>.npz`) with `adversarial` float32 [M, *S] and `label` int32 [M], the point
classifier's prediction of each example, computed in resumable chunks of
`evaluation.batch_size` rows; `attacks/chosen.npz` holds the images, labels, pairs and targets.
Success is derived later from the labels, by the classifier under evaluation.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import logging

from advbound.analysis import evaluate
from advbound.attacks import cao_gong
from advbound.runtime import io
from advbound.studies import variants as variants_lib
from advbound.studies.region_defense import protocol
from advbound.studies.region_defense.settings import EpsilonGrid, Evaluation

# config.evaluation.overrides key of each base attack
OVERRIDE_KEYS = {"JSMA": "jsma", "CW-L0": "cw_l0", "FGSM": "fgsm", "IGSM": "igsm",
                 "CW-Linf": "cw_linf", "CW-L2": "cw_l2", "DeepFool": "deepfool"}


def base(name: str) -> str:
  return name if name == "DeepFool" else name.split("-", 1)[1]


def artifact_name(attack: str, kappa: float = 0.0) -> str:
  """The artifact stem of `attack` (at CW-L2 confidence kappa)."""
  return attack if not kappa else f"{attack}_k{kappa:g}"


def planned(config, classifier: str) -> list[tuple[str, str, float]]:
  """[(artifact stem, attack, kappa), ...] that the stage computes for `classifier`."""
  ecfg = config.evaluation
  names = ecfg.attacks if classifier == config.study.point else ecfg.baseline_attacks
  out = [(artifact_name(a), a, 0.0) for a in names]
  if "T-CW-L2" in names and classifier in ecfg.kappa_classifiers:
    out += [(artifact_name("T-CW-L2", k), "T-CW-L2", float(k)) for k in ecfg.kappas if k]
  return out


def settings(config, attack: str, kappa: float, bounds) -> dict:
  """(overrides, full): the config's overrides of the attack's settings (with the batch size
  and, for the sweep, the confidence), and the whole settings they give on top of the released
  defaults of `cao_gong.settings` (the FGSM / IGSM epsilon grid left out)."""
  written = getattr(Evaluation.of(config.evaluation).overrides,
                    OVERRIDE_KEYS[base(attack)]) or {}
  # FGSM / IGSM: the grid k / 256 of the range, every grid_stride-th point up to max_epsilon
  grid = EpsilonGrid.of(written)
  top, stride = grid.max_epsilon, grid.grid_stride
  kw = {k: v for k, v in written.items() if k not in ("max_epsilon", "grid_stride")}
  kw["batch_size"] = int(config.evaluation.batch_size)
  if kappa:
    kw["confidence"] = float(kappa)
  defaults = cao_gong.settings(attack, bounds)
  unknown = set(kw) - cao_gong.accepted(attack)
  if unknown:
    raise ValueError(f"evaluation.overrides.{OVERRIDE_KEYS[base(attack)]}: {attack} has no "
                     f"setting(s) {sorted(unknown)}")
  full = {k: v for k, v in defaults.items() if k != "epsilons"}
  full.update(kw)
  if top is not None or stride is not None:
    span = float(bounds[1] - bounds[0])
    grid = defaults["epsilons"][int(stride or 1) - 1::int(stride or 1)]
    kw["epsilons"] = tuple(e for e in grid if top is None or e <= float(top) * span + 1e-9)
    full.update(max_epsilon=top, grid_stride=stride)
  return kw, full


def choose(config, workdir: str, fns: dict, test, radius: float) -> dict:
  """The evaluated images, drawn by `evaluation.draw` among the first `evaluation.pool` test
  images (all by default), and their pairs, written to `attacks/chosen.npz` (with
  `correct_<classifier>` bool [N]: which drawn images each point classifier labels correctly)."""
  ecfg = config.evaluation
  pool = len(test) if ecfg.pool is None else min(int(ecfg.pool), len(test))
  preds = {c: evaluate.predict(fns[c], test.images[:pool], batch_size=config.study.batch_size)
           for c in config.study.classifiers}
  strict = ecfg.draw == "all_correct"
  if ecfg.draw not in protocol.DRAWS:
    raise ValueError(f"evaluation.draw must be one of {protocol.DRAWS}, got {ecfg.draw!r}")

  def region_correct(idx):
    labels = protocol.region_labels(fns[config.study.point], test.images[idx], radius=radius,
                                    bounds=test.bounds, region_cfg=config.region,
                                    query="choose")
    return labels == test.labels[idx]

  drawn_by = list(preds.values()) if strict else [preds[config.study.point]]
  idx = protocol.choose_images(ecfg.seed, test.labels[:pool], drawn_by, int(ecfg.num_images),
                               verify=region_correct if strict else None)
  labels = test.labels[idx]
  rows, targets = protocol.all_targets(labels, test.num_classes)
  chosen = {"indices": idx, "labels": labels, "rows": rows, "targets": targets,
            **{f"correct_{c}": preds[c][idx] == labels for c in preds}}
  with io.atomic_path(os.path.join(workdir, "attacks", "chosen.npz")) as tmp:
    np.savez(tmp, **chosen)
  return chosen


def load_chosen(workdir: str) -> dict:
  with np.load(os.path.join(workdir, "attacks", "chosen.npz")) as f:
    return {k: f[k] for k in f.files}


def inputs(chosen: dict, test, attack: str):
  """(x [M, *S], y [M], target [M] or None) that `attack` runs on."""
  return evaluated(chosen, test, targeted=attack.startswith("T-"))


def evaluated(chosen: dict, test, *, targeted: bool):
  """Targeted: every (image, other class) pair, (x [P, *S], y [P], target [P]); untargeted:
  the images, (x [N, *S], y [N], None)."""
  x = test.images[chosen["indices"]]
  if targeted:
    return x[chosen["rows"]], chosen["labels"][chosen["rows"]], chosen["targets"]
  return x, chosen["labels"], None


def run(config, workdir: str, *, data: dict, fns: dict, radius: float) -> dict:
  """Computes (or reuses) every artifact; returns {"images", "pairs", "indices", "draw",
  "benign_correct": {classifier: drawn images it labels correctly},
  "attacks": {classifier: {stem: {"attack", "kappa", "settings", "point_success"}}}}."""
  test = data["test"]
  chosen = choose(config, workdir, fns, test, radius)
  out = {"images": int(len(chosen["indices"])), "pairs": int(len(chosen["rows"])),
         "indices": chosen["indices"].tolist(), "draw": config.evaluation.draw,
         "benign_correct": {c: int(chosen[f"correct_{c}"].sum())
                            for c in config.study.classifiers}, "attacks": {}}
  for c in config.study.classifiers:
    out["attacks"][c] = {}
    model = variants_lib.model_stamp(config, c)
    for stem, attack, kappa in planned(config, c):
      overrides, full = settings(config, attack, kappa, test.bounds)
      x, y, target = inputs(chosen, test, attack)
      stamp = json.dumps({"model": model, "attack": attack, "settings": full,
                          "indices": chosen["indices"].tolist()}, sort_keys=True, default=str)
      path = os.path.join(workdir, "attacks", c, f"{stem}.npz")
      arrays = io.read_npz_if_current(path, stamp)
      if arrays is None:
        logging.info("%s on %s: %d inputs", stem, c, len(x))

        def compute(lo, hi, attack=attack, x=x, y=y, target=target, overrides=overrides, c=c):
          r = cao_gong.run(attack, fns[c], x[lo:hi], y[lo:hi], bounds=test.bounds,
                           num_classes=test.num_classes,
                           target=None if target is None else target[lo:hi], **overrides)
          adv = np.asarray(r.adversarial, np.float32)
          return {"adversarial": adv,
                  "label": evaluate.predict(fns[c], adv).astype(np.int32)}

        arrays = io.compute_npz_in_parts(path, stamp, len(x), int(config.evaluation.batch_size),
                                         compute)
      goal = target if target is not None else y
      ok = arrays["label"] == goal if target is not None else arrays["label"] != goal
      out["attacks"][c][stem] = {"attack": attack, "kappa": kappa, "settings": full,
                                 "point_success": float(np.mean(ok))}
      logging.info("%s on %s: point success %.3f", stem, c, np.mean(ok))
  return out


def load(workdir: str, classifier: str, stem: str) -> dict:
  with np.load(os.path.join(workdir, "attacks", classifier, f"{stem}.npz")) as f:
    return {k: f[k] for k in ("adversarial", "label")}
