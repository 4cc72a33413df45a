"""The end-to-end reproduction of He et al.: data -> models -> attacks (Table 1) -> point and
region classification (Table 2) -> boundary information and Figures 1-3 -> boundary classifier
(Tables 3, 4) -> report.

Every stage records `DIR/stages/<stage>.json`: a stamp (hash of the config sections the stage
reads and of the stamps of the stages it depends on), its result, its wall time, and the
sha256 of every artifact it wrote. A stage is skipped when its record is readable, its stamp
matches and its artifacts are unchanged; otherwise it runs again, reusing whatever of its own
artifacts are still current (models resume from checkpoints, attacks and boundary searches
reuse their per-attack and per-chunk files). Changing a setting therefore reruns the stage that
reads it and the stages after it, and a killed run loses at most the artifact in progress.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import jax
import numpy as np
from absl import logging

from advbound import (attack_study, boundary_study, config_check, detect, io, region_study,
                      report, train)
from advbound import workdir as workdir_lib

# stage -> (config sections it reads, stages it depends on)
STAGES = {
    "train": (("data", "model", "models", "eval"), ()),
    "attacks": (("attack",), ("train",)),
    "region": (("region",), ("attacks",)),
    "boundary": (("boundary",), ("attacks",)),
    "detect": (("detect",), ("boundary", "region")),
    "report": ((), ("train", "attacks", "region", "boundary", "detect")),
}


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _stamp(config, stage: str, stamps: dict) -> str:
  sections, deps = STAGES[stage]
  payload = {s: config[s].to_dict() if hasattr(config[s], "to_dict") else config[s]
             for s in sections}
  payload["after"] = {d: stamps[d] for d in deps}
  return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _current(workdir: str, stage: str, stamp: str):
  """The stage's stored result if its record and artifacts are intact and current."""
  path = os.path.join(workdir, "stages", f"{stage}.json")
  if not os.path.exists(path):
    return None
  try:
    record = io.read_json(path)
  except (OSError, ValueError):
    logging.warning("stage %s: unreadable record; rerunning", stage)
    return None
  if record.get("stamp") != stamp:
    logging.info("stage %s: settings changed; rerunning", stage)
    return None
  for rel, digest in record.get("artifacts", {}).items():
    full = os.path.join(workdir, rel)
    if not os.path.exists(full) or _sha256(full) != digest:
      logging.warning("stage %s: artifact %s is missing or changed; rerunning", stage, rel)
      return None
  return record


def _artifacts(workdir: str, folders) -> dict:
  """sha256 of every file under `folders` (relative to workdir), skipping checkpoints and
  temporary files."""
  out = {}
  for folder in folders:
    root = os.path.join(workdir, folder)
    if os.path.isfile(root):
      out[folder] = _sha256(root)
      continue
    for dirpath, dirnames, filenames in os.walk(root):
      dirnames[:] = sorted(d for d in dirnames if d != "checkpoints")
      for name in sorted(filenames):
        if name.startswith(".tmp-"):
          continue
        full = os.path.join(dirpath, name)
        out[os.path.relpath(full, workdir)] = _sha256(full)
  return out


def run(config, workdir: str, *, variants=None) -> dict:
  """Runs (or resumes) every stage and returns results.json's content.

  The whole config is validated first (config_check.ConfigError lists every problem), and the
  workdir is locked for the run (workdir.WorkdirBusyError if another run holds it).
  """
  config_check.validate(config, variants=variants)
  with workdir_lib.lock(workdir):
    return _run(config, workdir, variants=variants)


def _run(config, workdir: str, *, variants=None) -> dict:
  stamps, results, timings = {}, {}, {}
  memo = {}

  def loaded():  # data and models, loaded once by the first stage that runs and needs them
    if "models" not in memo:
      memo["models"] = attack_study.load_models(config, workdir, variants=variants,
                                                splits=("train", "validation", "test"))
    return memo["models"]

  def test_split():  # detect alone needs only the test split
    if "models" in memo:
      return memo["models"][0]["test"]
    return train.load_splits(config.data, ("test",))[0]

  bodies = {
      "train": (lambda: train.train_and_evaluate(config, workdir, variants=variants),
                ["models"]),
      "attacks": (lambda: attack_study.run(config, workdir, loaded=loaded()), ["attacks"]),
      "region": (lambda: region_study.run(config, workdir, loaded=loaded(),
                                          attacked=results["attacks"]), ["region"]),
      "boundary": (lambda: boundary_study.run(config, workdir, loaded=loaded(),
                                              attacked=results["attacks"]), ["boundary"]),
      "detect": (lambda: detection(config, workdir, results["attacks"]["indices"],
                                   results["region"], variants=variants, test=test_split()),
                 ["detect"]),
      "report": (lambda: report.write(config, workdir, results, timings), ["report.md",
                                                                          "results.json"]),
  }
  for i, stage in enumerate(STAGES):
    stamps[stage] = _stamp(config, stage, stamps)
    record = _current(workdir, stage, stamps[stage])
    if record is not None:
      logging.info("[%d/%d] %s: up to date (%.0f s when computed)", i + 1, len(STAGES), stage,
                   record["seconds"])
      results[stage], timings[stage] = record["result"], record["seconds"]
      continue
    logging.info("[%d/%d] %s: running", i + 1, len(STAGES), stage)
    t0 = time.time()
    body, folders = bodies[stage]
    result = _jsonable(body())
    seconds = time.time() - t0
    results[stage], timings[stage] = result, seconds
    io.write_json(os.path.join(workdir, "stages", f"{stage}.json"),
                  {"stamp": stamps[stage], "result": result, "seconds": seconds,
                   "artifacts": _artifacts(workdir, folders)})
    logging.info("[%d/%d] %s: done in %.0f s", i + 1, len(STAGES), stage, seconds)
  return io.read_json(os.path.join(workdir, "results.json"))


def _jsonable(obj):
  return json.loads(json.dumps(obj, default=io._json_default))


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
    (test,) = train.load_splits(config.data, ("test",))
  labels = test.labels[np.asarray(indices)]
  dcfg = config.detect
  names = train.variant_names(config, variants)
  key = jax.random.key(dcfg.seed)
  table3, table4 = {}, {}
  for v in names:
    feats = {}
    for kind in ("benign",) + tuple(dcfg.attacks):
      with np.load(os.path.join(workdir, "boundary", v, f"{kind}.npz")) as f:
        info = {k: f[k] for k in ("center", "distance", "adjacent", "success")}
      valid = (info["center"] == labels) if kind == "benign" else info["success"]
      feats[kind] = detect.features(info["distance"], info["adjacent"], valid,
                                    num_classes=test.num_classes,
                                    none_value=float(test.bounds[1]), offset=dcfg.offset,
                                    scale=dcfg.scale)
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
  model = detect.train(key, benign.take(tr), adv.take(tr), steps=dcfg.steps,
                       batch_size=dcfg.batch_size, learning_rate=dcfg.learning_rate)
  test = {kind: f.take(te) for kind, f in feats.items()}
  pred = {kind: detect.predict(model, f) for kind, f in test.items()}
  fp, _ = detect.rates(pred["benign"], test["benign"].valid, pred[attack], test[attack].valid)
  fns = {other: detect.rates(pred["benign"], test["benign"].valid, pred[other],
                             test[other].valid)[1] for other in test if other != "benign"}
  return {"false_positive": fp, "false_negative": fns,
          "worst_case_accuracy": detect.worst_case_accuracy(fp, fns.get(attack)),
          "test_benign": int(test["benign"].valid.sum()),
          "test_adversarial": int(test[attack].valid.sum())}
