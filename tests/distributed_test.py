"""Several hosts: `--distributed` over two local processes (2 CPU devices each, gloo
collectives) on one shared workdir gives the single process's results.json, written once."""

import json
import os
import socket
import subprocess
import sys

from advbound.runtime import stages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _study(workdir, *extra, devices=1):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  return [sys.executable, "-m", "experiments.decision_boundary",
          f"--config={os.path.join(ROOT, 'configs', 'smoke.py')}", f"--workdir={workdir}",
          *extra], env


def test_two_processes_give_the_single_process_results(tmp_path):
  port = _free_port()
  shared = tmp_path / "shared"
  procs = []
  for i in range(2):
    cmd, env = _study(shared, "--distributed", f"--coordinator=localhost:{port}",
                      "--num_processes=2", f"--process_id={i}", devices=2)
    log = open(tmp_path / f"process{i}.log", "w")
    procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT), log))
  for p, log in procs:
    p.wait(timeout=900)
    log.close()
  logs = [(tmp_path / f"process{i}.log").read_text() for i in range(2)]
  assert all(p.returncode == 0 for p, _ in procs), [log[-3000:] for log in logs]
  assert "process 1 of 2, 2 local / 4 global devices" in logs[1]

  cmd, env = _study(tmp_path / "single")
  subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=900)
  read = lambda d: json.loads((tmp_path / d / "results.json").read_text())
  assert stages.without_timings(read("shared")) == stages.without_timings(read("single"))
  # written once, by process 0: no scratch or temporary files left in the workdir
  leftovers = [os.path.join(r, f) for r, _, fs in os.walk(shared) for f in fs
               if f.startswith((".tmp-", ".advbound-discard-"))]
  assert not leftovers, leftovers
