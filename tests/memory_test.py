"""The memory check: XLA's memory analysis of the kernels the batch sizes make, against what the
device offers; a kernel that does not fit stops the run before anything is written, naming the
setting to lower."""

import os

import jax
import jax.numpy as jnp
import pytest

from advbound.runtime import memory, stages
from advbound.studies.decision_boundary import pipeline
from configs import smoke


def test_peak_counts_the_arguments_outputs_and_temporaries():
  n, d, k = 256, 512, 384
  compiled = jax.jit(lambda x, w: jnp.tanh(x @ w)).lower(
      jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((d, k), jnp.float32)
  ).compile()
  # closed form: the two arguments and the output, float32
  assert memory.peak_bytes(compiled) >= 4 * (n * d + d * k + n * k)


def test_kernels_grow_with_their_batch_size():
  config = smoke.get_config()
  small = memory.check(pipeline.STUDY, config, raise_on_excess=False)
  rows = config.attack.batch_size
  with config.unlocked():
    config.attack.batch_size = 64 * rows
  large = memory.check(pipeline.STUDY, config, raise_on_excess=False)
  pick = lambda r: max(k["peak_bytes"] for k in r["kernels"] if k["setting"] == "attack.batch_size")
  # the input gradient's kernel holds at least its input and its output, float32 28 x 28
  assert pick(large) - pick(small) >= 2 * 4 * 28 * 28 * 63 * rows
  stage_of = {k["setting"]: k["stage"] for k in large["kernels"]}
  assert stage_of["attack.batch_size"] == "attacks"
  assert stage_of["models.natural.batch_size"] == "train"
  assert stage_of["region.batch_size"] == "region"


def test_a_kernel_over_the_limit_names_its_setting(monkeypatch):
  config = smoke.get_config()
  with config.unlocked():
    config.attack.batch_size = 100_000
  limit = memory.check(pipeline.STUDY, config, raise_on_excess=False)["kernels"]
  attack_peak = max(k["peak_bytes"] for k in limit if k["setting"] == "attack.batch_size")
  others = max(k["peak_bytes"] for k in limit if k["setting"] != "attack.batch_size")
  assert attack_peak > others
  monkeypatch.setattr(memory, "available", lambda: (others + 1, "test limit"))
  with pytest.raises(memory.MemoryCheckError) as e:
    memory.check(pipeline.STUDY, config)
  message = str(e.value)
  assert "attack.batch_size=100000" in message and "lower attack.batch_size" in message
  assert "stage attacks" in message and "test limit" in message


def test_a_run_that_would_not_fit_writes_nothing(monkeypatch, tmp_path):
  config = smoke.get_config()
  monkeypatch.setattr(memory, "available", lambda: (1 << 20, "test limit"))  # 1 MiB
  folder = str(tmp_path / "run")
  with pytest.raises(memory.MemoryCheckError, match="lower"):
    stages.run_study(pipeline.STUDY, config, folder, memory_check=True)
  assert not os.path.exists(folder)


def test_stages_complete_in_the_workdir_are_not_checked():
  config = smoke.get_config()
  result = memory.check(pipeline.STUDY, config, skip=("train", "attacks"),
                        raise_on_excess=False)
  assert {k["stage"] for k in result["kernels"]} == {"region", "boundary"}
