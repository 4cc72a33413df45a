"""Preemption soak (slow; run with `pytest -m slow tests/soak_test.py`): the study is killed
with SIGKILL at many random moments, resumed each time, and must end with the results.json of
an uninterrupted run, no temporary file left behind and every artifact readable.

Settings (environment): SOAK_CONFIG (default configs/smoke.py: every stage of the study in about
a minute; configs/quickstart.py is the README's run), SOAK_KILLS (default 20), SOAK_SEED.
"""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TIMINGS = ("seconds", "train_seconds_this_run", "eval_seconds")


def _without_timings(tree):
  if isinstance(tree, dict):
    return {k: _without_timings(v) for k, v in tree.items() if k not in _TIMINGS}
  if isinstance(tree, list):
    return [_without_timings(v) for v in tree]
  return tree


def _command(workdir):
  config = os.environ.get("SOAK_CONFIG", os.path.join(ROOT, "configs", "smoke.py"))
  return [sys.executable, "-m", "experiments.decision_boundary", f"--config={config}",
          f"--workdir={workdir}"]


def _check_artifacts(workdir):
  """Every file of the workdir is whole: no temporary left over, every JSON and npz readable."""
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      assert not name.startswith(".tmp-"), f"orphaned temporary file {path}"
      if name.endswith(".json"):
        with open(path) as f:
          json.load(f)
      elif name.endswith(".npz"):
        with np.load(path) as f:
          for key in f.files:
            f[key]  # pylint: disable=pointless-statement
        assert zipfile.is_zipfile(path)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  reference = tmp_path / "reference"
  t0 = time.time()
  subprocess.run(_command(reference), cwd=ROOT, env=env, check=True, capture_output=True)
  full = time.time() - t0

  rng = np.random.default_rng(int(os.environ.get("SOAK_SEED", "0")))
  kills_wanted = int(os.environ.get("SOAK_KILLS", "20"))
  workdir, kills, attempts = tmp_path / "killed", 0, 0
  while True:
    attempts += 1
    log = open(tmp_path / f"attempt{attempts}.log", "w")
    proc = subprocess.Popen(_command(workdir), cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    if kills < kills_wanted:
      # a moment anywhere in a run's length (start-up included)
      try:
        proc.wait(timeout=float(rng.uniform(1.0, full)))
      except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        log.close()
        _check_artifacts(workdir)
        continue
    else:
      proc.wait(timeout=20 * full)
    log.close()
    assert proc.returncode == 0, (tmp_path / f"attempt{attempts}.log").read_text()[-3000:]
    break
  read = lambda d: json.loads((d / "results.json").read_text())
  assert _without_timings(read(workdir)) == _without_timings(read(reference))
  _check_artifacts(workdir)
  print(f"soak: survived {kills} SIGKILLs over {attempts} runs (uninterrupted run {full:.0f} s)")
