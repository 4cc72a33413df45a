"""A check shared by the tests that compare 8 fake CPU devices with one: run a script in a
subprocess whose XLA_FLAGS give the CPU 8 devices (the test process itself has one)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assert_script_passes(script: str, *, marker: str = "SHARDED OK", timeout: int = 600) -> None:
  """Runs `script` with 8 fake CPU devices from the repository root; fails unless it exits 0
  and prints `marker` (the assertion message holds the tails of its output)."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == 0 and marker in proc.stdout, (
      proc.stdout[-3000:] + proc.stderr[-5000:])
