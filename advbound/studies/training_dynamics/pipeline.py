"""The training-dynamics study end to end, resumable stage by stage (`advbound.runtime.stages`):

  train        natural training, then adversarial training from it with a snapshot per
               epoch -> models/
  examples     BI, FGSM (and DeepFool) examples at every measured epoch -> examples/
  profiles     stability profiles, learning and transfer curves (Figures 1, 8, 9, 10)
  sharedness   sharedness vs stability, sharedness ratio (Figures 2, 11)
  universal    universal perturbations per epoch (Figures 3, 4, 12, 13)
  destruction  destruction rates under four transformations (Figures 5, 14, 15)
  detection    detectors per epoch and fixed, detector-maximising perturbations (Figures 6, 7);
               FGSM and DeepFool detectors (Figure 16)
  figures      the figures -> figures/
  report       report.md and results.json (keys documented in report.py)
"""

from __future__ import annotations

import os

from advbound.runtime import io, stages
from advbound import training
from advbound.studies import variants as variants_lib
from advbound.runtime import workdir as workdir_lib
from advbound.runtime.stages import Stage
from advbound.studies.training_dynamics import (destruction, detection, examples, figures,
                                                profiles, report, settings, sharedness,
                                                universal)
from advbound.studies.training_dynamics import epochs as epochs_lib

STAGES = {s.name: s for s in (
    Stage("train", ("data", "model", "models"), (), ("models",)),
    Stage("examples", ("study", "destruction"), ("train",), ("examples",)),
    Stage("profiles", ("study", "profiles"), ("examples",), ("profiles",)),
    Stage("sharedness", ("study", "sharedness"), ("train",), ("sharedness",)),
    Stage("universal", ("study", "universal"), ("train",), ("universal",)),
    Stage("destruction", ("study", "destruction"), ("examples",), ()),
    Stage("detection", ("study", "detect", "universal", "destruction"), ("examples",),
          ("detection",)),
    Stage("figures", ("figures",), ("profiles", "sharedness", "universal", "destruction",
                                    "detection"), ("figures",)),
    Stage("report", (), ("train", "examples", "profiles", "sharedness", "universal",
                                "destruction", "detection", "figures"),
          ("report.md", "results.json")),
)}


def run(config, workdir: str) -> dict:
  """Validates the config (settings.ConfigError lists every problem), locks the workdir, runs
  or resumes every stage, and returns results.json's content."""
  settings.validate(config)
  with workdir_lib.lock(workdir):
    return _run(config, workdir)


def _run(config, workdir: str) -> dict:
  memo = {}

  def loaded():  # data and models, loaded (trained) once by the first stage that needs them
    if "data" not in memo:
      data = dict(zip(("train", "test"), variants_lib.load_splits(config.data, ("train", "test"))))
      memo["data"] = data
      for v in config.models:
        variants_lib.train_variant(config, v, data["train"], workdir)
      memo["stamps"] = {v: variants_lib.model_stamp(config, v) for v in config.models}
      memo["models"] = epochs_lib.Models(config, workdir)
    return memo

  def train_all(r, t):
    del r, t
    steps = training.snapshot_steps(os.path.join(workdir, "models", config.study.adversarial))
    return dict(stamps=loaded()["stamps"], snapshot_steps=steps,
                epochs=epochs_lib.count(config))

  def with_models(fn, **extra):
    m = loaded()
    return fn(config, workdir, data=m["data"], models=m["models"], **extra)

  bodies = {
      "train": train_all,
      "examples": lambda r, t: with_models(examples.run, stamps=loaded()["stamps"]),
      "profiles": lambda r, t: with_models(profiles.run),
      "sharedness": lambda r, t: with_models(sharedness.run),
      "universal": lambda r, t: with_models(universal.run, stamps=loaded()["stamps"]),
      "destruction": lambda r, t: with_models(destruction.run),
      "detection": lambda r, t: with_models(detection.run, stamps=loaded()["stamps"]),
      "figures": lambda r, t: figures.run(config, workdir, results=r),
      "report": lambda r, t: report.write(config, workdir, r, t),
  }
  stages.run(config, workdir, list(STAGES.values()), bodies)
  return io.read_json(os.path.join(workdir, "results.json"))
