"""Runs the config's attacks on its trained models and writes Table 1 (He et al.).

  python -m experiments.attack --config=configs/quickstart.py --workdir=/tmp/qs

Models missing under the workdir are trained first (as experiments.train would).
"""


from advbound.studies.decision_boundary import attack_study
from experiments import common


def main(config, workdir, variants):
  out = attack_study.run(config, workdir, variants=variants)
  print(attack_study.format_table1(out))


if __name__ == "__main__":
  common.run(main, stage="attack")
