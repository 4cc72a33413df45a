"""Trains every model variant of a config and reports test accuracy (clean and under PGD).

  python -m experiments.train --config=configs/quickstart.py --workdir=/tmp/qs
"""


from advbound.studies import variants as variants_lib
from experiments import common


def main(config, workdir, variants):
  results = variants_lib.train_and_evaluate(config, workdir, variants=variants)
  lines = ["", f"{'model':<14}{'test accuracy':>15}{'first N: clean':>16}{'PGD':>8}{'N':>7}"]
  for variant, m in results.items():
    lines.append(f"{variant:<14}{m['test_accuracy']:>15.4f}{m['subset_accuracy']:>16.4f}"
                 f"{m['pgd_accuracy']:>8.4f}{m['pgd_examples']:>7d}")
  print("\n".join(lines))


if __name__ == "__main__":
  common.run(main, stage="train")
