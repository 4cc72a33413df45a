"""Stage "detection": detectability of BI perturbations over training (Section 3.4, Figures 6
and 7). At every measured epoch e a Metzen detector (`detect.features`) is trained to tell the
study's clean training inputs from their BI examples of epoch e, and tested on the study's
clean test inputs against their BI examples of epoch e (detectability: the mean of the true
negative and true positive rates on equal parts). The detectors of `detect.fixed_epochs` are
also tested on the examples of every other measured epoch. For those detectors, Figure 7's
perturbation: the universal-perturbation iteration (universal.epsilon, step, batches) run on the
detector with every clean training input labelled "clean", i.e. the perturbation that most
raises its probability of "adversarial"; reported with the mean probability of "adversarial"
that it gives the clean test inputs.

DIR/detection/epoch_<e>.json holds epoch e's detector's detectability on each epoch it is
tested on (resumable, one file per epoch); DIR/detection/maximisers.npz the Figure 7
perturbations.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from absl import logging

from advbound import evaluate, io, perturbation_detector
from advbound.attacks.universal import universal_perturbation
from advbound.studies.training_dynamics import epochs as epochs_lib
from advbound.studies.training_dynamics import examples


def _train(config, epoch: int, clean, adversarial, bounds):
  d = config.detect
  key = jax.random.fold_in(jax.random.key(int(d.seed)), epoch)
  return perturbation_detector.train(key, clean, adversarial, bounds=bounds, steps=int(d.steps),
                                     batch_size=int(d.batch_size),
                                     learning_rate=float(d.learning_rate),
                                     features=tuple(d.features))


def run(config, workdir: str, *, data: dict, stamps: dict) -> dict:
  d, u, study = config.detect, config.universal, config.study
  fixed_inputs = epochs_lib.inputs(config, data)
  xt, xr = fixed_inputs["test"][0], fixed_inputs["train"][0]
  bounds, batch = data["test"].bounds, int(study.batch_size)
  ep = epochs_lib.measured(config)
  fixed = epochs_lib.resolve(config, d.fixed_epochs)
  bi_test = {e: examples.load(workdir, e, ("bi_test",))["bi_test"] for e in ep}
  rows, max_prob = {}, {}
  for epoch in ep:
    targets = ep if epoch in fixed else [epoch]
    stamp = json.dumps(dict(model=stamps[study.adversarial], epoch=epoch, detect=d.to_dict(),
                            universal=u.to_dict() if epoch in fixed else None,
                            study=study.to_dict()), sort_keys=True, default=str)
    p = os.path.join(workdir, "detection", f"epoch_{epoch:04d}.json")
    got = io.read_json_if_current(p, stamp)
    if got is None or (epoch in fixed and not os.path.exists(_max_path(workdir, epoch))):
      bi_train = examples.load(workdir, epoch, ("bi_train",))["bi_train"]
      det = _train(config, epoch, xr, bi_train, bounds)
      got = dict(settings=stamp, detectability={
          str(t): perturbation_detector.detectability(det, xt, bi_test[t], batch_size=batch)
          for t in targets})
      if epoch in fixed:
        key = jax.random.fold_in(jax.random.key(int(u.seed) + 1), epoch)
        xi = np.asarray(universal_perturbation(
            det, key, xr, np.zeros(len(xr), np.int32), epsilon=float(u.epsilon),
            step_size=float(u.step_size), bounds=bounds,
            batch_size=min(int(u.batch_size), len(xr)), batches_per_step=int(u.batches_per_step),
            num_iterations=int(u.iterations)))
        low, high = bounds
        probs = jax.nn.softmax(evaluate.logits(det, np.clip(xt + xi, low, high),
                                               batch_size=batch), axis=-1)
        got["maximiser_probability"] = float(np.mean(np.asarray(probs)[:, 1]))
        with io.atomic_path(_max_path(workdir, epoch)) as tmp:
          np.save(tmp, xi)
      io.write_json(p, got)
      logging.info("detection: epoch %d done (%s)", epoch,
                   got["detectability"][str(epoch)]["accuracy"])
    rows[epoch] = got["detectability"]
    if epoch in fixed:
      max_prob[epochs_lib.label(config, epoch)] = got["maximiser_probability"]
  respective = [rows[e][str(e)] for e in ep]
  fixed_curves = {epochs_lib.label(config, f): [rows[f][str(e)]["accuracy"] for e in ep]
                  for f in fixed}
  return dict(epochs=ep, fixed_epochs=fixed,
              respective=[r["accuracy"] for r in respective],
              respective_rates=respective, fixed=fixed_curves,
              maximiser_probability=max_prob)


def _max_path(workdir: str, epoch: int) -> str:
  return os.path.join(workdir, "detection", f"maximiser_{epoch:04d}.npy")


def load_maximiser(workdir: str, epoch: int) -> np.ndarray:
  return np.load(_max_path(workdir, epoch))
