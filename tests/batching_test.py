"""Tests of advbound/runtime/batching.py and advbound/runtime/io.py."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advbound.runtime import batching, io


def test_map_chunks_equals_direct_and_compiles_once():
  x = np.arange(23 * 3, dtype=np.float32).reshape(23, 3)
  traces = []

  @jax.jit
  def f(a, b):
    traces.append(a.shape)
    return {"sum": a.sum(-1) + b, "twice": 2 * a}

  out = batching.map_chunks(f, x, np.arange(23), chunk_size=5)
  np.testing.assert_array_equal(out["sum"], x.sum(-1) + np.arange(23))
  np.testing.assert_array_equal(out["twice"], 2 * x)
  assert traces == [(5, 3)]  # the padded last chunk reuses the compiled shape


def test_map_chunks_bucketed_tail_pads_to_a_sixteenth():
  x = np.arange(70 * 2, dtype=np.float32).reshape(70, 2)
  shapes = []

  def f(a):
    shapes.append(a.shape[0])
    return a * 3

  out = batching.map_chunks(f, x, chunk_size=32, tail="bucket")
  np.testing.assert_array_equal(out, 3 * x)
  assert shapes == [32, 32, 6]  # 6 rows left: a sixteenth of 32 is 2, so no padding
  shapes.clear()
  batching.map_chunks(f, x[:37], chunk_size=32, tail="bucket")
  assert shapes == [32, 6]  # 5 rows -> 6
  with pytest.raises(ValueError, match="unknown tail 'some'"):
    batching.map_chunks(f, x, chunk_size=32, tail="some")


def test_map_chunks_errors():
  with pytest.raises(ValueError, match="chunk_size"):
    batching.map_chunks(jnp.sum, np.zeros(3), chunk_size=0)
  with pytest.raises(ValueError, match="different leading sizes"):
    batching.map_chunks(lambda a, b: a, np.zeros(3), np.zeros(4), chunk_size=2)


def test_atomic_json_failure_keeps_old_file(tmp_path):
  path = str(tmp_path / "r.json")
  io.write_json(path, {"a": np.float32(1.5), "b": np.arange(2)})
  assert io.read_json(path) == {"a": 1.5, "b": [0, 1]}
  with pytest.raises(TypeError):
    io.write_json(path, {"a": object()})
  assert io.read_json(path) == {"a": 1.5, "b": [0, 1]}
  assert os.listdir(tmp_path) == ["r.json"]  # no temp file left behind
  with open(path) as f:
    json.load(f)
