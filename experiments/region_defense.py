"""Cao & Gong's study, end to end, resumable stage by stage.

  python -m experiments.region_defense --config=configs/region_defense_quickstart.py --workdir=/tmp/rd

Stages: train the standard, adversarially trained and distilled classifiers -> learn the
region classifier's radius (Algorithm 1, Figure 4, Table 3) -> every attack x 9 targets on the
evaluated images -> region labels of the examples -> EOT-PGD through the region classifier
(beyond the paper) -> Figures 2, 1, 5, 9 -> Tables 4-6, Figures 6-8 -> DIR/report.md and
DIR/results.json. Rerunning skips every stage whose settings and artifacts are unchanged
(advbound/studies/region_defense/pipeline.py).
"""

from absl import logging

from experiments import common


def summary(out, workdir, config):
  ds = out["dataset"]
  logging.info("report: %s/report.md", workdir)
  print(f"report: {workdir}/report.md; results: {workdir}/results.json")
  print("Table 3:", {k: round(v["accuracy"], 4) for k, v in out["table3"][ds].items()})
  print("Table 4 (region):", {a: None if c is None else round(c["success_rate"], 3)
                              for a, c in out["table4"][ds]["region"].items()})


if __name__ == "__main__":
  common.run_study("advbound.studies.region_defense.pipeline", summary,
                   no_only="it compares all of study.classifiers")
