"""First contact through the entry points: bad flags, bad settings, a busy workdir and missing
data end in one clear message and exit status 2 before any stage runs."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module, *args, workdir, env=None):
  return subprocess.run(
      [sys.executable, "-m", f"experiments.{module}", f"--workdir={workdir}", *args],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO, **(env or {})), capture_output=True,
      text=True, timeout=300)


def _nothing_ran(workdir):
  return not os.path.exists(os.path.join(workdir, "models")) and not os.path.exists(
      os.path.join(workdir, "stages"))


def test_unknown_config_keys_are_all_named(tmp_path):
  proc = _run("decision_boundary", "--config=configs/quickstart.py", "--config.attack.bogus=1",
              "--config.boundary.nope.x=2", workdir=tmp_path)
  assert proc.returncode == 2, proc.stderr
  assert "--config.attack.bogus: unknown key 'bogus' in config.attack" in proc.stderr
  assert "--config.boundary.nope.x: unknown key 'nope' in config.boundary" in proc.stderr
  assert "Traceback" not in proc.stderr and _nothing_ran(tmp_path)


@pytest.mark.parametrize("module", ["decision_boundary", "train"])
def test_bad_values_stop_before_the_first_stage(tmp_path, module):
  proc = _run(module, "--config=configs/quickstart.py", "--config.boundary.step=-1",
              "--config.attack.num_images=0", workdir=tmp_path)
  assert proc.returncode == 2, proc.stderr
  assert "boundary.step: must be > 0, got -1.0" in proc.stderr
  assert "attack.num_images: must be >= 1, got 0" in proc.stderr
  assert "Traceback" not in proc.stderr and _nothing_ran(tmp_path)


def test_busy_workdir_is_refused(tmp_path):
  from advbound.runtime import workdir
  with workdir.lock(str(tmp_path)):
    proc = _run("decision_boundary", "--config=configs/quickstart.py", workdir=tmp_path)
  assert proc.returncode == 2, proc.stderr
  assert f"workdir {tmp_path} is in use by pid {os.getpid()}" in proc.stderr
  assert "Traceback" not in proc.stderr and _nothing_ran(tmp_path)


def test_missing_tfds_data_names_the_way_out(tmp_path):
  """configs/cifar.py on a machine where CIFAR-10 is not prepared (and, in CI, no TensorFlow
  or network): one message naming the data set, the data directory and the .npz route."""
  data_dir = tmp_path / "tfds"
  proc = _run("decision_boundary", "--config=configs/cifar.py", workdir=tmp_path / "run",
              env={"TFDS_DATA_DIR": str(data_dir), "HTTPS_PROXY": "http://127.0.0.1:9",
                   "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""})
  assert proc.returncode == 2, proc.stderr
  assert "cannot load tfds data set 'cifar10'" in proc.stderr
  assert str(data_dir) in proc.stderr and "--config.data.source=npz" in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "run").exists()  # found by the pre-flight: nothing written


@pytest.mark.parametrize("case", ["not_zip", "nan", "workdir_is_a_file"])
def test_bad_data_and_workdirs_end_before_anything_is_written(tmp_path, case):
  """Pre-flight: the data's content and the workdir are checked after the config and before
  the lock: one message naming the file and the fix, exit status 2, no folder created."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  path = tmp_path / "pool.npz"
  n = 2000  # a pool large enough for the quickstart's counts (200 test and validation images)
  x = rng.integers(0, 256, size=(n, 28, 28, 1)).astype(np.uint8)
  if case == "not_zip":
    path.write_text("not an archive")
  elif case == "nan":
    xf = x.astype(np.float32) / 255
    xf[5, 0, 0, 0] = np.nan
    np.savez(path, x=xf, y=np.arange(n) % 10)
  else:
    np.savez(path, x=x, y=np.arange(n) % 10)
  run = tmp_path / "run"
  if case == "workdir_is_a_file":
    run.write_text("an earlier run's log")
  proc = _run("decision_boundary", "--config=configs/quickstart.py", "--config.data.source=npz",
              f"--config.data.path={path}", workdir=run)
  assert proc.returncode == 2, proc.stderr
  assert "Traceback" not in proc.stderr
  expected = {"not_zip": f"{path}: not a readable .npz file",
              "nan": f"{path}: mnist: images contain NaN or inf",
              "workdir_is_a_file": "is an existing file, not a folder"}[case]
  assert expected in proc.stderr, proc.stderr
  assert (run.is_file() if case == "workdir_is_a_file" else not run.exists())
