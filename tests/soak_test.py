"""Preemption soak (slow; run with `pytest -m slow -s tests/soak_test.py`): the study is killed
with SIGKILL at many random moments, resumed each time, and must end with the results.json of
an uninterrupted run, no temporary file left behind and every artifact readable after every
kill. Episodes (fresh workdirs) repeat until SOAK_KILLS kills have happened; within an episode
each run is killed at a moment drawn uniformly over an uninterrupted run's length, until a
resumed run gets to finish.

Settings (environment): SOAK_CONFIG (default configs/smoke.py: every stage of the study in about
a minute; configs/quickstart.py is the README's run), SOAK_KILLS (default 20), SOAK_SEED.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from advbound.runtime import stages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(workdir):
  config = os.environ.get("SOAK_CONFIG", os.path.join(ROOT, "configs", "smoke.py"))
  return [sys.executable, "-m", "experiments.decision_boundary", f"--config={config}",
          f"--workdir={workdir}"]


def _check_artifacts(workdir, *, finished):
  """Every artifact of the workdir is whole (every JSON and npz readable). A kill may leave
  the temporary file of a write in progress (the next run removes it); a finished run leaves
  none."""
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      if name.startswith(".tmp-"):
        assert not finished, f"temporary file {path} left by a finished run"
        continue
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
  kills, attempts, episodes, killed_in = 0, 0, 0, {}
  while kills < kills_wanted:
    # an episode: a fresh workdir, killed at moments drawn over a whole run's length until a
    # resumed run finishes; so kills land in every stage in proportion to its duration
    episodes += 1
    workdir = tmp_path / f"episode{episodes}"
    while True:
      attempts += 1
      log_path = tmp_path / f"attempt{attempts}.log"
      with open(log_path, "w") as log:
        proc = subprocess.Popen(_command(workdir), cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
          proc.wait(timeout=float(rng.uniform(1.0, full)) if kills < kills_wanted else 20 * full)
        except subprocess.TimeoutExpired:
          proc.send_signal(signal.SIGKILL)
          proc.wait()
          kills += 1
          stage = _stage_running(log_path.read_text())
          killed_in[stage] = killed_in.get(stage, 0) + 1
          _check_artifacts(workdir, finished=False)
          continue
      assert proc.returncode == 0, log_path.read_text()[-3000:]
      break
    read = lambda d: json.loads((d / "results.json").read_text())
    assert stages.without_timings(read(workdir)) == stages.without_timings(read(reference))
    _check_artifacts(workdir, finished=True)
  print(f"soak: survived {kills} SIGKILLs over {attempts} runs in {episodes} episodes "
        f"(uninterrupted run {full:.0f} s); killed during: {killed_in}")


def _stage_running(log: str) -> str:
  """The stage a killed run was in, from its log ("start-up" before the first stage)."""
  found = re.findall(r"\[\d+/\d+\] (\w+): running", log)
  return found[-1] if found else "start-up"
