"""Boundary information of benign and adversarial test inputs, and Figures 1-3 (He et al.).

  python -m experiments.boundary --config=configs/quickstart.py --workdir=/tmp/qs

Models and attacks missing under the workdir are computed first (as experiments.train and
experiments.attack would). Results: DIR/boundary/ (see advbound/boundary_study.py).
"""

import json

from absl import app

from advbound import boundary_study
from experiments import common


def main(argv):
  common.setup(argv)
  out = boundary_study.run(common.CONFIG.value, common.WORKDIR.value, variants=common.ONLY.value)
  print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
  app.run(main)
