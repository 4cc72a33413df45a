"""The training-dynamics study ("Universality, Robustness, and Detectability of Adversarial
Perturbations under Adversarial Training"), end to end, resumable stage by stage.

  python -m experiments.training_dynamics --config=configs/training_dynamics_quickstart.py \
      --workdir=/tmp/td

Stages: natural, then adversarial training with a snapshot per epoch -> BI / FGSM / DeepFool
examples at every measured epoch -> stability profiles, learning and transfer curves ->
sharedness -> universal perturbations -> destruction rates -> detectors -> figures ->
DIR/report.md and DIR/results.json. Rerunning skips every stage whose settings and artifacts
are unchanged (advbound/studies/training_dynamics/pipeline.py).
"""

from absl import logging

from experiments import common


def summary(out, workdir, config):
  logging.info("report: %s/report.md", workdir)
  print(f"report: {workdir}/report.md; results: {workdir}/results.json")
  for c in out["claims"]:
    print(f"  {c['claim']}: paper {c['paper']} ({c['paper_mark']}), ours {c['ours']}; "
          f"{c['verdict']}")


if __name__ == "__main__":
  common.run_study("advbound.studies.training_dynamics.pipeline", summary,
                   no_only="it needs both model variants")
