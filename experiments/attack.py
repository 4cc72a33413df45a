"""Runs the config's attacks on its trained models and writes Table 1 (He et al.).

  python -m experiments.attack --config=configs/quickstart.py --workdir=/tmp/qs

Models missing under the workdir are trained first (as experiments.train would).
"""

from absl import app

from advbound import attack_study
from experiments import common


def main(argv):
  common.setup(argv)
  out = attack_study.run(common.CONFIG.value, common.WORKDIR.value, variants=common.ONLY.value)
  print(attack_study.format_table1(out))


if __name__ == "__main__":
  app.run(main)
