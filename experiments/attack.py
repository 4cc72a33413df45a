"""Runs the config's attacks on its trained models and writes Table 1 (He et al.).

  python -m experiments.attack --config=configs/quickstart.py --workdir=/tmp/qs

Models missing under the workdir are trained first (as experiments.train would).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from advbound import attack_study

_CONFIG = config_flags.DEFINE_config_file("config", None, "ml_collections config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (resumed if it exists).")
_ONLY = flags.DEFINE_list("only", None, "Attack only these model variants (e.g. natural).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
  out = attack_study.run(_CONFIG.value, _WORKDIR.value, variants=_ONLY.value)
  print(attack_study.format_table1(out))


if __name__ == "__main__":
  app.run(main)
