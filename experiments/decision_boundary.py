"""The main job: He et al.'s whole study, end to end, resumable stage by stage.

  python -m experiments.decision_boundary --config=configs/quickstart.py --workdir=/tmp/db

Stages: train (or load) the natural and PGD-trained models -> attacks (Table 1) -> point and
region classification (Table 2) -> boundary information and Figures 1-3 -> boundary classifier
(Tables 3, 4) -> DIR/report.md and DIR/results.json. Rerunning skips every stage whose
settings and artifacts are unchanged (see advbound/studies/decision_boundary/pipeline.py).
"""

from absl import logging

from experiments import common


def summary(out, workdir, config):
  logging.info("report: %s/report.md", workdir)
  print(f"report: {workdir}/report.md; results: {workdir}/results.json")
  print({v: r for v, r in out["table3"].items()})


if __name__ == "__main__":
  common.run_study("advbound.studies.decision_boundary.pipeline", summary)
