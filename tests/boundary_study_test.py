"""End-to-end check of advbound/studies/decision_boundary/boundary_study.py on a tiny config: artifacts, figures, reuse,
and resumption after a failure part-way through the chunks."""

import os

import numpy as np
import pytest

from advbound import boundary
from advbound.runtime import io

from advbound.studies.decision_boundary import boundary_study


def test_artifacts_figures_reuse_and_resume(tmp_path, monkeypatch, tiny_config):
  config = tiny_config
  calls = {"n": 0}
  real = boundary.search

  def failing_search(*args, **kwargs):  # the fourth chunk fails, as if the run were killed
    calls["n"] += 1
    if calls["n"] == 4:
      raise RuntimeError("simulated kill")
    return real(*args, **kwargs)

  monkeypatch.setattr(boundary, "search", failing_search)
  with pytest.raises(RuntimeError, match="simulated kill"):
    boundary_study.run(config, str(tmp_path))
  path = tmp_path / "boundary" / "natural" / "optbrittle.npz"
  with np.load(tmp_path / "boundary" / "natural" / "benign.npz") as f:
    assert f["distance"].shape == (4, 48)  # both chunks of benign were saved
  assert not (tmp_path / "boundary" / "natural" / "benign.parts").exists()  # joined, removed
  assert not path.exists()
  parts = tmp_path / "boundary" / "natural" / "optbrittle.parts"
  assert sorted(os.listdir(parts)) == ["000000000.npz"]  # optbrittle's first chunk is kept
  calls["n"] = 0

  def counting_search(*args, **kwargs):
    calls["n"] += 1
    return real(*args, **kwargs)

  monkeypatch.setattr(boundary, "search", counting_search)
  out = boundary_study.run(config, str(tmp_path))
  assert calls["n"] == 3  # optbrittle's second chunk and fgsm's two: nothing is redone
  assert not parts.exists()
  monkeypatch.setattr(boundary, "search", real)
  interrupted = {k: np.load(tmp_path / "boundary" / "natural" / f"{k}.npz")["distance"]
                 for k in ("benign", "optbrittle", "fgsm")}
  for rel in out["figures"]:
    assert (tmp_path / rel).stat().st_size > 1000
  assert len(out["figures"]) == 5  # figures 1, 2 (rms, linf) and 3
  summary = io.read_json(str(tmp_path / "boundary" / "summary.json"))["summary"]["natural"]
  assert set(summary) == {"benign", "optbrittle", "fgsm"}
  assert 0.0 <= summary["benign"]["fraction_none"] <= 1.0
  # a second run recomputes nothing
  stamp = os.path.getmtime(path)
  boundary_study.run(config, str(tmp_path))
  assert os.path.getmtime(path) == stamp
  # an uninterrupted run in a fresh folder gives the same numbers
  fresh = tmp_path / "fresh"
  boundary_study.run(config, str(fresh))
  for k, d in interrupted.items():
    np.testing.assert_array_equal(np.load(fresh / "boundary" / "natural" / f"{k}.npz")["distance"], d)
  # a changed setting recomputes; a corrupt artifact is recomputed
  path.write_bytes(b"garbage")
  boundary_study.run(config, str(tmp_path))
  with np.load(path) as f:
    np.testing.assert_array_equal(f["distance"], interrupted["optbrittle"])


def test_search_resumable_parts(tmp_path, monkeypatch):
  """Chunks are kept as parts; a corrupt or stale part and everything after it is recomputed;
  the joined artifact equals an uninterrupted search."""
  import jax.numpy as jnp
  w = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16)), jnp.float32)
  fn = lambda x: x.reshape(x.shape[0], -1) @ w.T  # a linear 2-class model
  x = np.random.default_rng(1).uniform(0.3, 0.7, (7, 4, 4, 1)).astype(np.float32)
  directions = boundary_study.random_orthogonal(__import__("jax").random.key(0), 6, (4, 4, 1))
  kwargs = dict(step=0.05, max_distance=0.5, bounds=(0.0, 1.0), method="scan", batch_size=64)
  success = np.ones(7, bool)
  ref = boundary_study.search_resumable(str(tmp_path / "ref.npz"), "s", fn, x, success,
                                        directions, kwargs, chunk=2)
  real, calls = boundary.search, {"n": 0}

  def dying(*args, **kw):
    calls["n"] += 1
    if calls["n"] == 4:
      raise RuntimeError("simulated kill")
    return real(*args, **kw)

  monkeypatch.setattr(boundary, "search", dying)
  path = str(tmp_path / "run.npz")
  with pytest.raises(RuntimeError):
    boundary_study.search_resumable(path, "s", fn, x, success, directions, kwargs, chunk=2)
  parts = tmp_path / "run.parts"
  assert sorted(os.listdir(parts)) == ["000000000.npz", "000000002.npz", "000000004.npz"]
  (parts / "000000002.npz").write_bytes(b"garbage")  # rows 2-3 unreadable: redo rows 2-6
  calls["n"] = -100  # counts from -100: the kill at 4 is never reached again
  out = boundary_study.search_resumable(path, "s", fn, x, success, directions, kwargs, chunk=2)
  assert calls["n"] == -100 + 3 and not parts.exists()
  for k in ("center", "distance", "adjacent", "evaluations"):
    np.testing.assert_array_equal(out[k], ref[k])
  # a different stamp recomputes everything
  calls["n"] = -100
  boundary_study.search_resumable(path, "other", fn, x, success, directions, kwargs, chunk=2)
  assert calls["n"] == -100 + 4
