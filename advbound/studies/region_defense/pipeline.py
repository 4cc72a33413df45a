"""Cao & Gong's study end to end, resumable stage by stage (`advbound.runtime.stages`):

  train     the point classifiers (standard, adversarial training with DeepFool examples,
            defensive distillation: teacher and student at T) -> models/
  radius    Algorithm 1 on the validation split (Figure 4) and Table 3's accuracies -> radius/
  attacks   every attack on every point classifier, 100 images x 9 targets -> attacks/
  region    the region classifier's labels of the examples and of the -A examples -> region/
  adaptive  EOT-PGD through the region classifier's noise (beyond the paper) -> adaptive/
  figures   Figure 2 and the image grids (Figures 1, 5, 9) -> figures/
  score     Tables 4-6 and Figures 6-8 -> score/tables.json, figures/figure{6,7,8}.png
  report    report.md and results.json (keys documented in report.py)
"""

from __future__ import annotations

import os

from advbound import models
from advbound.runtime import io, stages
from advbound.runtime.stages import Stage
from advbound.studies import plots, variants as variants_lib
from advbound.studies.region_defense import (adaptive, attacks, figures, region_scores, report,
                                             settings, tables)

def _loaded(run: stages.Run) -> dict:
  """{"data": splits, "fns": classifier name -> logits_fn}, loaded (trained if missing) by the
  first stage that needs them."""

  def load():
    config, workdir = run.config, run.workdir
    data = dict(zip(("train", "validation", "test"),
                    variants_lib.load_splits(config.data, ("train", "validation", "test"))))
    fns = {c: models.as_logits_fn(variants_lib.train_variant(config, c, data["train"], workdir))
           for c in config.study.classifiers}
    return {"data": data, "fns": fns}

  return run.once("loaded", load)


def _train(run: stages.Run) -> dict:
  _loaded(run)
  return {c: variants_lib.model_stamp(run.config, c) for c in run.config.study.classifiers}


def _radius(run: stages.Run):
  return region_scores.learn(run.config, run.workdir, **_loaded(run))


def _attacks(run: stages.Run):
  return attacks.run(run.config, run.workdir, **_loaded(run),
                     radius=run.results["radius"]["radius"])


def _region(run: stages.Run):
  return region_scores.run(run.config, run.workdir, **_loaded(run),
                           radius=run.results["radius"]["radius"],
                           attacked=run.results["attacks"])


def _adaptive(run: stages.Run):
  return adaptive.run(run.config, run.workdir, **_loaded(run),
                      radius=run.results["radius"]["radius"])


def _figures(run: stages.Run):
  return figures.run(run.config, run.workdir, **_loaded(run),
                     radius=run.results["radius"]["radius"], attacked=run.results["attacks"])


def _score(run: stages.Run) -> dict:
  out = tables.compute(run.config, run.workdir, test=_loaded(run)["data"]["test"],
                       attacked=run.results["attacks"], region_result=run.results["region"])
  io.write_json(os.path.join(run.workdir, "score", "tables.json"), out)
  folder = os.path.join(run.workdir, "figures")
  for name, series, label in (("figure6", out["figure6"], "kappa"),
                              ("figure7", out["figure7"], "kappa"),
                              ("figure8", out["figure8"], "alpha")):
    if series:
      plots.save(plots.rate_curves(series, xlabel=label), os.path.join(folder, f"{name}.png"))
  return out


def _report(run: stages.Run):
  return report.write(run.config, run.workdir, run.results, run.timings)


# each stage: the config sections it reads, the stages it runs after, its artifacts, its body
STUDY = stages.Study("region_defense", stages=(
    # train reads study.classifiers (the variants it trains)
    Stage("train", ("data", "model", "models", "study"), (), ("models",), body=_train,
          inputs=variants_lib.imported_files,
          kernels=(("models.*.batch_size", "train"), ("study.batch_size", "forward"))),
    Stage("radius", ("study", "radius", "region"), ("train",), ("radius",), body=_radius,
          kernels=(("region.batch_size", "forward"),)),
    Stage("attacks", ("study", "evaluation"), ("radius",), ("attacks",), body=_attacks,
          kernels=(("evaluation.batch_size", "gradient"),)),
    Stage("region", ("region", "adapted"), ("radius", "attacks"), ("region",), body=_region,
          kernels=(("region.batch_size", "forward"),)),
    Stage("adaptive", ("adaptive", "region"), ("radius", "attacks"), ("adaptive",),
          body=_adaptive,
          kernels=(("adaptive.batch_size", "gradient"), ("region.batch_size", "forward"))),
    Stage("figures", ("figures", "region"), ("radius", "attacks", "region"),
          ("figures/figure2.npz",), body=_figures),
    Stage("score", (), ("attacks", "region"), ("score",), body=_score),
    Stage("report", ("note",), ("train", "radius", "attacks", "region", "adaptive", "figures",
                         "score"), ("report.md", "results.json"), body=_report),
), validate=lambda config, variants=None: settings.validate(config))
STAGES = {s.name: s for s in STUDY.stages}


def run(config, workdir: str, *, strict: bool = True) -> dict:
  """Validates the config (every problem at once), locks the workdir, runs or resumes every
  stage (`stages.run_study`), and returns results.json's content."""
  stages.run_study(STUDY, config, workdir, strict=strict)
  return io.read_json(os.path.join(workdir, "results.json"))
