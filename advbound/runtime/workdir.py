"""One run per workdir: an exclusive lock recording who holds it.

`lock(workdir)` takes `DIR/.lock` with `fcntl.flock` (released by the kernel when the process
ends, however it ends) and writes the holder's pid, host, start time and command into it. A
second run on the same folder stops at once with a `WorkdirBusyError` naming the holder. A lock
file left by a run that was killed is no longer flocked: the next run takes it over and logs
whose it was. On filesystems whose flock does not reach across hosts, the recorded pid is
checked as well when the holder is on this host.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from typing import Iterator

from absl import logging

LOCK_NAME = ".lock"
_HELD: dict[str, tuple[int, int]] = {}  # real path -> (fd, depth): re-entrant in one process


class WorkdirBusyError(RuntimeError):
  """Another live run holds the workdir."""


class WorkdirError(ValueError):
  """The workdir path cannot hold a run (an existing file, a folder that cannot be written)."""


def check_usable(workdir: str) -> None:
  """Raises WorkdirError unless `workdir` is an existing writable folder or can be created
  (its nearest existing ancestor is a writable folder). Writes nothing."""
  if not workdir:
    raise WorkdirError("--workdir is empty: give a folder (new, or an earlier run's to resume)")
  path = os.path.abspath(os.path.expanduser(workdir))
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise WorkdirError(f"--workdir {workdir!r} is an existing file, not a folder: give a "
                         "folder path (new, or an earlier run's to resume)")
    if not os.access(path, os.W_OK | os.X_OK):
      raise WorkdirError(f"--workdir {workdir!r} is a folder this user cannot write")
    return
  parent = os.path.dirname(path)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise WorkdirError(f"--workdir {workdir!r} cannot be created: {parent!r} is a file, not a "
                       "folder")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise WorkdirError(f"--workdir {workdir!r} cannot be created: this user cannot write "
                       f"{parent!r}")


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _describe(holder: dict) -> str:
  started = holder.get("started")
  when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
  return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since {when} "
          f"({holder.get('command', '?')})")


def read_holder(workdir: str) -> dict:
  """The record in `DIR/.lock` ({} if missing or unreadable)."""
  try:
    with open(os.path.join(workdir, LOCK_NAME)) as f:
      holder = json.load(f)
    return holder if isinstance(holder, dict) else {}
  except (OSError, ValueError):
    return {}


@contextlib.contextmanager
def lock(workdir: str) -> Iterator[str]:
  """Holds the workdir's lock for the duration of the block (creating the folder).

  Re-entrant within one process (a study calling another study's entry function keeps the
  lock). Yields the lock file's path.

  Raises:
    WorkdirBusyError: another live process holds the lock; the message names its pid, host,
      start time and command, and the lock file.
  """
  path = os.path.join(workdir, LOCK_NAME)
  from advbound.runtime import io, sharding  # pylint: disable=g-import-not-at-top
  if not sharding.is_writer():
    # several hosts run one program on one shared workdir: process 0 holds the lock for all
    yield path
    return
  os.makedirs(workdir, exist_ok=True)
  real = os.path.realpath(path)
  if real in _HELD:
    fd, depth = _HELD[real]
    _HELD[real] = (fd, depth + 1)
    try:
      yield path
    finally:
      fd, depth = _HELD[real]
      _HELD[real] = (fd, depth - 1)
    return
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise
      raise WorkdirBusyError(
          f"workdir {workdir} is in use by {_describe(read_holder(workdir))}; wait for that "
          f"run to finish, stop it, or choose another --workdir (lock file {path})") from None
    previous = read_holder(workdir)
    host = socket.gethostname()
    if previous.get("pid") and previous.get("pid") != os.getpid():
      if previous.get("host") == host and _pid_alive(int(previous["pid"])) and _same_process(
          previous):
        # flock granted although the recorded holder still runs: a filesystem whose flock does
        # not exclude (e.g. some network mounts). Trust the record.
        fcntl.flock(fd, fcntl.LOCK_UN)
        raise WorkdirBusyError(
            f"workdir {workdir} is in use by {_describe(previous)} (lock file {path})")
      logging.warning("workdir %s: taking over the lock left by %s, which is no longer running",
                      workdir, _describe(previous))
    record = {"pid": os.getpid(), "host": host, "started": time.time(),
              "command": " ".join(sys.argv) or sys.executable,
              "proc_start": _process_start(os.getpid())}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    os.fsync(fd)
    _HELD[real] = (fd, 1)
    io.remove_orphaned_temporaries(workdir)  # ours now: no other write can be in progress
    try:
      yield path
    finally:
      del _HELD[real]
      os.ftruncate(fd, 0)  # an empty lock file: released cleanly
      fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    if real not in _HELD:
      os.close(fd)


def _process_start(pid: int) -> str | None:
  """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _same_process(holder: dict) -> bool:
  """True unless the recorded pid now belongs to a process started at another time."""
  recorded = holder.get("proc_start")
  current = _process_start(int(holder["pid"]))
  return recorded is None or current is None or recorded == current
