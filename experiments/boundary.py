"""Boundary information of benign and adversarial test inputs, and Figures 1-3 (He et al.).

  python -m experiments.boundary --config=configs/quickstart.py --workdir=/tmp/qs

Models and attacks missing under the workdir are computed first (as experiments.train and
experiments.attack would). Results: DIR/boundary/ (see advbound/studies/decision_boundary/boundary_study.py).
"""

import json


from advbound.studies.decision_boundary import boundary_study
from experiments import common


def main(config, workdir, variants):
  out = boundary_study.run(config, workdir, variants=variants)
  print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
  common.run(main, stage="boundary")
