"""Flags and set-up shared by the entry points: --config, --workdir, --only.

`run_study(pipeline, summary)` is a study's main: it parses the flags (reporting every unknown
`--config.*` key with its full path) and hands the config to `advbound.runtime.stages.run_study`,
which validates the whole config (all problems at once, before anything runs), takes the workdir's
lock (one run per workdir) and runs or resumes the study's stages; `summary(results, workdir,
config)` then prints what the run found. `run(body)` does the same for the entry points that run one
piece of He et al.'s study outside its stages (train, attack, boundary, region). Errors a user can
fix (a bad setting, data that cannot be obtained, a busy workdir, a kernel larger than the
device's memory) end with one message and exit status 2, not a traceback.

`--estimate` runs nothing: it probes every stage at the config's true sizes and prints each
stage's projected time and peak memory (`advbound.runtime.estimate`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, Callable

from absl import app, flags, logging
from ml_collections import config_flags

CONFIG = config_flags.DEFINE_config_file("config", None, "ml_collections config file.",
                                         lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (resumed if it exists; one run "
                              "at a time).")
ONLY = flags.DEFINE_list("only", None, "Only these model variants (e.g. natural).")
ESTIMATE = flags.DEFINE_bool(
    "estimate", False, "Do not run: probe every stage at the config's true sizes on this "
    "device and print each stage's projected time and peak memory (written to "
    "DIR/estimate.json; stages complete in DIR count as zero). Run it before a paper-scale "
    "run.")
MEMORY_CHECK = flags.DEFINE_enum(
    "memory_check", "auto", ["auto", "on", "off"], "Before running, compile the kernels the "
    "batch sizes make and stop if one needs more memory than the device offers (auto: on "
    "accelerators, off on CPU, where memory is the host's).")
DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Run over several hosts: call jax.distributed.initialize() first (a "
    "TPU pod slice, SLURM or Open MPI finds its coordinator itself; elsewhere also give "
    "--coordinator, --num_processes and --process_id). Every host runs the same command on a "
    "workdir they share; process 0 writes the artifacts.")
COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0 (--distributed)")
NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes in all (--distributed)")
PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index (--distributed)")
flags.mark_flags_as_required(["config", "workdir"])

EXIT_USAGE = 2


def fail(message: str) -> None:
  """Prints `message` as an error and exits with status 2 (no traceback)."""
  sys.stderr.write(f"error: {message}\n")
  sys.stderr.flush()
  sys.exit(EXIT_USAGE)


def _config_file(argv) -> str | None:
  for i, arg in enumerate(argv[1:], 1):
    if arg.startswith("--config="):
      return arg[len("--config="):]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _load_config(spec: str):
  """get_config() of a config file 'path[:argument]'; None if it cannot be loaded here (absl
  then reports the problem itself)."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    return None
  try:
    module_spec = importlib.util.spec_from_file_location("_advbound_config_probe", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()
  except Exception:  # pylint: disable=broad-except
    return None


def unknown_overrides(argv) -> list[str]:
  """Problems ("--config.a.b: ...") of every --config.* override naming a key the config lacks."""
  spec = _config_file(argv)
  config = _load_config(spec) if spec else None
  if config is None:
    return []
  problems = []
  for arg in argv[1:]:
    for prefix in ("--config.", "--noconfig."):
      if arg.startswith(prefix):
        path = arg[len(prefix):].split("=", 1)[0]
        break
    else:
      continue
    node, walked = config, "config"
    for key in path.split("."):
      keys = list(node.keys()) if hasattr(node, "keys") else None
      if keys is None:
        problems.append(f"--config.{path}: {walked} is a value ({node!r}), not a section")
        break
      if key not in keys:
        problems.append(f"--config.{path}: unknown key {key!r} in {walked} "
                        f"(its keys: {', '.join(keys)})")
        break
      node, walked = node[key], f"{walked}.{key}"
  return problems


def parse_flags(argv):
  """absl's parser, but unknown --config.* keys are reported together, by full path."""
  problems = unknown_overrides(argv)
  if problems:
    fail(f"{len(problems)} unknown config key(s):\n  " + "\n  ".join(problems))
  try:
    return app.parse_flags_with_usage(argv)
  except (KeyError, AttributeError) as e:  # an override ml_collections rejects
    fail(f"bad --config override: {e}")


def setup(argv) -> None:
  """Rejects stray arguments and keeps progress readable (orbax logs every save at INFO)."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)


def distributed() -> None:
  """Starts jax.distributed when --distributed is given (before anything else touches JAX)."""
  manual = {"coordinator_address": COORDINATOR.value, "num_processes": NUM_PROCESSES.value,
            "process_id": PROCESS_ID.value}
  given = {k: v for k, v in manual.items() if v is not None}
  if not DISTRIBUTED.value:
    if given:
      fail(f"--coordinator, --num_processes and --process_id need --distributed (got "
           f"{', '.join(f'{k}={v}' for k, v in given.items())})")
    return
  if given and len(given) != 3:
    fail("--distributed: give all of --coordinator, --num_processes and --process_id, or none "
         f"(got {', '.join(given)})")
  if given and not 0 <= PROCESS_ID.value < NUM_PROCESSES.value:
    fail(f"--process_id must lie in [0, {NUM_PROCESSES.value}), got {PROCESS_ID.value}")
  from advbound.runtime import sharding  # pylint: disable=g-import-not-at-top
  try:
    sharding.initialize_distributed(**given)
  except (RuntimeError, ValueError) as e:
    fail(f"jax.distributed.initialize failed: {e}")


def memory_check_on() -> bool:
  """Whether --memory_check asks for the memory check (auto: on accelerators only)."""
  if MEMORY_CHECK.value != "auto":
    return MEMORY_CHECK.value == "on"
  import jax  # pylint: disable=g-import-not-at-top
  return jax.default_backend() != "cpu"


def run(body: Callable[..., None], *, stage: str) -> None:
  """Runs `body(config, workdir, variants)`, one piece of He et al.'s study outside its stages
  (`stage`: "train", "attack", "boundary" or "region"), as an absl program: the sections that
  piece needs (decision_boundary.settings.STAGE_SECTIONS) must be present, every section present
  is validated, and the workdir is locked (see the module docstring)."""

  def main(argv):
    # Imported here so that --help and flag errors answer before jax loads.
    from advbound import data  # pylint: disable=g-import-not-at-top
    from advbound.config import schema  # pylint: disable=g-import-not-at-top
    from advbound.runtime import workdir  # pylint: disable=g-import-not-at-top
    from advbound.studies.decision_boundary import settings  # pylint: disable=g-import-not-at-top

    setup(argv)
    config, folder, variants = CONFIG.value, WORKDIR.value, ONLY.value
    distributed()
    from advbound.runtime import memory, stages  # pylint: disable=g-import-not-at-top
    from advbound.studies.decision_boundary import pipeline  # pylint: disable=g-import-not-at-top
    study = pipeline.piece(stage)
    try:
      settings.validate(config, variants=variants, required=settings.STAGE_SECTIONS[stage])
      if ESTIMATE.value:
        from advbound.runtime import estimate  # pylint: disable=g-import-not-at-top
        estimate.estimate_study(study, config, folder, variants=variants)
        return
      stages.preflight(config, folder)
      if memory_check_on():
        memory.check(study, config, variants=variants,
                     skip=stages.completed(study, config, folder))
    except (schema.ConfigError, workdir.WorkdirError, data.DataError,
            data.DataUnavailableError, memory.MemoryCheckError) as e:
      fail(str(e))
    try:
      with workdir.lock(folder):
        body(config, folder, variants)
    except (workdir.WorkdirBusyError, data.DataUnavailableError) as e:
      fail(str(e))

  app.run(main, flags_parser=parse_flags)


def run_study(pipeline: str, summary: Callable[[dict, str, Any], None], *,
              no_only: str | None = None) -> None:
  """Runs the study declared as `STUDY` in module `pipeline` (dotted name, imported after the
  flags are parsed) as an absl program, then `summary(results.json content, workdir, config)`.

  `no_only`: why --only does not apply to this study (None: it does, the variants it names
  being checked by the study's validation)."""

  def main(argv):
    # Imported here so that --help and flag errors answer before jax loads.
    import importlib  # pylint: disable=g-import-not-at-top
    from advbound import data  # pylint: disable=g-import-not-at-top
    from advbound.config import schema  # pylint: disable=g-import-not-at-top
    from advbound.runtime import io, stages, workdir  # pylint: disable=g-import-not-at-top

    setup(argv)
    config, folder, variants = CONFIG.value, WORKDIR.value, ONLY.value
    distributed()
    if variants and no_only:
      fail(f"--only does not apply to this study: {no_only}")
    from advbound.runtime import memory  # pylint: disable=g-import-not-at-top
    study = importlib.import_module(pipeline).STUDY
    try:
      if ESTIMATE.value:
        from advbound.runtime import estimate  # pylint: disable=g-import-not-at-top
        estimate.estimate_study(study, config, folder, variants=variants)
        return
      stages.run_study(study, config, folder, variants=variants,
                       memory_check=memory_check_on())
    except (schema.ConfigError, workdir.WorkdirBusyError, workdir.WorkdirError,
            data.DataError, data.DataUnavailableError, memory.MemoryCheckError) as e:
      fail(str(e))
    summary(io.read_json(os.path.join(folder, "results.json")), folder, config)

  app.run(main, flags_parser=parse_flags)
