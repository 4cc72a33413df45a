"""Flags and set-up shared by the entry points: --config, --workdir, --only."""

from absl import app, flags, logging
from ml_collections import config_flags

CONFIG = config_flags.DEFINE_config_file("config", None, "ml_collections config file.",
                                         lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (resumed if it exists).")
ONLY = flags.DEFINE_list("only", None, "Only these model variants (e.g. natural).")
flags.mark_flags_as_required(["config", "workdir"])


def setup(argv) -> None:
  """Rejects stray arguments and keeps progress readable (orbax logs every save at INFO)."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
