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

from advbound import training
from advbound.runtime import io, stages
from advbound.runtime.stages import Stage
from advbound.studies import variants as variants_lib
from advbound.studies.training_dynamics import (destruction, detection, epochs as epochs_lib,
                                                examples, figures, profiles, report, settings,
                                                sharedness, universal)

def _loaded(run: stages.Run) -> dict:
  """{"data": {"train", "test"}, "stamps": variant -> model stamp, "models": epochs.Models},
  trained (or loaded) by the first stage that needs them."""

  def load():
    config, workdir = run.config, run.workdir
    data = dict(zip(("train", "test"), variants_lib.load_splits(config.data, ("train", "test"))))
    for v in config.models:
      variants_lib.train_variant(config, v, data["train"], workdir)
    return {"data": data,
            "stamps": {v: variants_lib.model_stamp(config, v) for v in config.models},
            "models": epochs_lib.Models(config, workdir)}

  return run.once("loaded", load)


def _train(run: stages.Run) -> dict:
  steps = training.snapshot_steps(os.path.join(run.workdir, "models",
                                               run.config.study.adversarial))
  return dict(stamps=_loaded(run)["stamps"], snapshot_steps=steps,
              epochs=epochs_lib.count(run.config))


def _with_models(fn, *, stamps: bool = False):
  """A body calling fn(config, workdir, data=, models=[, stamps=])."""

  def body(run: stages.Run):
    m = _loaded(run)
    extra = {"stamps": m["stamps"]} if stamps else {}
    return fn(run.config, run.workdir, data=m["data"], models=m["models"], **extra)

  return body


def _figures(run: stages.Run):
  return figures.run(run.config, run.workdir, results=run.results)


def _report(run: stages.Run):
  return report.write(run.config, run.workdir, run.results, run.timings)


# each stage: the config sections it reads, the stages it runs after, its artifacts, its body
STUDY = stages.Study("training_dynamics", stages=(
    # train reads study.adversarial (the variant whose snapshots are the epochs)
    Stage("train", ("data", "model", "models", "study"), (), ("models",), body=_train,
          inputs=variants_lib.imported_files,
          kernels=(("models.*.batch_size", "train"),)),
    Stage("examples", ("study", "destruction"), ("train",), ("examples",),
          body=_with_models(examples.run, stamps=True),
          kernels=(("study.batch_size", "gradient"),)),
    Stage("profiles", ("study", "profiles"), ("examples",), ("profiles",),
          body=_with_models(profiles.run)),
    Stage("sharedness", ("study", "sharedness"), ("train",), ("sharedness",),
          body=_with_models(sharedness.run)),
    Stage("universal", ("study", "universal"), ("train",), ("universal",),
          body=_with_models(universal.run, stamps=True),
          kernels=(("universal.batch_size", "gradient"),)),
    Stage("destruction", ("study", "destruction"), ("examples",), (),
          body=_with_models(destruction.run)),
    Stage("detection", ("study", "detect", "universal", "destruction"), ("examples",),
          ("detection",), body=_with_models(detection.run, stamps=True)),
    Stage("figures", ("figures",), ("profiles", "sharedness", "universal", "destruction",
                                    "detection"), ("figures",), body=_figures),
    Stage("report", ("note",), ("train", "examples", "profiles", "sharedness", "universal",
                         "destruction", "detection", "figures"), ("report.md", "results.json"),
          body=_report),
), validate=lambda config, variants=None: settings.validate(config))
STAGES = {s.name: s for s in STUDY.stages}


def run(config, workdir: str, *, strict: bool = True) -> dict:
  """Validates the config (every problem at once), locks the workdir, runs or resumes every
  stage (`stages.run_study`), and returns results.json's content."""
  stages.run_study(STUDY, config, workdir, strict=strict)
  return io.read_json(os.path.join(workdir, "results.json"))
