"""The probe behind --estimate: outside a probe its loops are plain; inside, the projection of
what it skips equals what the real run takes, checked on stages whose cost is known exactly (a
fake clock that only the stages' units advance)."""

import os
import time

import numpy as np
import pytest

from advbound.runtime import batching, estimate, io, probe, stages


class FakeClock:
  """time.time and time.perf_counter that advance only when a unit of work says so."""

  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now

  def advance(self, seconds):
    self.now += seconds


@pytest.fixture
def clock(monkeypatch):
  c = FakeClock()
  monkeypatch.setattr(time, "time", c)
  monkeypatch.setattr(time, "perf_counter", c)
  return c


def test_outside_a_probe_the_loops_are_plain():
  assert not probe.active() and probe.stops_early()
  assert list(probe.steps(7, "x")) == list(range(7))
  assert list(probe.steps(range(3, 9), "x")) == list(range(3, 9))
  assert list(probe.chunks(9, "x")) == list(range(9))
  x = np.arange(50, dtype=np.float32)[:, None]
  out = batching.map_chunks(lambda a: a * 2, x, chunk_size=7)
  np.testing.assert_array_equal(out, x * 2)


def test_a_probe_runs_the_first_warm_and_last_units(clock):
  seen = []
  with probe.probing() as p:
    for i in probe.steps(100, "loop"):
      seen.append(i)
      clock.advance(0.5)
  assert seen == list(range(1 + probe.WARM)) + [99]
  (loop,) = p.loops
  assert (loop.units, loop.ran, loop.per_unit) == (100, probe.WARM + 2, 0.5)
  assert p.extra == pytest.approx(0.5 * (100 - probe.WARM - 2))


def test_a_loop_stopped_early_projects_nothing(clock):
  with probe.probing() as p:
    for i in probe.steps(100, "loop", bound=True):
      clock.advance(1.0)
      if i == 1:
        break
  assert p.extra == 0.0 and p.loops[0].ran == 1
  assert not probe.active()


def test_skipped_chunks_repeat_the_warm_chunk_and_the_ends_are_computed(clock):
  x = np.arange(95, dtype=np.float32)[:, None]

  def fn(a):
    clock.advance(2.0)
    return a + 1

  with probe.probing() as p:
    out = batching.map_chunks(fn, x, chunk_size=10, desc="chunks")
  assert out.shape == (95, 1)
  np.testing.assert_array_equal(out[:20], x[:20] + 1)  # chunks 0 and 1 computed
  np.testing.assert_array_equal(out[90:], x[90:] + 1)  # the last (5 rows) computed
  np.testing.assert_array_equal(out[20:30], x[10:20] + 1)  # a skipped chunk: chunk 1's rows
  assert p.extra == pytest.approx(2.0 * 7)


def _study(clock):
  """Three stages of known cost: 100 steps of 1 s; 10 chunks of 2 s; 4 chunks of 30 steps of
  0.25 s each."""

  def steps_body(run):
    for _ in probe.steps(100, "a"):
      clock.advance(1.0)
    return {"a": 1}

  def chunks_body(run):
    x = np.zeros((95, 3), np.float32)
    batching.map_chunks(lambda a: (clock.advance(2.0), a)[1], x, chunk_size=10, desc="b")
    return {"b": 1}

  def nested_body(run):
    def chunk(a):
      for _ in probe.steps(30, "inner"):
        clock.advance(0.25)
      return a
    batching.map_chunks(chunk, np.zeros((40, 2), np.float32), chunk_size=10, desc="c")
    return {"c": 1}

  return stages.Study("toy", (
      stages.Stage("a", body=steps_body),
      stages.Stage("b", after=("a",), body=chunks_body),
      stages.Stage("c", after=("b",), body=nested_body),
  ), validate=lambda config, variants=None: None)


def test_the_projection_equals_the_real_run(clock, tmp_path):
  study = _study(clock)
  est = estimate.estimate_study(study, {}, str(tmp_path / "w"), print_table=False)
  projected = {r["name"]: r["projected_seconds"] for r in est["stages"]}
  # the real run, timed by the same clock
  _, timings = stages.run_study(study, {}, str(tmp_path / "w"))
  assert timings == {"a": 100.0, "b": 20.0, "c": 30.0}
  for name, seconds in timings.items():
    assert projected[name] == pytest.approx(seconds), name
  assert est["total_seconds"] == pytest.approx(150.0)
  assert not any(r["done"] for r in est["stages"])
  assert (tmp_path / "w" / estimate.FILE).exists()
  # every stage is now complete in the workdir: the estimate counts them as zero
  again = estimate.estimate_study(study, {}, str(tmp_path / "w"), print_table=False)
  assert all(r["done"] for r in again["stages"]) and again["total_seconds"] == 0.0
  assert all(r["probe_seconds"] == 0.0 for r in again["stages"])  # not probed again
  assert again["stages"][0]["seconds_when_computed"] == pytest.approx(100.0)


