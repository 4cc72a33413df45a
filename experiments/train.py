"""Trains every model variant of a config and reports test accuracy (clean and under PGD).

  python -m experiments.train --config=configs/quickstart.py --workdir=/tmp/qs
"""

from absl import app, flags, logging
from ml_collections import config_flags

from advbound import train

_CONFIG = config_flags.DEFINE_config_file("config", None, "ml_collections config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (resumed if it exists).")
_ONLY = flags.DEFINE_list("only", None, "Train only these model variants (e.g. natural).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # Keep progress readable: orbax logs every checkpoint step at INFO.
  logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
  results = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                     variants=_ONLY.value)
  lines = ["", f"{'model':<14}{'test accuracy':>15}{'first N: clean':>16}{'PGD':>8}{'N':>7}"]
  for variant, m in results.items():
    lines.append(f"{variant:<14}{m['test_accuracy']:>15.4f}{m['subset_accuracy']:>16.4f}"
                 f"{m['pgd_accuracy']:>8.4f}{m['pgd_examples']:>7d}")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
