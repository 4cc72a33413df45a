"""The blind-spot study end to end, resumable stage by stage (`advbound.runtime.stages`):

  train       the naturally and the PGD-trained model -> models/
  distance    embeddings, mean distance to the 5 nearest training embeddings of every test image
              (and of every transformed test set), predictions -> distance/
  divergence  per-class t-SNE + KDE KL(train || test), Table 1's divergence -> divergence/
  attacks     C&W L-inf from two starts at every (alpha, beta) -> attacks/
  score       Tables 1-3, Figures 1-5 -> score/tables.json, figures/
  report      report.md and results.json (keys documented in report.py)
"""

from __future__ import annotations

import os

from advbound.runtime import io, stages
from advbound.studies import variants as variants_lib
from advbound.runtime import workdir as workdir_lib
from advbound.runtime.stages import Stage
from advbound.studies.blind_spot import (attacks, distances, report, score, settings,
                                         split_divergence)

STAGES = {s.name: s for s in (
    Stage("train", ("data", "model", "models"), (), ("models",)),
    Stage("distance", ("study", "distance"), ("train",), ("distance",)),
    Stage("divergence", ("study", "divergence"), ("train",), ("divergence",)),
    Stage("attacks", ("study", "attack"), ("train",), ("attacks",)),
    Stage("score", ("figures",), ("distance", "divergence", "attacks"),
          ("score", "figures")),
    Stage("report", (), ("train", "distance", "divergence", "attacks", "score"),
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

  def loaded():  # data and models, loaded once by the first stage that needs them
    if "data" not in memo:
      data = dict(zip(("train", "test"), variants_lib.load_splits(config.data, ("train", "test"))))
      memo["data"] = data
      memo["trained"] = {v: variants_lib.train_variant(config, v, data["train"], workdir)
                         for v in config.models}
      memo["stamps"] = {v: variants_lib.model_stamp(config, v) for v in config.models}
    return {"data": memo["data"], "trained": memo["trained"], "stamps": memo["stamps"]}

  def train_all(r, t):
    del r, t
    return loaded()["stamps"]

  bodies = {
      "train": train_all,
      "distance": lambda r, t: distances.run(config, workdir, **loaded()),
      "divergence": lambda r, t: split_divergence.run(config, workdir, **loaded()),
      "attacks": lambda r, t: attacks.run(config, workdir, **loaded()),
      "score": lambda r, t: score.run(config, workdir, test=loaded()["data"]["test"],
                                      divergence=r["divergence"], distance=r["distance"]),
      "report": lambda r, t: report.write(config, workdir, r, t),
  }
  stages.run(config, workdir, list(STAGES.values()), bodies)
  return io.read_json(os.path.join(workdir, "results.json"))
