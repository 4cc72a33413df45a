"""Tests of advbound/runtime/workdir.py: one run per workdir; a killed run's lock is taken over."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from advbound.runtime import workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_HOLDER = textwrap.dedent("""
    import sys, time
    from advbound.runtime import workdir
    with workdir.lock(sys.argv[1]):
      print("locked", flush=True)
      time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
  """A separate process holding tmp_path's lock (killed with SIGKILL at the end)."""
  proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], cwd=REPO,
                          stdout=subprocess.PIPE, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO))
  assert proc.stdout.readline().strip() == "locked"
  yield proc
  proc.kill()
  proc.wait()


def test_second_run_is_refused_naming_the_holder(tmp_path, holder):
  with pytest.raises(workdir.WorkdirBusyError) as e:
    with workdir.lock(str(tmp_path)):
      pytest.fail("the lock was granted twice")
  message = str(e.value)
  assert f"pid {holder.pid} on host {socket.gethostname()}" in message
  assert str(tmp_path) in message and "-c" in message


def test_lock_of_a_killed_run_is_taken_over(tmp_path, holder, caplog):
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  assert workdir.read_holder(str(tmp_path))["pid"] == holder.pid  # the stale record remains
  with workdir.lock(str(tmp_path)):
    record = workdir.read_holder(str(tmp_path))
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
  assert any(f"left by pid {holder.pid}" in r.getMessage() for r in caplog.records)


def test_reentrant_in_one_process_and_released(tmp_path):
  with workdir.lock(str(tmp_path)):
    with workdir.lock(str(tmp_path)):  # a study calling another study keeps the lock
      assert workdir.read_holder(str(tmp_path))["pid"] == os.getpid()
    assert workdir.read_holder(str(tmp_path))["pid"] == os.getpid()
  assert workdir.read_holder(str(tmp_path)) == {}  # released: the record is cleared
  proc = subprocess.run([sys.executable, "-c", textwrap.dedent("""
      import sys
      from advbound.runtime import workdir
      with workdir.lock(sys.argv[1]):
        print("ok")
  """), str(tmp_path)], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
                        text=True, timeout=60)
  assert proc.stdout.strip() == "ok", proc.stderr


def test_live_pid_on_this_host_is_respected_without_flock(tmp_path):
  """Where flock does not exclude (some network filesystems), a record naming a live process
  of this host still stops a second run."""
  sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    with open(tmp_path / workdir.LOCK_NAME, "w") as f:
      json.dump({"pid": sleeper.pid, "host": socket.gethostname(), "started": 0,
                 "command": "other run"}, f)
    with pytest.raises(workdir.WorkdirBusyError, match=f"pid {sleeper.pid}"):
      with workdir.lock(str(tmp_path)):
        pass
  finally:
    sleeper.kill()
    sleeper.wait()


_KILLED_WRITER = textwrap.dedent("""
    import os, sys
    from advbound.runtime import io, workdir
    with workdir.lock(sys.argv[1]):
      with io.atomic_path(os.path.join(sys.argv[1], "sub", "table.json")) as tmp:
        open(tmp, "w").write('{"half": ')
        print("writing", flush=True)
        os.kill(os.getpid(), 9)  # SIGKILL mid-write: no cleanup runs
""")


def test_temporary_file_of_a_killed_write_is_removed_by_the_next_run(tmp_path):
  proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], cwd=REPO,
                        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
  assert proc.returncode == -signal.SIGKILL and "writing" in proc.stdout
  left = os.listdir(tmp_path / "sub")
  assert len(left) == 1 and left[0].startswith(".tmp-table.json-")  # never table.json itself
  (tmp_path / "sub" / "keep.json").write_text("{}")
  with workdir.lock(str(tmp_path)):
    assert os.listdir(tmp_path / "sub") == ["keep.json"]
