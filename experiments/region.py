"""Point vs region classification (He et al.'s Table 2), Cao & Gong's learned radius and
measurement study, and certified-accuracy curves.

  python -m experiments.region --config=configs/quickstart.py --workdir=/tmp/qs

Models and attacks missing under the workdir are computed first. Results: DIR/region/.
"""


from advbound.studies.decision_boundary import region_study
from experiments import common


def main(config, workdir, variants):
  out = region_study.run(config, workdir, variants=variants)
  print(region_study.format_table2(out))


if __name__ == "__main__":
  common.run(main, stage="region")
