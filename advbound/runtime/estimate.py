"""`--estimate`: each stage's projected time and peak memory on the device at hand, measured
without doing the work.

`estimate_study` validates the config and runs the pre-flight as a real run does, then runs
every stage's body inside a probe (`advbound.runtime.probe`), in a scratch folder: at the
config's true shapes (image counts, batch and chunk sizes, directions, samples, models), each
kernel compiles and runs, but every long loop stops after a few timed warm units and projects
the rest. A stage's projected time is the probe's wall time of the stage (compiles, data
loading, the units run, the stage's other work) plus the projected seconds of the units
skipped. Stages complete in the workdir (their records current) count as zero and are not
probed: their artifacts are copied into the scratch folder, so that the stages after them are
probed on the real trained models and examples, as a resumed run would use them. Peak memory
comes from XLA's memory analysis of the compiled kernels the config's batch sizes make
(`advbound.runtime.memory`), compared with what the device offers. DIR/estimate.json is
rewritten after every stage: a probe stopped part way (a paper-scale config's takes hours on a
CPU) or failing in a stage leaves the projections of the stages it got through.

What the projection assumes, stated in the table: a loop that may stop early is projected to
its full length and marked as an upper bound. The models the probe trains (when the train stage
is not complete) are trained for a few steps only, so the work that follows a model's
robustness and is not cut short by the probe (a C&W L-inf search, whose length no useful bound
gives; DeepFool; a boundary search stopping at the first change) follows that barely trained
model, and is typically shorter than on the real one. For those stages, estimate again once the
models are trained: the probe then runs them on the real models.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import tempfile
import threading
import time
from typing import Sequence

import jax
from absl import logging

from advbound.runtime import io, memory as memory_lib, probe, stages

FILE = "estimate.json"


def _copy_outputs(workdir: str, scratch: str, outputs: Sequence[str]) -> None:
  """Copies a complete stage's artifacts into the probe's scratch folder (copies, so that
  nothing the probe does can touch the workdir)."""
  for rel in outputs:
    src, dst = os.path.join(workdir, rel), os.path.join(scratch, rel)
    if os.path.isdir(src):
      shutil.copytree(src, dst, dirs_exist_ok=True)
    elif os.path.isfile(src):
      os.makedirs(os.path.dirname(dst), exist_ok=True)
      shutil.copy2(src, dst)


def _exit_on_sigterm():
  """Makes SIGTERM raise SystemExit(143) (the shell's status for it) in the main thread; returns
  the handler it replaced, or None where signals cannot be set (another thread)."""
  if threading.current_thread() is not threading.main_thread():
    return None

  def stop(signum, frame):
    del frame
    raise SystemExit(128 + signum)

  return signal.signal(signal.SIGTERM, stop)


def _loops(loops: Sequence[probe.Loop]) -> list[dict]:
  """The probed loops of a stage merged by name: units and units run summed, the time per unit
  the mean over the loops weighted by units, projected seconds summed."""
  by = collections.OrderedDict()
  for lp in loops:
    row = by.setdefault(lp.name, {"name": lp.name, "loops": 0, "units": 0, "ran": 0,
                                  "timed_units": 0, "timed_seconds": 0.0, "projected": 0.0,
                                  "upper_bound": False})
    row["loops"] += 1
    row["units"] += lp.units
    row["ran"] += lp.ran
    row["projected"] += lp.projected
    row["upper_bound"] |= lp.bound and lp.projected > 0
    if lp.per_unit is not None:
      row["timed_units"] += lp.units
      row["timed_seconds"] += lp.per_unit * lp.units
  out = []
  for row in by.values():
    timed, secs = row.pop("timed_units"), row.pop("timed_seconds")
    row["per_unit"] = secs / timed if timed else None
    out.append(row)
  return out


def estimate_study(study: stages.Study, config, workdir: str, *,
                   variants: Sequence[str] | None = None, print_table: bool = True) -> dict:
  """Validates the config, runs the pre-flight and probes every stage of `study` (module
  docstring); writes DIR/estimate.json and returns its content.

  Returns:
    {"device", "stages": [{name, done, probe_seconds, compile_seconds, projected_seconds,
    upper_bound, peak_bytes, loops: [...]}], "not_probed": [names], "complete",
    "failed_stage", "total_seconds", "memory": {...}}. DIR/estimate.json is rewritten after
    each stage, so a probe stopped (or failed) part way leaves the stages it measured, with
    "complete": false and the stages not probed named.
  """
  variants = tuple(variants) if variants else None
  study.validate(config, variants=variants)
  stages.preflight(config, workdir)
  done = stages.current_records(study, config, workdir)
  mem = memory_lib.check(study, config, variants=variants, skip=tuple(done),
                         raise_on_excess=False)
  scratch = tempfile.mkdtemp(prefix="advbound-estimate-")
  rows, results, timings, memo = [], {}, {}, {}
  recorder = stages.RecordingConfig(config)
  t_all = time.perf_counter()
  names = [stage.name for stage in study.stages]

  def summary(failed: str | None = None) -> dict:
    """The estimate so far: the stages probed (or complete), and those not probed yet."""
    return {"study": study.name, "device": jax.devices()[0].device_kind,
            "backend": jax.default_backend(), "devices": jax.device_count(),
            "probe_warm_units": probe.WARM, "stages": list(rows),
            "not_probed": names[len(rows):], "complete": len(rows) == len(names),
            "failed_stage": failed,
            "total_seconds": sum(r["projected_seconds"] for r in rows),
            "upper_bound": any(r["upper_bound"] for r in rows if not r["done"]),
            "estimate_seconds": time.perf_counter() - t_all, "memory": mem}

  def write(out: dict) -> None:
    os.makedirs(workdir, exist_ok=True)
    io.write_json(os.path.join(workdir, FILE), out)

  # a probe stopped by SIGTERM (a scheduler's time limit, `timeout`) still removes its scratch
  # folder: the signal becomes SystemExit, which runs the cleanup below
  previous = _exit_on_sigterm()
  try:
    for i, stage in enumerate(study.stages):
      record = done.get(stage.name)
      if record is not None:
        # complete: zero, and the stages after it are probed on its real artifacts (the
        # trained models, the attacks' examples), as a resumed run would use them
        logging.info("[%d/%d] %s: complete in the workdir (counts as zero; its artifacts are "
                     "used by the stages after it)", i + 1, len(study.stages), stage.name)
        _copy_outputs(workdir, scratch, stage.outputs)
        results[stage.name], timings[stage.name] = record["result"], record["seconds"]
        rows.append({"name": stage.name, "done": True, "probe_seconds": 0.0,
                     "compile_seconds": 0.0, "projected_seconds": 0.0,
                     "seconds_when_computed": record["seconds"], "upper_bound": False,
                     "peak_bytes": None, "peak_setting": None, "loops": []})
        continue
      logging.info("[%d/%d] %s: probing", i + 1, len(study.stages), stage.name)
      with probe.probing() as p:
        recorder.start(stage.name)
        t0 = time.perf_counter()
        try:
          result = stage.body(stages.Run(recorder, scratch, variants, results, timings, memo))
        except Exception:
          logging.error("stage %s failed at the config's true shapes (in the probe); a real "
                        "run would fail there too, unless the cause is the probe's barely "
                        "trained models", stage.name)
          write(summary(failed=stage.name))
          raise
        wall = time.perf_counter() - t0
        recorder.start(None)
      results[stage.name] = stages.jsonable(result)
      projected = wall + p.extra
      timings[stage.name] = projected
      loops = _loops(p.loops)
      stage_mem = mem["stages"].get(stage.name, {})
      rows.append({"name": stage.name, "done": False, "probe_seconds": wall,
                   "compile_seconds": p.compile, "projected_seconds": projected,
                   "upper_bound": any(lp["upper_bound"] for lp in loops),
                   "peak_bytes": stage_mem.get("peak_bytes"),
                   "peak_setting": stage_mem.get("setting"), "loops": loops})
      logging.info("[%d/%d] %s: probed in %.0f s, projected %.0f s", i + 1, len(study.stages),
                   stage.name, wall, projected)
      if i + 1 < len(study.stages):
        # what is measured so far survives a probe stopped before its end (paper-scale probes
        # take hours on a CPU): DIR/estimate.json says which stages are not probed yet
        write(summary())
  finally:
    recorder.start(None)
    shutil.rmtree(scratch, ignore_errors=True)
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)
  out = summary()
  write(out)
  if print_table:
    print(table(out))
  return out


def _hms(seconds: float | None) -> str:
  if seconds is None:
    return "-"
  seconds = float(seconds)
  if seconds < 1:
    return f"{seconds * 1000:.0f} ms"
  if seconds < 60:
    return f"{seconds:.1f} s"
  if seconds < 3600:
    return f"{seconds / 60:.1f} min"
  if seconds < 86400 * 2:
    return f"{seconds / 3600:.1f} h"
  return f"{seconds / 86400:.1f} days"


def _bytes(n: int | None) -> str:
  if n is None:
    return "-"
  for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
    if n >= size:
      return f"{n / size:.1f} {unit}"
  return f"{n} B"


def table(est: dict) -> str:
  """The estimate as a text table: a row per stage (compile time, projected time, peak memory of
  its largest kernel) and under it a row per probed loop (units, time per unit, projected)."""
  lines = [f"estimate of {est['study']} on {est['devices']} x {est['device']} "
           f"({est['backend']}); probe took {_hms(est['estimate_seconds'])}",
           f"{'stage / loop':<34} {'compile':>9} {'units':>10} {'per unit':>10} "
           f"{'projected':>11} {'peak memory':>12}"]
  for r in est["stages"]:
    note = " (done)" if r["done"] else (" (upper bound)" if r["upper_bound"] else "")
    lines.append(f"{r['name'] + note:<34} {_hms(r['compile_seconds']):>9} {'':>10} {'':>10} "
                 f"{_hms(r['projected_seconds']):>11} {_bytes(r['peak_bytes']):>12}")
    for lp in r["loops"]:
      if lp["units"] <= lp["ran"]:
        continue  # nothing skipped: inside the stage's time
      name = "  " + lp["name"] + (" <=" if lp["upper_bound"] else "")
      lines.append(f"{name:<34} {'':>9} {lp['units']:>10} {_hms(lp['per_unit']):>10} "
                   f"{_hms(lp['projected']):>11}")
  for name in est.get("not_probed", []):
    state = "failed in the probe" if name == est.get("failed_stage") else "not probed"
    lines.append(f"{name + ' (' + state + ')':<34} {'':>9} {'':>10} {'':>10} {'-':>11}")
  total = ("at most " if est["upper_bound"] else "") + _hms(est["total_seconds"])
  label = "total" if est.get("complete", True) else "total of the stages probed"
  lines.append(f"{label:<34} {'':>9} {'':>10} {'':>10} {total:>11}")
  m = est["memory"]
  if m.get("available_bytes"):
    lines.append(f"device memory: {_bytes(m['available_bytes'])} ({m['available_source']}); "
                 f"largest kernel {_bytes(m.get('peak_bytes'))} ({m.get('peak_setting') or '-'})")
  for problem in m.get("problems", []):
    lines.append(f"DOES NOT FIT: {problem}")
  for note in m.get("notes", []):
    lines.append(f"note: {note}")
  return "\n".join(lines)
