"""Stage "detection": detectability of adversarial perturbations over training (Section 3.4,
Figures 6 and 7; Appendix G, Figure 16).

At every measured epoch e a Metzen detector (`detect.features`) is trained to tell the detect
draw's clean training inputs (detect.train_images; None: the whole training split, as the
paper trains on the training data) from their BI examples of epoch e (true labels, made here
and not stored), and tested on the eval draw's clean test inputs (the whole test split at the
paper's settings) against their stored BI examples of epoch e. Detectability is the mean of
the true negative and true positive rates on equal parts: (TN + TP) of 2E decisions, given as a
`stats.proportion` cell (95% Wilson interval) with "accuracy", "true_negative_rate" and
"true_positive_rate". The detectors of `detect.fixed_epochs` are also tested on the examples of
every other measured epoch.

Figure 16 (Appendix G): the same for FGSM (a detector per epoch and the fixed epochs' detectors
on every epoch) and for DeepFool, restricted as in the paper to the respective epoch and here
to the epochs of `destruction.epochs` (where the DeepFool test examples are made).

For the BI detectors of the fixed epochs, Figure 7's perturbation: the universal-perturbation
iteration (universal.epsilon, step, batches) run on the detector with every clean detect-draw
input labelled "clean", i.e. the perturbation that most raises its probability of
"adversarial"; reported with the mean probability of "adversarial" it gives the clean eval
inputs (with a bootstrap interval over the inputs).

DIR/detection/epoch_<e>.json holds epoch e's detectors' results (resumable, one file per
epoch); DIR/detection/maximiser_<e>.npy the Figure 7 perturbations.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from absl import logging

from advbound import stats
from advbound.analysis import evaluate, perturbation_detector
from advbound.attacks.universal import universal_perturbation
from advbound.runtime import io
from advbound.studies.training_dynamics import epochs as epochs_lib, examples

# attack -> (the stored eval field, the stream folded into the detector's key)
ATTACKS = {"bi": ("bi_eval", 0), "fgsm": ("fgsm_eval", 1), "deepfool": ("deepfool_eval", 2)}


def _train(config, epoch: int, attack: str, clean, adversarial, bounds):
  d = config.detect
  key = jax.random.fold_in(jax.random.key(int(d.seed)), epoch)
  if attack != "bi":  # the BI detectors keep the key they had before FGSM / DeepFool were added
    key = jax.random.fold_in(key, ATTACKS[attack][1])
  return perturbation_detector.train(key, clean, adversarial, bounds=bounds, steps=int(d.steps),
                                     batch_size=int(d.batch_size),
                                     learning_rate=float(d.learning_rate),
                                     features=tuple(d.features))


def cell(detector_fn, clean, adversarial, batch: int) -> dict:
  """Detectability of a detector on clean [E, ...] and adversarial [E, ...] inputs: a
  `stats.proportion` of its correct decisions (TN + TP of 2E) with the two rates."""
  if len(clean) != len(adversarial):
    raise ValueError(f"detectability needs equal parts, got {len(clean)} clean and "
                     f"{len(adversarial)} adversarial inputs")
  r = perturbation_detector.detectability(detector_fn, clean, adversarial, batch_size=batch)
  n = len(clean)
  right = int(round(r["true_negative_rate"] * n)) + int(round(r["true_positive_rate"] * n))
  return dict(stats.proportion(right, 2 * n), **r)


def _make(config, attack, fn, x, y, bounds, batch):
  study = config.study
  if attack == "bi":
    return examples.bi(fn, x, y, study, bounds, batch)
  if attack == "fgsm":
    return examples.fgsm_examples(fn, x, y, study, bounds, batch)
  return examples.deepfool_examples(fn, x, y, config.destruction.deepfool, bounds, batch)


def run(config, workdir: str, *, data: dict, stamps: dict, models: epochs_lib.Models) -> dict:
  d, u, study = config.detect, config.universal, config.study
  fixed_inputs = epochs_lib.inputs(config, data, detect=True)
  (xe, _), (xd, yd) = fixed_inputs["eval"], fixed_inputs["detect"]
  bounds, batch = data["test"].bounds, int(study.batch_size)
  ep = epochs_lib.measured(config)
  fixed = epochs_lib.resolve(config, d.fixed_epochs)
  df_epochs = set(epochs_lib.resolve(config, config.destruction.epochs)) & set(ep)
  deepfool_on = "deepfool" in config.destruction.attacks
  records = {}
  for epoch in ep:
    attacks = ["bi", "fgsm"] + (["deepfool"] if deepfool_on and epoch in df_epochs else [])
    stamp = json.dumps(dict(model=stamps[study.adversarial], epoch=epoch, detect=d.to_dict(),
                            universal=u.to_dict() if epoch in fixed else None,
                            study=study.to_dict(), attacks=attacks,
                            deepfool=config.destruction.deepfool.to_dict(),
                            draws=[len(xe), len(xd)]), sort_keys=True, default=str)
    p = os.path.join(workdir, "detection", f"epoch_{epoch:04d}.json")
    got = io.read_json_if_current(p, stamp)
    if got is None or (epoch in fixed and not os.path.exists(_max_path(workdir, epoch))):
      fn = models(epoch)
      got = dict(settings=stamp)
      for attack in attacks:
        field = ATTACKS[attack][0]
        targets = ep if (epoch in fixed and attack != "deepfool") else [epoch]
        adv_train = _make(config, attack, fn, xd, yd, bounds, batch)
        det = _train(config, epoch, attack, xd, adv_train, bounds)
        got[attack] = {str(t): cell(det, xe, examples.load(workdir, t, (field,))[field], batch)
                       for t in targets}
        if attack == "bi" and epoch in fixed:
          key = jax.random.fold_in(jax.random.key(int(u.seed) + 1), epoch)
          xi = np.asarray(universal_perturbation(
              det, key, xd, np.zeros(len(xd), np.int32), epsilon=float(u.epsilon),
              step_size=float(u.step_size), bounds=bounds,
              batch_size=min(int(u.batch_size), len(xd)),
              batches_per_step=int(u.batches_per_step), num_iterations=int(u.iterations)))
          low, high = bounds
          probs = np.asarray(jax.nn.softmax(evaluate.logits(det, np.clip(xe + xi, low, high),
                                                            batch_size=batch), axis=-1))[:, 1]
          got["maximiser_probability"] = float(np.mean(probs))
          got["maximiser_interval"] = stats.bootstrap(probs, seed=int(d.seed))
          with io.atomic_path(_max_path(workdir, epoch)) as tmp:
            np.save(tmp, xi)
      io.write_json(p, got)
      logging.info("detection: epoch %d done (BI %s)", epoch, got["bi"][str(epoch)]["accuracy"])
    records[epoch] = got
  out = dict(epochs=ep, fixed_epochs=fixed, train_inputs=int(len(xd)),
             test_inputs=int(len(xe)))
  for attack in ("bi", "fgsm"):
    resp = [records[e][attack][str(e)] for e in ep]
    fixed_rates = {epochs_lib.label(config, f): [records[f][attack][str(e)] for e in ep]
                   for f in fixed}
    part = dict(respective=[r["accuracy"] for r in resp], respective_rates=resp,
                fixed={k: [c["accuracy"] for c in v] for k, v in fixed_rates.items()},
                fixed_rates=fixed_rates)
    if attack == "bi":
      out.update(part)
      out["maximiser_probability"] = {epochs_lib.label(config, f):
                                      records[f]["maximiser_probability"] for f in fixed}
      out["maximiser_interval"] = {epochs_lib.label(config, f):
                                   records[f]["maximiser_interval"] for f in fixed}
    else:
      out[attack] = part
  df = sorted(e for e in ep if "deepfool" in records[e])
  out["deepfool"] = dict(epochs=df,
                         respective=[records[e]["deepfool"][str(e)]["accuracy"] for e in df],
                         respective_rates=[records[e]["deepfool"][str(e)] for e in df])
  return out


def _max_path(workdir: str, epoch: int) -> str:
  return os.path.join(workdir, "detection", f"maximiser_{epoch:04d}.npy")


def load_maximiser(workdir: str, epoch: int) -> np.ndarray:
  return np.load(_max_path(workdir, epoch))
