"""Atomic artifact writes: a temp file in the same folder, fsync, then rename.

A killed run therefore leaves either the previous artifact or the new one, never half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from typing import Any, Callable, Iterator

import numpy as np
from absl import logging

from advbound.runtime import probe, sharding


TMP_PREFIX = ".tmp-"  # temporary files of atomic_path: "<TMP_PREFIX><name>-<random><suffix>"


def remove_orphaned_temporaries(folder: str) -> int:
  """Deletes the temporary files that writes killed mid-way (SIGKILL runs no cleanup) left
  under `folder`; call it only while holding the folder's lock (no write can be in progress).
  Returns how many were removed."""
  removed = 0
  for root, _, files in os.walk(folder):
    for name in files:
      if name.startswith(TMP_PREFIX):
        os.remove(os.path.join(root, name))
        removed += 1
  if removed:
    logging.info("%s: removed %d temporary file(s) left by an interrupted run", folder, removed)
  return removed


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temp path next to `path`; renames it onto `path` if the block succeeds.

  In a run over several hosts (`jax.distributed`), only process 0 writes: the others write to a
  scratch file that is deleted. All processes wait for each other before the write (so no
  process can see the artifact before every process has decided, from the same files, to
  write it: their control flow stays the same) and after it (so every host finds it in the
  shared workdir when it goes on).
  """
  sharding.sync(f"writing {os.path.basename(path)}")
  writer = sharding.is_writer()
  suffix = os.path.splitext(path)[1]  # np.savez appends .npz unless the name ends with it
  if writer:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + os.path.basename(path) + "-", suffix=suffix,
                               dir=folder)
  else:
    fd, tmp = tempfile.mkstemp(prefix=".advbound-discard-", suffix=suffix)
  os.close(fd)
  try:
    yield tmp
    if writer:
      with open(tmp, "rb") as f:
        os.fsync(f.fileno())
      os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  sharding.sync(f"wrote {os.path.basename(path)}")


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented JSON atomically."""
  with atomic_path(path) as tmp, open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
    f.write("\n")


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def read_npz_if_current(path: str, stamp: str, fields=None) -> dict | None:
  """The arrays of the .npz at `path` (all but "settings", or `fields`) if it exists, can be
  read and was written with `settings` == `stamp`; None otherwise (the caller recomputes)."""
  if not os.path.exists(path):
    return None
  try:
    with np.load(path) as f:
      if str(f["settings"]) != stamp:
        logging.info("%s was made with other settings; recomputing", path)
        return None
      return {k: f[k] for k in (fields or [k for k in f.files if k != "settings"])}
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
    logging.warning("ignoring unreadable artifact %s; recomputing", path)
    return None


def compute_npz_in_parts(path: str, stamp: str, n: int, chunk: int,
                         compute: Callable[[int, int], dict], *, done: dict | None = None,
                         finish: Callable[[dict], dict] | None = None) -> dict:
  """Computes a row-wise result chunk by chunk, resumable with no lost chunk, and writes it to
  the .npz at `path` with `stamp`.

  `compute(lo, hi)` returns {field: array [hi - lo, ...]}. Each chunk is written atomically to
  `<path without .npz>.parts/<lo>.npz` with `stamp`; a rerun continues after the contiguous
  parts (from row 0, or after the rows of `done`) whose stamp matches, and recomputes from the
  first missing, unreadable or stale one, so the I/O stays linear in n. At the end the rows are
  joined, passed through `finish` (rows -> the arrays to store), written to `path`, and the
  parts are removed.

  Returns the arrays written ({field: array [n, ...]} without `finish`).
  """
  if chunk < 1:
    raise ValueError(f"chunk must be a positive number of rows; got {chunk!r}")
  parts_dir = path[:-len(".npz")] + ".parts"
  parts = [done] if done else []
  rows = sum(_num_rows(p) for p in parts)
  while rows < n:  # the parts a previous run left
    part = read_npz_if_current(os.path.join(parts_dir, f"{rows:09d}.npz"), stamp)
    if part is None or _num_rows(part) == 0:
      break
    parts.append(part)
    rows += _num_rows(part)
  if rows > n:
    raise ValueError(f"{parts_dir}: the saved parts hold {rows} rows, more than {n}")
  resumed, t0 = rows, time.time()
  starts = list(range(rows, n, chunk))
  computed = {}
  for j in probe.chunks(len(starts), os.path.basename(path),  # all, unless a probe runs
                        last_differs=(n - rows) % chunk != 0):
    lo, hi = starts[j], min(starts[j] + chunk, n)
    part = {k: np.asarray(v) for k, v in compute(lo, hi).items()}
    with atomic_path(os.path.join(parts_dir, f"{lo:09d}.npz")) as tmp:
      np.savez(tmp, settings=np.asarray(stamp), **part)
    computed[j] = part
    elapsed = time.time() - t0
    eta = elapsed / (hi - resumed) * (n - hi)
    logging.info("%s: %d/%d rows, %.0f s, ETA %.0f s", os.path.relpath(path), hi, n, elapsed,
                 eta)
  parts.extend(probe.filled(computed, len(starts)))
  if not parts:
    raise ValueError(f"nothing to compute: n = {n}")
  arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  if finish is not None:
    arrays = finish(arrays)
  with atomic_path(path) as tmp:
    np.savez(tmp, settings=np.asarray(stamp), **arrays)
  shutil.rmtree(parts_dir, ignore_errors=True)
  return arrays


def _num_rows(part: dict) -> int:
  return len(next(iter(part.values())))


def read_json_if_current(path: str, stamp: str) -> Any | None:
  """The JSON object at `path` if it can be read and its "settings" equal `stamp`; else None."""
  if not os.path.exists(path):
    return None
  try:
    obj = read_json(path)
  except (OSError, ValueError):
    logging.warning("ignoring unreadable artifact %s; recomputing", path)
    return None
  return obj if isinstance(obj, dict) and obj.get("settings") == stamp else None


def _json_default(o: Any) -> Any:
  if isinstance(o, np.generic):
    return o.item()
  if isinstance(o, np.ndarray):
    return o.tolist()
  raise TypeError(f"cannot write {type(o).__name__} as JSON")
