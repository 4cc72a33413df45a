"""Resumable stages, shared by every study (He et al.'s pipeline, Cao & Gong's, ...).

A study is an ordered list of `Stage`s. Running a stage records `DIR/stages/<name>.json`: a
stamp (hash of the config sections the stage reads and of the stamps of the stages it runs
after), its result (JSON), its wall time, the config sections it read (under `run_study`), and
the sha256 of every artifact it wrote (the files
under its `outputs`, checkpoints and temporary files excepted). A stage is skipped when its
record is readable, its stamp matches and its artifacts are unchanged; otherwise it runs again
(reusing whatever of its own artifacts are still current: models resume from checkpoints,
per-chunk parts are reused). Changing a setting therefore reruns the stage that reads it and
the stages after it, and a killed run loses at most the artifact in progress.

A study is declared once as a `Study`: its stages, each with its body (a function of the `Run`),
and its config validation. `run_study` validates the config (every problem at once), takes the
workdir's lock, and runs the stages, handing each body the config through a `RecordingConfig`
that records which sections the body reads. A read of a section that neither the stage nor a
stage it runs after (directly or not) declares would let a changed setting reuse a stale
artifact: it is an error (`UndeclaredReadError`) in strict mode, the default, and a logged error
otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
from absl import logging

from advbound.runtime import io, workdir as workdir_lib


@dataclasses.dataclass(frozen=True)
class Stage:
  """One step of a study.

  name: the record's name (`DIR/stages/<name>.json`) and the key of its result.
  sections: the config sections it reads (their values enter its stamp).
  after: the stages whose results it uses (their stamps enter its stamp).
  outputs: files or folders under the workdir holding its artifacts (digests recorded).
  version: the format of its result; bumping it makes records written by older code stale, so
    they rerun instead of feeding a later stage a result that lacks a newer field (0 leaves the
    stamp as it was before versions existed).
  body: body(run: Run) -> the stage's JSON-able result (used by `run_study`; `run` takes the
    bodies separately).
  inputs: inputs(config) -> a JSON-able fingerprint of what the stage reads besides the config
    (e.g. the digests of an imported model's weights files), entering its stamp; None: none.
  kernels: (setting, kind) pairs: the settings that size the stage's largest kernels, kind
    "train" (a variant's training step; setting "models.*.batch_size"), "gradient" (the
    models' input gradient at that many rows) or "forward" (their logits); the memory check
    (`advbound.runtime.memory`) compiles them before the stage can run out of memory.
  """
  name: str
  sections: tuple[str, ...] = ()
  after: tuple[str, ...] = ()
  outputs: tuple[str, ...] = ()
  version: int = 0
  body: Callable[["Run"], Any] | None = dataclasses.field(default=None, compare=False,
                                                         repr=False)
  inputs: Callable[[Any], Any] | None = dataclasses.field(default=None, compare=False,
                                                          repr=False)
  kernels: tuple[tuple[str, str], ...] = dataclasses.field(default=(), compare=False)


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


# Settings added to a section after workdirs were written, with the value that leaves the work
# unchanged: a key at that value stays out of the stamp, so that those workdirs stay current.
ADDED_LATER = {"data": {"validation_size": None}}


def _stamped(name: str, section):
  value = section.to_dict() if hasattr(section, "to_dict") else section
  if isinstance(value, dict) and name in ADDED_LATER:
    value = {k: v for k, v in value.items()
             if not (k in ADDED_LATER[name] and v == ADDED_LATER[name][k])}
  return value


def stamp(config, stage: Stage, stamps: Mapping[str, str]) -> str:
  """Hash of the stage's config sections (those present; `ADDED_LATER` keys at their neutral
  value left out) and of the stamps of the stages it runs after."""
  payload = {s: _stamped(s, config[s])
             for s in stage.sections if s in config}  # an optional section may be absent
  payload["after"] = {d: stamps[d] for d in stage.after}
  if stage.inputs is not None:
    fingerprint = stage.inputs(config)
    if fingerprint:  # nothing beyond the config: the stamp as it was before inputs existed
      payload["inputs"] = fingerprint
  if stage.version:
    payload["version"] = stage.version
  return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def current(workdir: str, name: str, stage_stamp: str) -> dict | None:
  """The stage's stored record if it and its artifacts are intact and current, else None."""
  path = os.path.join(workdir, "stages", f"{name}.json")
  if not os.path.exists(path):
    return None
  try:
    record = io.read_json(path)
  except (OSError, ValueError):
    logging.warning("stage %s: unreadable record; rerunning", name)
    return None
  if record.get("stamp") != stage_stamp:
    logging.info("stage %s: settings changed; rerunning", name)
    return None
  for rel, digest in record.get("artifacts", {}).items():
    full = os.path.join(workdir, rel)
    if not os.path.exists(full) or sha256(full) != digest:
      logging.warning("stage %s: artifact %s is missing or changed; rerunning", name, rel)
      return None
  return record


def artifacts(workdir: str, outputs: Sequence[str]) -> dict[str, str]:
  """sha256 of every file under `outputs` (relative to workdir), skipping checkpoints and
  temporary files."""
  out = {}
  for folder in outputs:
    root = os.path.join(workdir, folder)
    if os.path.isfile(root):
      out[folder] = sha256(root)
      continue
    for dirpath, dirnames, filenames in os.walk(root):
      dirnames[:] = sorted(d for d in dirnames if d != "checkpoints")
      for name in sorted(filenames):
        if name.startswith(".tmp-"):
          continue
        full = os.path.join(dirpath, name)
        out[os.path.relpath(full, workdir)] = sha256(full)
  return out


def jsonable(obj: Any) -> Any:
  """obj as it reads back from JSON (numpy values to plain ones)."""
  return json.loads(json.dumps(obj, default=io._json_default))  # pylint: disable=protected-access


def run(config, workdir: str, stages: Sequence[Stage],
        bodies: Mapping[str, Callable[[dict, dict], Any]], *,
        recorder: RecordingConfig | None = None, strict: bool = True) -> tuple[dict, dict]:
  """Runs (or resumes) the stages in order.

  Args:
    bodies: stage name -> body(results, timings) returning the stage's JSON-able result;
      `results` and `timings` hold those of the stages before it (read back from their records
      when they were current).
    recorder: the `RecordingConfig` the bodies read the config through, if any: each stage's
      reads are checked against its declaration (`check_reads`) before its record is written.
    strict: an undeclared read raises UndeclaredReadError (else it is logged as an error).

  Returns:
    (results, timings): stage name -> result, and -> wall seconds when computed.
  """
  names = [s.name for s in stages]
  if len(set(names)) != len(names) or set(bodies) != set(names):
    raise ValueError(f"stages {names} and bodies {sorted(bodies)} must match one to one")
  stamps, results, timings = {}, {}, {}
  for i, stage in enumerate(stages):
    missing = [d for d in stage.after if d not in stamps]
    if missing:
      raise ValueError(f"stage {stage.name} runs after {missing}, which do not come before it")
    stamps[stage.name] = stamp(config, stage, stamps)
    record = current(workdir, stage.name, stamps[stage.name])
    if record is not None:
      logging.info("[%d/%d] %s: up to date (%.0f s when computed)", i + 1, len(stages),
                   stage.name, record["seconds"])
      results[stage.name], timings[stage.name] = record["result"], record["seconds"]
      continue
    logging.info("[%d/%d] %s: running", i + 1, len(stages), stage.name)
    t0 = time.time()
    if recorder is not None:
      recorder.start(stage.name)
    result = jsonable(bodies[stage.name](results, timings))
    seconds = time.time() - t0
    if recorder is not None:
      recorder.start(None)
      check_reads(stages, {stage.name: recorder.reads.get(stage.name, set())}, strict=strict)
    results[stage.name], timings[stage.name] = result, seconds
    record = {"stamp": stamps[stage.name], "result": result, "seconds": seconds,
              "artifacts": artifacts(workdir, stage.outputs)}
    if recorder is not None:  # the sections the body read, for the record and the tests
      record["reads"] = sorted(recorder.reads.get(stage.name, set()))
    io.write_json(os.path.join(workdir, "stages", f"{stage.name}.json"), record)
    logging.info("[%d/%d] %s: done in %.0f s", i + 1, len(stages), stage.name, seconds)
  return results, timings


class UndeclaredReadError(RuntimeError):
  """A stage read a config section its declaration does not cover."""


class RecordingConfig:
  """A read-only view of a study config that records which top-level sections are read, per
  stage (`start(name)` says which stage reads from now on). Everything a body does with the
  config goes through it: attribute and item access, `get`, `in`, iteration, `to_dict`."""

  def __init__(self, config):
    object.__setattr__(self, "_config", config)
    object.__setattr__(self, "_stage", None)
    object.__setattr__(self, "reads", {})

  def start(self, stage: str | None) -> None:
    object.__setattr__(self, "_stage", stage)

  def _read(self, names: Iterable[str]) -> None:
    if self._stage is not None:
      self.reads.setdefault(self._stage, set()).update(names)

  def __getattr__(self, name):
    if name.startswith("__"):
      raise AttributeError(name)
    self._read([name])
    return getattr(self._config, name)

  def __getitem__(self, name):
    self._read([name])
    return self._config[name]

  def get(self, name, default=None):
    self._read([name])
    return self._config.get(name, default)

  def __contains__(self, name) -> bool:
    self._read([name])
    return name in self._config

  def keys(self):
    return self._config.keys()

  def __iter__(self):
    return iter(self._config.keys())

  def __len__(self) -> int:
    return len(self._config.keys())

  def items(self):
    self._read(self._config.keys())
    return self._config.items()

  def values(self):
    self._read(self._config.keys())
    return self._config.values()

  def to_dict(self) -> dict:
    self._read(self._config.keys())
    return self._config.to_dict()

  def __setattr__(self, name, value):
    raise AttributeError(f"the config is read-only while stages run (setting {name!r})")

  def __repr__(self) -> str:
    return f"RecordingConfig({self._config!r})"


def allowed_sections(stages: Sequence[Stage]) -> dict[str, set[str]]:
  """stage name -> the config sections its stamp covers: its own and those of every stage it
  runs after, directly or through others."""
  by_name, out = {s.name: s for s in stages}, {}
  for stage in stages:
    covered = set(stage.sections)
    for upstream in stage.after:
      covered |= out.get(upstream, set(by_name[upstream].sections))
    out[stage.name] = covered
  return out


def check_reads(stages: Sequence[Stage], reads: Mapping[str, set[str]], *,
                strict: bool = True) -> dict[str, list[str]]:
  """The sections each stage read beyond what its declaration covers (`allowed_sections`);
  raises UndeclaredReadError (strict) or logs an error when there are any."""
  allowed = allowed_sections(stages)
  bad = {name: sorted(set(read) - allowed[name]) for name, read in reads.items()
         if set(read) - allowed[name]}
  if bad:
    message = "; ".join(
        f"stage {name!r} read config section(s) {sections} that neither it nor a stage it runs "
        f"after declares (its stamp would not change with them: add them to its sections)"
        for name, sections in bad.items())
    if strict:
      raise UndeclaredReadError(message)
    logging.error("%s", message)
  return bad


@dataclasses.dataclass
class Run:
  """What a stage body sees: the config (a RecordingConfig), the workdir, the model variants the
  run is restricted to (--only; None for all), the results and wall times of the stages before
  it, and `once` for values shared by several stages (data, trained models) and built by the
  first stage that needs them."""
  config: Any
  workdir: str
  variants: tuple[str, ...] | None
  results: dict
  timings: dict
  memo: dict = dataclasses.field(default_factory=dict)

  def once(self, key: str, build: Callable[[], Any]) -> Any:
    if key not in self.memo:
      self.memo[key] = build()
    return self.memo[key]


@dataclasses.dataclass(frozen=True)
class Study:
  """A study: its name, its stages in order (each with its body), and its config check
  `validate(config, *, variants)` raising schema.ConfigError with every problem."""
  name: str
  stages: tuple[Stage, ...]
  validate: Callable[..., None]

  def stage(self, name: str) -> Stage:
    for s in self.stages:
      if s.name == name:
        return s
    raise KeyError(f"study {self.name} has no stage {name!r} (its stages: "
                   f"{[s.name for s in self.stages]})")


def preflight(config, workdir: str) -> None:
  """The checks after the config's validation and before anything is written: the workdir can
  hold a run (`workdir.check_usable`) and the data the config names is readable and valid
  (`data.check`: every .npz file's content, the train split larger than the hold-out).

  Raises:
    workdir.WorkdirError, data.DataError (or data.DataUnavailableError), each naming the path,
    the value and the fix.
  """
  from advbound import data as data_lib  # pylint: disable=g-import-not-at-top
  workdir_lib.check_usable(workdir)
  if "data" in config:
    d = config["data"]
    try:
      data_lib.check(d["name"], source=d["source"], path=d.get("path") or None,
                     validation_size=d.get("validation_size"), data_dir=d.get("data_dir"))
    except FileNotFoundError as e:
      raise data_lib.DataError(f"data.path: {e}") from e


def current_records(study: Study, config, workdir: str) -> dict[str, dict]:
  """{stage name: its record} of the stages of `study` whose records in `workdir` are current
  (a run would skip them)."""
  stamps, out = {}, {}
  for stage in study.stages:
    stamps[stage.name] = stamp(config, stage, stamps)
    record = current(workdir, stage.name, stamps[stage.name]) if os.path.isdir(workdir) else None
    if record is not None:
      out[stage.name] = record
  return out


def completed(study: Study, config, workdir: str) -> list[str]:
  """The stages of `study` whose records in `workdir` are current (they would be skipped)."""
  return list(current_records(study, config, workdir))


def run_study(study: Study, config, workdir: str, *, variants: Sequence[str] | None = None,
              strict: bool = True, memory_check: bool = False) -> tuple[dict, dict]:
  """Validates `config` (every problem at once), takes the workdir's lock and runs (or resumes)
  every stage of `study`, its bodies reading the config through a RecordingConfig.

  memory_check: first compile the kernels of the stages still to run (`Stage.kernels`) and
  raise memory.MemoryCheckError naming the setting to lower if one needs more memory than the
  device offers (`advbound.runtime.memory.check`).

  Returns:
    (results, timings): stage name -> result, and -> wall seconds.
  """
  variants = tuple(variants) if variants else None
  study.validate(config, variants=variants)
  preflight(config, workdir)
  if memory_check:
    from advbound.runtime import memory  # pylint: disable=g-import-not-at-top
    logging.info("%s", memory.fits_summary(memory.check(
        study, config, variants=variants, skip=completed(study, config, workdir))))
  missing = [s.name for s in study.stages if s.body is None]
  if missing:
    raise ValueError(f"study {study.name}: stages {missing} have no body")
  recorder = RecordingConfig(config)
  with workdir_lib.lock(workdir):
    memo = {}
    bodies = {
        s.name: (lambda r, t, body=s.body: body(Run(recorder, workdir, variants, r, t, memo)))
        for s in study.stages}
    return run(config, workdir, list(study.stages), bodies, recorder=recorder, strict=strict)


def versions() -> dict:
  """Software versions for a study's report."""
  out = {"python": platform.python_version(), "platform": platform.platform(),
         "device": jax.devices()[0].device_kind}
  for pkg in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy",
              "matplotlib", "ml-collections"):
    try:
      out[pkg] = importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
      out[pkg] = None
  return out


