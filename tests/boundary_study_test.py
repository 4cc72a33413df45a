"""End-to-end check of advbound/boundary_study.py on a tiny config: artifacts, figures, reuse,
and resumption after a failure part-way through the chunks."""

import os

import numpy as np
import pytest

from advbound import boundary, boundary_study, io


def test_artifacts_figures_reuse_and_resume(tmp_path, monkeypatch, tiny_config):
  config = tiny_config
  calls = {"n": 0}
  real = boundary.search

  def failing_search(*args, **kwargs):  # the third chunk fails, as if the run were killed
    calls["n"] += 1
    if calls["n"] == 3:
      raise RuntimeError("simulated kill")
    return real(*args, **kwargs)

  monkeypatch.setattr(boundary, "search", failing_search)
  with pytest.raises(RuntimeError, match="simulated kill"):
    boundary_study.run(config, str(tmp_path))
  path = tmp_path / "boundary" / "natural" / "optbrittle.npz"
  with np.load(tmp_path / "boundary" / "natural" / "benign.npz") as f:
    assert f["distance"].shape == (4, 48)  # both chunks of benign were saved
  assert not path.exists()
  monkeypatch.setattr(boundary, "search", real)
  out = boundary_study.run(config, str(tmp_path))
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