def test_an_early_stopping_loop_is_an_upper_bound(clock, tmp_path):
  def body(run):
    for i in probe.steps(50, "search", bound=True):
      clock.advance(1.0)
      if i == 10 and probe.stops_early():  # a search that would stop here
        break
    return {}

  study = stages.Study("toy", (stages.Stage("s", body=body),),
                       validate=lambda config, variants=None: None)
  est = estimate.estimate_study(study, {}, str(tmp_path / "w"), print_table=False)
  (row,) = est["stages"]
  _, timings = stages.run_study(study, {}, str(tmp_path / "w"))
  assert row["upper_bound"] and est["upper_bound"]
  assert row["projected_seconds"] == pytest.approx(50.0)
  assert timings["s"] == 11.0
  assert "at most" in estimate.table(est)


def test_probes_do_not_nest():
  with probe.probing():
    with pytest.raises(RuntimeError, match="already running"):
      with probe.probing():
        pass
  assert not probe.active()


def test_later_stages_are_probed_on_a_complete_stage_s_artifacts(clock, tmp_path):
  def write(run):
    os.makedirs(os.path.join(run.workdir, "a"), exist_ok=True)
    with open(os.path.join(run.workdir, "a", "model.txt"), "w") as f:
      f.write("trained for real" if not probe.active() else "probe")
    return {}

  def read(run):
    with open(os.path.join(run.workdir, "a", "model.txt")) as f:
      return {"model": f.read()}

  study = stages.Study("toy", (stages.Stage("a", outputs=("a",), body=write),
                               stages.Stage("b", after=("a",), body=read)),
                       validate=lambda config, variants=None: None)
  folder = str(tmp_path / "w")
  stages.run_study(study, {}, folder)
  os.remove(os.path.join(folder, "stages", "b.json"))  # b to run again
  before = sorted(os.listdir(folder))
  est = estimate.estimate_study(study, {}, folder, print_table=False)
  assert [r["done"] for r in est["stages"]] == [True, False]
  assert sorted(os.listdir(folder)) == sorted(before + [estimate.FILE])
  with open(os.path.join(folder, "a", "model.txt")) as f:
    assert f.read() == "trained for real"  # the workdir's artifact untouched
  # b was probed on a's real artifact (a copy of it), as a resumed run reads it
  probed = stages.jsonable(read(stages.Run({}, folder, None, {}, {})))
  assert probed == {"model": "trained for real"}


def _linear():
  import jax
  import jax.numpy as jnp
  w = jax.random.normal(jax.random.key(0), (16, 5))
  return lambda x: x.reshape(x.shape[0], -1) @ w


@pytest.mark.parametrize("name", ["pgd", "apgd", "apgd_targeted", "fab", "square", "cw_l2"])
def test_attacks_probed_return_results_of_their_true_shapes(name):
  """A probe cuts an attack's iterations short; what it returns keeps the shapes the real
  attack's have, so the stages after it run unchanged (APGD stacks a record per iteration)."""
  import jax
  from advbound import attacks
  fn, key = _linear(), jax.random.key(1)
  x = np.asarray(jax.random.uniform(jax.random.key(2), (150, 4, 4, 1)), np.float32)
  y = np.asarray(np.argmax(fn(x), -1), np.int32)
  common = dict(bounds=(0.0, 1.0), batch_size=64, loop="host")
  calls = {
      "pgd": lambda: attacks.pgd(fn, key, x, y, epsilon=0.1, step_size=0.01, num_steps=20,
                                 bounds=(0.0, 1.0), loop="host"),
      "apgd": lambda: attacks.apgd(fn, key, x, y, epsilon=0.1, num_steps=20, **common),
      "apgd_targeted": lambda: attacks.apgd_targeted(fn, key, x, y, epsilon=0.1, num_steps=20,
                                                     target_classes=2, **common),
      "fab": lambda: attacks.fab(fn, key, x, y, epsilon=0.1, num_steps=20, target_classes=2,
                                 **common),
      "square": lambda: attacks.square(fn, key, x, y, epsilon=0.1, num_queries=40, **common),
      "cw_l2": lambda: attacks.carlini_wagner_l2(fn, x, y, binary_search_steps=2,
                                                 max_iterations=30, **common),
  }
  real = calls[name]()
  with probe.probing() as p:
    probed = calls[name]()
  assert p.loops and p.extra >= 0
  shapes = lambda r: jax.tree.map(np.shape, (r.adversarial, r.success, r.distortion)
                                  if hasattr(r, "adversarial") else r)
  assert shapes(probed) == shapes(real)


