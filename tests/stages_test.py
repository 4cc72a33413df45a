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


# ---- the study runner: declared reads, validation first ---------------------------------------

def _study(reads_b, validate=lambda config, variants=None: None):
  """a declares x; b declares y and runs after a; b's body reads `reads_b` (section names)."""

  def a(run):
    return {"x": run.config.x.to_dict()}

  def b(run):
    for name in reads_b:
      _ = run.config[name]
    return {}

  return stages.Study("toy", (Stage("a", ("x",), (), (), body=a),
                              Stage("b", ("y",), ("a",), (), body=b)), validate)


def _toy_config():
  return config_dict.ConfigDict({"x": {"v": 1}, "y": {"v": 2}, "z": {"v": 3}})


def test_a_stage_may_read_its_sections_and_those_of_the_stages_before_it(tmp_path):
  results, _ = stages.run_study(_study(["y", "x"]), _toy_config(), str(tmp_path))
  assert results["a"] == {"x": {"v": 1}}


def test_an_undeclared_read_is_an_error_naming_the_stage_and_section(tmp_path):
  with pytest.raises(stages.UndeclaredReadError, match=r"stage 'b' read config section\(s\) "
                     r"\['z'\]"):
    stages.run_study(_study(["z"]), _toy_config(), str(tmp_path))
  # the record of the offending stage is not written: a fixed declaration reruns it
  assert not os.path.exists(tmp_path / "stages" / "b.json")
  assert os.path.exists(tmp_path / "stages" / "a.json")


def test_reads_through_get_in_and_to_dict_are_recorded():
  rec = stages.RecordingConfig(_toy_config())
  rec.start("s")
  rec.get("x")
  assert "y" in rec
  rec.start("t")
  rec.to_dict()
  rec.start(None)
  _ = rec.z  # outside any stage: not recorded
  assert rec.reads == {"s": {"x", "y"}, "t": {"x", "y", "z"}}
  with pytest.raises(AttributeError, match="read-only"):
    rec.x = 1


def test_undeclared_reads_are_logged_when_not_strict(tmp_path):
  results, _ = stages.run_study(_study(["z"]), _toy_config(), str(tmp_path), strict=False)
  assert results["b"] == {}


def test_validation_comes_before_the_lock_and_any_stage(tmp_path):
  from advbound.config import schema

  def validate(config, variants=None):
    raise schema.ConfigError(["x.v: bad", "y.v: bad"])

  with pytest.raises(schema.ConfigError, match="2 problem"):
    stages.run_study(_study([], validate), _toy_config(), str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")


def test_an_absent_optional_section_leaves_the_stamp_as_without_it():
  config = _toy_config()
  with_note = Stage("r", ("x", "note"), (), ())
  without = Stage("r", ("x",), (), ())
  assert stages.stamp(config, with_note, {}) == stages.stamp(config, without, {})
  config.note = "text"
  assert stages.stamp(config, with_note, {}) != stages.stamp(config, without, {})


def test_inputs_beyond_the_config_enter_the_stamp(tmp_path):
  """A stage's `inputs` (e.g. the digest of an imported model's weights file) change its stamp
  when they change, and leave it as without them when they are empty."""
  weights = tmp_path / "w.bin"
  weights.write_bytes(b"one")
  config = _toy_config()
  fingerprint = lambda cfg: {"w": stages.sha256(str(weights))}
  reading = Stage("r", ("x",), (), (), inputs=fingerprint)
  first = stages.stamp(config, reading, {})
  assert first == stages.stamp(config, reading, {})
  weights.write_bytes(b"two")
  assert stages.stamp(config, reading, {}) != first
  assert (stages.stamp(config, Stage("r", ("x",), (), (), inputs=lambda cfg: {}), {})
          == stages.stamp(config, Stage("r", ("x",), (), ()), {}))


def test_allowed_sections_follow_after_transitively():
  chain = [Stage("a", ("x",)), Stage("b", ("y",), ("a",)), Stage("c", (), ("b",))]
  assert stages.allowed_sections(chain)["c"] == {"x", "y"}
