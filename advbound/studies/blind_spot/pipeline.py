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
from advbound.runtime.stages import Stage
from advbound.studies import variants as variants_lib
from advbound.studies.blind_spot import (attacks, distances, report, score, settings,
                                         split_divergence)

def _loaded(run: stages.Run) -> dict:
  """{"data": {"train", "test"}, "trained": variant -> model, "stamps": variant -> model stamp},
  loaded (trained if missing) by the first stage that needs them."""

  def load():
    config, workdir = run.config, run.workdir
    data = dict(zip(("train", "test"), variants_lib.load_splits(config.data, ("train", "test"))))
    trained = {v: variants_lib.train_variant(config, v, data["train"], workdir)
               for v in config.models}
    return {"data": data, "trained": trained,
            "stamps": {v: variants_lib.model_stamp(config, v) for v in config.models}}

  return run.once("loaded", load)


def _train(run: stages.Run) -> dict:
  return _loaded(run)["stamps"]


def _distance(run: stages.Run):
  return distances.run(run.config, run.workdir, **_loaded(run))


def _divergence(run: stages.Run):
  return split_divergence.run(run.config, run.workdir, **_loaded(run))


def _attacks(run: stages.Run):
  return attacks.run(run.config, run.workdir, **_loaded(run))


def _score(run: stages.Run):
  return score.run(run.config, run.workdir, test=_loaded(run)["data"]["test"],
                   divergence=run.results["divergence"], distance=run.results["distance"])


def _report(run: stages.Run):
  return report.write(run.config, run.workdir, run.results, run.timings)


# each stage: the config sections it reads, the stages it runs after, its artifacts, its body
STUDY = stages.Study("blind_spot", stages=(
    Stage("train", ("data", "model", "models"), (), ("models",), body=_train,
          inputs=variants_lib.imported_files,
          kernels=(("models.*.batch_size", "train"), ("study.batch_size", "forward"))),
    Stage("distance", ("study", "distance"), ("train",), ("distance",), body=_distance),
    Stage("divergence", ("study", "divergence"), ("train",), ("divergence",), body=_divergence),
    Stage("attacks", ("study", "attack"), ("train",), ("attacks",), body=_attacks,
          kernels=(("attack.batch_size", "gradient"),)),
    Stage("score", ("figures",), ("distance", "divergence", "attacks"), ("score", "figures"),
          body=_score),
    Stage("report", ("note",), ("train", "distance", "divergence", "attacks", "score"),
          ("report.md", "results.json"), body=_report),
), validate=lambda config, variants=None: settings.validate(config))
STAGES = {s.name: s for s in STUDY.stages}


def run(config, workdir: str, *, strict: bool = True) -> dict:
  """Validates the config (every problem at once), locks the workdir, runs or resumes every
  stage (`stages.run_study`), and returns results.json's content."""
  stages.run_study(STUDY, config, workdir, strict=strict)
  return io.read_json(os.path.join(workdir, "results.json"))