def test_a_last_chunk_like_the_others_is_projected_too(clock):
  x = np.arange(100, dtype=np.float32)[:, None]
  calls = []

  def fn(a):
    calls.append(a.shape[0])
    clock.advance(2.0)
    return a * 3

  with probe.probing() as p:
    out = batching.map_chunks(fn, x, chunk_size=10)
  assert calls == [10, 10] and out.shape == (100, 1)
  np.testing.assert_array_equal(out[:20], x[:20] * 3)
  assert p.extra == pytest.approx(2.0 * 8)  # the 8 chunks skipped, the last among them


def test_a_probe_stopped_part_way_leaves_the_stages_it_measured(clock, tmp_path):
  folder = str(tmp_path / "w")
  seen = {}

  def a(run):
    for _ in probe.steps(40, "steps"):
      clock.advance(0.5)
    return {}

  def b(run):
    # while b runs, the estimate on disk already holds a's projection
    seen.update(io.read_json(os.path.join(folder, estimate.FILE)))
    raise ValueError("b does not fit its shapes")

  study = stages.Study("toy", (stages.Stage("a", body=a),
                               stages.Stage("b", after=("a",), body=b),
                               stages.Stage("c", after=("b",), body=lambda run: {})),
                       validate=lambda config, variants=None: None)
  with pytest.raises(ValueError, match="does not fit"):
    estimate.estimate_study(study, {}, folder, print_table=False)
  assert [r["name"] for r in seen["stages"]] == ["a"]
  assert seen["not_probed"] == ["b", "c"] and not seen["complete"]
  assert seen["stages"][0]["projected_seconds"] == pytest.approx(20.0)
  left = io.read_json(os.path.join(folder, estimate.FILE))
  assert left["failed_stage"] == "b" and left["not_probed"] == ["b", "c"]
  text = estimate.table(left)
  assert "b (failed in the probe)" in text and "c (not probed)" in text
  assert "total of the stages probed" in text


def test_a_probe_stopped_by_sigterm_removes_its_scratch_folder(tmp_path, monkeypatch):
  import signal  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
  os.makedirs(tmp_path / "tmp")
  before = signal.getsignal(signal.SIGTERM)

  def a(run):
    os.kill(os.getpid(), signal.SIGTERM)  # as `timeout` or a scheduler would
    time.sleep(5)  # the handler raises before this ends
    return {}

  study = stages.Study("toy", (stages.Stage("a", body=a), stages.Stage("b", body=a)),
                       validate=lambda config, variants=None: None)
  with pytest.raises(SystemExit) as stop:
    estimate.estimate_study(study, {}, str(tmp_path / "w"), print_table=False)
  assert stop.value.code == 128 + signal.SIGTERM
  assert os.listdir(tmp_path / "tmp") == []  # the scratch folder was removed
  assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back


def test_unnamed_chunk_loops_are_named_for_their_module(clock):
  with probe.probing() as p:
    batching.map_chunks(lambda a: a, np.zeros((40, 2), np.float32), chunk_size=10)
  assert [lp.name for lp in p.loops] == ["probe_test chunks"]


def test_reduced_work_is_projected_per_unit(clock):
  def work(k):
    clock.advance(0.5 * k)
    return k

  assert probe.reduced(40, "resamples", work) == 40  # outside a probe: all of it
  with probe.probing() as p:
    assert probe.reduced(40, "resamples", work) == 2 * probe.WARM
  (lp,) = p.loops
  assert (lp.units, lp.ran) == (40, 2 * probe.WARM)
  assert lp.per_unit == pytest.approx(0.5) and p.extra == pytest.approx(0.5 * (40 - 6))


def test_each_computes_every_unit_outside_a_probe_and_fills_inside(clock):
  assert probe.each(lambda i: i * i, 6, "u") == [0, 1, 4, 9, 16, 25]
  with probe.probing() as p:
    out = probe.each(lambda i: (clock.advance(2.0), i)[1], 6, "u")
  assert out == [0, 1, 1, 1, 1, 1]  # units 0 and 1 computed, the rest the warm unit's output
  (lp,) = p.loops
  assert (lp.units, lp.ran) == (6, 2) and p.extra == pytest.approx(4 * 2.0)
