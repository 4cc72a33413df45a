"""Resumable stages, shared by every study (He et al.'s pipeline, Cao & Gong's, ...).

A study is an ordered list of `Stage`s. Running a stage records `DIR/stages/<name>.json`: a
stamp (hash of the config sections the stage reads and of the stamps of the stages it runs
after), its result (JSON), its wall time, and the sha256 of every artifact it wrote (the files
under its `outputs`, checkpoints and temporary files excepted). A stage is skipped when its
record is readable, its stamp matches and its artifacts are unchanged; otherwise it runs again
(reusing whatever of its own artifacts are still current: models resume from checkpoints,
per-chunk parts are reused). Changing a setting therefore reruns the stage that reads it and
the stages after it, and a killed run loses at most the artifact in progress.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import time
from typing import Any, Callable, Mapping, Sequence

import jax
from absl import logging

from advbound.runtime import io


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
  """
  name: str
  sections: tuple[str, ...] = ()
  after: tuple[str, ...] = ()
  outputs: tuple[str, ...] = ()
  version: int = 0


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def stamp(config, stage: Stage, stamps: Mapping[str, str]) -> str:
  """Hash of the stage's config sections and of the stamps of the stages it runs after."""
  payload = {s: config[s].to_dict() if hasattr(config[s], "to_dict") else config[s]
             for s in stage.sections}
  payload["after"] = {d: stamps[d] for d in stage.after}
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
        bodies: Mapping[str, Callable[[dict, dict], Any]]) -> tuple[dict, dict]:
  """Runs (or resumes) the stages in order.

  Args:
    bodies: stage name -> body(results, timings) returning the stage's JSON-able result;
      `results` and `timings` hold those of the stages before it (read back from their records
      when they were current).

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
    result = jsonable(bodies[stage.name](results, timings))
    seconds = time.time() - t0
    results[stage.name], timings[stage.name] = result, seconds
    io.write_json(os.path.join(workdir, "stages", f"{stage.name}.json"),
                  {"stamp": stamps[stage.name], "result": result, "seconds": seconds,
                   "artifacts": artifacts(workdir, stage.outputs)})
    logging.info("[%d/%d] %s: done in %.0f s", i + 1, len(stages), stage.name, seconds)
  return results, timings


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
