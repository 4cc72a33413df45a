"""Atomic artifact writes: a temp file in the same folder, fsync, then rename.

A killed run therefore leaves either the previous artifact or the new one, never half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from typing import Any, Iterator

import numpy as np
from absl import logging


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temp path next to `path`; renames it onto `path` if the block succeeds."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  suffix = os.path.splitext(path)[1]  # np.savez appends .npz unless the name ends with it
  fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", suffix=suffix,
                             dir=folder)
  os.close(fd)
  try:
    yield tmp
    with open(tmp, "rb") as f:
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


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
