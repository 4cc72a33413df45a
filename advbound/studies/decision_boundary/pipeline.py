"""The end-to-end reproduction of He et al.: data -> models -> attacks (Table 1) -> point and
region classification (Table 2) -> boundary information and Figures 1-3 -> boundary classifier
(Tables 3, 4) -> report.

The stages are resumable `advbound.runtime.stages.Stage`s: each records `DIR/stages/<stage>.json` (a
stamp of the settings it reads and of the stages before it, its result, its wall time and the
sha256 of its artifacts) and is skipped when that record is current, so changing a setting
reruns the stage that reads it and the stages after it, and a killed run loses at most the
artifact in progress.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging

from advbound import stats
from advbound.analysis import boundary_classifier
from advbound.runtime import io, stages
from advbound.studies import variants as variants_lib

from advbound.runtime.stages import Stage
from advbound.studies.decision_boundary import (attack_study, boundary_study, region_study, report,
                                                settings)

def _loaded(run: stages.Run):
  """(splits, models) of every variant, loaded (trained if missing) by the first stage that
  needs them."""
  return run.once("models", lambda: attack_study.load_models(
      run.config, run.workdir, variants=run.variants, splits=("train", "validation", "test")))


def _train(run: stages.Run):
  return variants_lib.train_and_evaluate(run.config, run.workdir, variants=run.variants)


def _attacks(run: stages.Run):
  return attack_study.run(run.config, run.workdir, loaded=_loaded(run))


def _region(run: stages.Run):
  return region_study.run(run.config, run.workdir, loaded=_loaded(run),
                          attacked=run.results["attacks"])


def _boundary(run: stages.Run):
  return boundary_study.run(run.config, run.workdir, loaded=_loaded(run),
                            attacked=run.results["attacks"])


def _detect(run: stages.Run):
  # the test split alone: no need to load the models when they are not loaded yet
  test = (run.memo["models"][0]["test"] if "models" in run.memo
          else variants_lib.load_splits(run.config.data, ("test",))[0])
  return detection(run.config, run.workdir, run.results["attacks"]["indices"],
                   run.results["region"], variants=run.variants, test=test)


def _report(run: stages.Run):
  return report.write(run.config, run.workdir, run.results, run.timings)


# each stage: the config sections it reads, the stages it runs after, its artifacts, its body
STUDY = stages.Study("decision_boundary", stages=(
    Stage("train", ("data", "model", "models", "eval"), (), ("models",), body=_train,
          inputs=variants_lib.imported_files,
          kernels=(("models.*.batch_size", "train"), ("eval.batch_size", "gradient"))),
    # version 1: rates carry their counts and 95% intervals (advbound.stats)
    Stage("attacks", ("attack",), ("train",), ("attacks",), version=1, body=_attacks,
          kernels=(("attack.batch_size", "gradient"),)),
    Stage("region", ("region",), ("attacks",), ("region",), version=1, body=_region,
          kernels=(("region.batch_size", "forward"),)),
    Stage("boundary", ("boundary",), ("attacks",), ("boundary",), body=_boundary,
          kernels=(("boundary.batch_size", "forward"),)),
    Stage("detect", ("detect",), ("boundary", "region"), ("detect",), version=1, body=_detect),
    Stage("report", ("note",), ("train", "attacks", "region", "boundary", "detect"),
          ("report.md", "results.json"), version=1, body=_report),
), validate=settings.validate)
STAGES = {s.name: s for s in STUDY.stages}


def run(config, workdir: str, *, variants=None, strict: bool = True) -> dict:
  """Runs (or resumes) every stage and returns results.json's content.

  The whole config is validated first (every problem at once), and the workdir is locked for
  the run (workdir.WorkdirBusyError if another run holds it); see `stages.run_study`.
  """
  stages.run_study(STUDY, config, workdir, variants=variants, strict=strict)
  return io.read_json(os.path.join(workdir, "results.json"))


def detection(config, workdir: str, indices, region_result: dict, *, variants=None,
              test=None) -> dict:
  """He et al.'s Tables 3 and 4: the boundary classifier trained on one attack's examples and
  tested on every attack's, beside region classification's accuracy on the same examples.

  Inputs are split by index: the first `train_fraction` of the attacked images train, the rest
  test (each image gives one benign and one adversarial input per attack). `indices` are the
  attacked test images (attack_study's "indices"); `test` is the test split (loaded here if
  None).
  """
  if test is None:
    (test,) = variants_lib.load_splits(config.data, ("test",))
  labels = test.labels[np.asarray(indices)]
  dcfg = config.detect
  names = variants_lib.variant_names(config, variants)
  key = jax.random.key(dcfg.seed)
  table3, table4 = {}, {}
  for v in names:
    feats = {}
    for kind in ("benign",) + tuple(dcfg.attacks):
      with np.load(os.path.join(workdir, "boundary", v, f"{kind}.npz")) as f:
        info = {k: f[k] for k in ("center", "distance", "adjacent", "success")}
      valid = (info["center"] == labels) if kind == "benign" else info["success"]
      feats[kind] = boundary_classifier.features(
          info["distance"], info["adjacent"], valid, num_classes=test.num_classes,
          none_value=float(test.bounds[1]), offset=dcfg.offset, scale=dcfg.scale)
    n = len(feats["benign"].valid)
    cut = int(round(dcfg.train_fraction * n))
    tr, te = np.arange(cut), np.arange(cut, n)
    table3[v] = {}
    for j, train_attack in enumerate(tuple(dcfg.train_attacks) + ("fgsm",)):
      if train_attack not in feats:
        continue
      row = _train_and_test(jax.random.fold_in(key, j), feats, train_attack, tr, te, dcfg)
      tests = dcfg.train_attacks if train_attack != "fgsm" else ("fgsm",)
      row["false_negative"] = {a: row["false_negative"].get(a) for a in tests}
      row["region_accuracy"] = region_result["table2"][v]["region"].get(train_attack)
      if train_attack == "fgsm":
        table4[v] = row
      else:
        table3[v][train_attack] = row
  out = {"table3": table3, "table4": table4, "train_inputs": int(len(tr)),
         "test_inputs": int(len(te))}
  io.write_json(os.path.join(workdir, "detect", "tables.json"), out)
  return out


def _train_and_test(key, feats, attack, tr, te, dcfg) -> dict:
  benign, adv = feats["benign"], feats[attack]
  reason = None
  if not benign.take(tr).valid.any():
    reason = "no correctly classified benign training input"
  elif not adv.take(tr).valid.any():
    reason = f"no successful {attack} training example"
  if reason:
    logging.warning("boundary classifier on %s: %s; skipped", attack, reason)
    return {"false_positive": None, "false_negative": {}, "worst_case_accuracy": None,
            "skipped": reason}
  model = boundary_classifier.train(key, benign.take(tr), adv.take(tr), steps=dcfg.steps,
                                    batch_size=dcfg.batch_size,
                                    learning_rate=dcfg.learning_rate)
  test = {kind: f.take(te) for kind, f in feats.items()}
  pred = {kind: boundary_classifier.predict(model, f) for kind, f in test.items()}
  fp, _ = boundary_classifier.rates(pred["benign"], test["benign"].valid, pred[attack],
                                    test[attack].valid)
  fns = {other: boundary_classifier.rates(pred["benign"], test["benign"].valid, pred[other],
                                          test[other].valid)[1]
         for other in test if other != "benign"}
  flagged = lambda kind, as_: stats.of(pred[kind][np.asarray(test[kind].valid, bool)] == as_)
  fp_cell = flagged("benign", 1)
  fn_cells = {other: flagged(other, 0) for other in test if other != "benign"}
  return {"false_positive": fp, "false_negative": fns,
          "worst_case_accuracy": boundary_classifier.worst_case_accuracy(fp, fns.get(attack)),
          "cells": {"false_positive": fp_cell, "false_negative": fn_cells,
                    "worst_case_accuracy": worst_case_interval(fp_cell, fn_cells[attack])},
          "test_benign": int(test["benign"].valid.sum()),
          "test_adversarial": int(test[attack].valid.sum())}


def worst_case_interval(fp: dict, fn: dict) -> dict:
  """Interval of He et al.'s worst-case accuracy 1 - max(FP, FN) from the two rates' cells
  (`stats.proportion`): each rate's 97.5% Wilson interval, so that both hold together with at
  least 95% probability (Bonferroni), mapped through the monotone 1 - max(., .).
  {"estimate", "low", "high", "confidence", "method"}; None values where a rate is undefined."""
  out = {"estimate": None, "low": None, "high": None, "confidence": stats.CONFIDENCE,
         "method": "Bonferroni of two 97.5% Wilson intervals"}
  if not fp["n"] or not fn["n"]:
    return out
  level = 1 - (1 - stats.CONFIDENCE) / 2
  (fpl, fph), (fnl, fnh) = (stats.proportion_interval(c["successes"], c["n"], confidence=level)
                            for c in (fp, fn))
  out.update(estimate=1 - max(fp["rate"], fn["rate"]), low=1 - max(fph, fnh),
             high=1 - max(fpl, fnl))
  return out


_PIECES = {"train": "train", "attack": "attacks", "boundary": "boundary", "region": "region"}


def piece(name: str) -> stages.Study:
  """The study restricted to what the entry point of one piece (`experiments.train`, `attack`,
  `boundary`, `region`) computes: its stage and those it runs after (for `--estimate` and the
  memory check)."""
  wanted, todo = set(), [_PIECES[name]]
  while todo:
    s = todo.pop()
    if s not in wanted:
      wanted.add(s)
      todo.extend(STAGES[s].after)
  def validate(config, variants=None):
    settings.validate(config, variants=variants, required=settings.STAGE_SECTIONS[name])

  return stages.Study(f"{STUDY.name} ({name})",
                      tuple(s for s in STUDY.stages if s.name in wanted), validate)
