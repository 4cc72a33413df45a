"""Tests of advbound/runtime/stages.py: skip when current, rerun on a changed setting, on a changed
artifact and downstream of a rerun stage; bad stage lists named."""

import os

import pytest
from ml_collections import config_dict

from advbound.runtime import stages
from advbound.runtime.stages import Stage

STUDY = [Stage("a", ("x",), (), ("a.txt",)), Stage("b", ("y",), ("a",), ("b",)),
         Stage("c", (), ("a",), ())]


def _bodies(workdir, calls):
  def a(results, timings):
    calls.append("a")
    with open(os.path.join(workdir, "a.txt"), "w") as f:
      f.write("a")
    return {"value": 1}

  def b(results, timings):
    calls.append("b")
    os.makedirs(os.path.join(workdir, "b"), exist_ok=True)
    with open(os.path.join(workdir, "b", "part.txt"), "w") as f:
      f.write(str(results["a"]["value"] + 1))
    return {"value": results["a"]["value"] + 1}

  def c(results, timings):
    calls.append("c")
    return {"sum": results["a"]["value"] + results["b"]["value"], "after": sorted(timings)}

  return {"a": a, "b": b, "c": c}


def _config(x=1, y=2):
  return config_dict.ConfigDict({"x": {"v": x}, "y": {"v": y}})


def test_skips_current_stages_and_reruns_what_changed(tmp_path):
  workdir, calls = str(tmp_path), []
  results, timings = stages.run(_config(), workdir, STUDY, _bodies(workdir, calls))
  assert calls == ["a", "b", "c"]
  assert results["c"] == {"sum": 3, "after": ["a", "b"]} and set(timings) == {"a", "b", "c"}

  calls.clear()
  again, _ = stages.run(_config(), workdir, STUDY, _bodies(workdir, calls))
  assert calls == [] and again == results  # read back from the records

  stages.run(_config(y=3), workdir, STUDY, _bodies(workdir, calls))
  assert calls == ["b"]  # y is read by b only; c runs after a, not after b

  calls.clear()
  stages.run(_config(x=5, y=3), workdir, STUDY, _bodies(workdir, calls))
  assert calls == ["a", "b", "c"]  # a's stamp changed: everything after it reruns

  calls.clear()
  with open(tmp_path / "b" / "part.txt", "w") as f:
    f.write("tampered")
  stages.run(_config(x=5, y=3), workdir, STUDY, _bodies(workdir, calls))
  assert calls == ["b"]  # a changed artifact reruns its stage

  calls.clear()
  (tmp_path / "stages" / "a.json").write_text("{not json")
  stages.run(_config(x=5, y=3), workdir, STUDY, _bodies(workdir, calls))
  assert calls == ["a"]  # an unreadable record reruns (the same stamp: b and c stay)


def test_bad_stage_lists_are_named(tmp_path):
  bodies = _bodies(str(tmp_path), [])
  with pytest.raises(ValueError, match="must match one to one"):
    stages.run(_config(), str(tmp_path), STUDY[:2], bodies)
  with pytest.raises(ValueError, match="runs after \\['a'\\]"):
    stages.run(_config(), str(tmp_path), [STUDY[1], STUDY[0], STUDY[2]], bodies)
