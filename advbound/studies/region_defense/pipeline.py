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

from advbound.runtime import io, stages
from advbound import models
from advbound.studies import variants as variants_lib
from advbound.studies import plots
from advbound.runtime import workdir as workdir_lib
from advbound.runtime.stages import Stage
from advbound.studies.region_defense import (adaptive, attacks, figures, region_scores, report,
                                             settings, tables)

STAGES = {s.name: s for s in (
    Stage("train", ("data", "model", "models"), (), ("models",)),
    Stage("radius", ("study", "radius", "region"), ("train",), ("radius",)),
    Stage("attacks", ("study", "evaluation"), ("radius",), ("attacks",)),
    Stage("region", ("region", "adapted"), ("radius", "attacks"), ("region",)),
    Stage("adaptive", ("adaptive", "region"), ("radius", "attacks"), ("adaptive",)),
    Stage("figures", ("figures", "region"), ("radius", "attacks", "region"),
          ("figures/figure2.npz",)),
    Stage("score", (), ("attacks", "region"), ("score",)),
    Stage("report", (), ("train", "radius", "attacks", "region", "adaptive", "figures",
                         "score"), ("report.md", "results.json")),
)}


def run(config, workdir: str) -> dict:
  """Validates the config (settings.ConfigError lists every problem), locks the workdir, runs
  or resumes every stage, and returns results.json's content."""
  settings.validate(config)
  with workdir_lib.lock(workdir):
    return _run(config, workdir)


def _run(config, workdir: str) -> dict:
  memo = {}

  def loaded():  # data and models, loaded once by the first stage that needs them
    if "data" not in memo:
      data = dict(zip(("train", "validation", "test"),
                      variants_lib.load_splits(config.data, ("train", "validation", "test"))))
      fns = {}
      for c in config.study.classifiers:
        fns[c] = models.as_logits_fn(variants_lib.train_variant(config, c, data["train"], workdir))
      memo["data"], memo["fns"] = data, fns
    return {"data": memo["data"], "fns": memo["fns"]}

  def train_all(r, t):
    del r, t
    loaded()
    return {c: variants_lib.model_stamp(config, c) for c in config.study.classifiers}

  def score(r, t):
    del t
    out = tables.compute(config, workdir, test=loaded()["data"]["test"], attacked=r["attacks"],
                         region_result=r["region"])
    io.write_json(os.path.join(workdir, "score", "tables.json"), out)
    folder = os.path.join(workdir, "figures")
    for name, series, label in (("figure6", out["figure6"], "kappa"),
                                ("figure7", out["figure7"], "kappa"),
                                ("figure8", out["figure8"], "alpha")):
      if series:
        plots.save(plots.rate_curves(series, xlabel=label), os.path.join(folder, f"{name}.png"))
    return out

  bodies = {
      "train": train_all,
      "radius": lambda r, t: region_scores.learn(config, workdir, **loaded()),
      "attacks": lambda r, t: attacks.run(config, workdir, **loaded(),
                                          radius=r["radius"]["radius"]),
      "region": lambda r, t: region_scores.run(config, workdir, **loaded(),
                                               radius=r["radius"]["radius"],
                                               attacked=r["attacks"]),
      "adaptive": lambda r, t: adaptive.run(config, workdir, **loaded(),
                                            radius=r["radius"]["radius"]),
      "figures": lambda r, t: figures.run(config, workdir, **loaded(),
                                          radius=r["radius"]["radius"], attacked=r["attacks"]),
      "score": score,
      "report": lambda r, t: report.write(config, workdir, r, t),
  }
  stages.run(config, workdir, list(STAGES.values()), bodies)
  return io.read_json(os.path.join(workdir, "results.json"))