def write_report(workdir: str, lines: list[str], *, timings: dict, versions: dict,
                 settings: dict) -> None:
  """Writes DIR/report.md atomically: a study's `lines` followed by the sections every study's
  report ends with (time per stage, software versions, the settings as JSON)."""
  md = list(lines) + ["## Time per stage", "", "| stage | seconds |", "|---|---|"]
  md += [f"| {s} | {t:.0f} |" for s, t in timings.items() if s != "report"]
  md += ["", "## Software", "", "| package | version |", "|---|---|"]
  md += [f"| {k} | {v} |" for k, v in versions.items()]
  md += ["", "## Settings", "", "```json",
         json.dumps(settings, indent=1, sort_keys=True, default=str), "```", ""]
  with io.atomic_path(os.path.join(workdir, "report.md")) as tmp, open(tmp, "w") as f:
    f.write("\n".join(md))


# results.json entries that measure time; everything else is a function of the settings
TIMING_KEYS = ("seconds", "train_seconds_this_run", "eval_seconds")


def without_timings(results):
  """results.json's content without its timing entries (at any depth): what two runs of the
  same settings must agree on, on any number of devices or hosts, resumed or not."""
  if isinstance(results, dict):
    return {k: without_timings(v) for k, v in results.items() if k not in TIMING_KEYS}
  if isinstance(results, list):
    return [without_timings(v) for v in results]
  return results
