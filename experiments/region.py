"""Point vs region classification (He et al.'s Table 2), Cao & Gong's learned radius and
measurement study, and certified-accuracy curves.

  python -m experiments.region --config=configs/quickstart.py --workdir=/tmp/qs

Models and attacks missing under the workdir are computed first. Results: DIR/region/.
"""

from absl import app

from advbound import region_study
from experiments import common


def main(argv):
  common.setup(argv)
  out = region_study.run(common.CONFIG.value, common.WORKDIR.value, variants=common.ONLY.value)
  print(region_study.format_table2(out))


if __name__ == "__main__":
  app.run(main)
