"""End-to-end check of advbound/studies/decision_boundary/attack_study.py on a tiny config."""

import os

import numpy as np

from advbound.runtime import io

from advbound.studies.decision_boundary import attack_study


def _config(tiny_config):
  tiny_config.attack.num_images = tiny_config.attack.batch_size = 3
  return tiny_config


def test_writes_artifacts_and_reuses_them(tmp_path, tiny_config):
  config = _config(tiny_config)
  out = attack_study.run(config, str(tmp_path))
  table = io.read_json(str(tmp_path / "attacks" / "table1.json"))
  assert table["table1"] == out["table1"]
  assert set(out["table1"]["natural"]) == {"optbrittle", "fgsm"}
  for name, row in out["table1"]["natural"].items():
    assert 0.0 <= row["success_rate"] <= 1.0
    with np.load(tmp_path / "attacks" / "natural" / f"{name}.npz") as f:
      assert f["adversarial"].shape == (3, 28, 28, 1) and f["indices"].shape == (3,)
      ok = f["success"]
      np.testing.assert_array_equal(f["rms"][~ok], 0.0)  # failures are the input itself
  md = (tmp_path / "attacks" / "table1.md").read_text()
  assert "optbrittle" in md and "RMS 0.0732 (" in md  # the paper's number beside ours
  assert "100.0% (inside)" in md or "100.0% (outside)" in md  # the paper's rate, marked
  stamp = os.path.getmtime(tmp_path / "attacks" / "natural" / "optbrittle.npz")
  attack_study.run(config, str(tmp_path))
  assert os.path.getmtime(tmp_path / "attacks" / "natural" / "optbrittle.npz") == stamp
  # a changed setting recomputes that attack only
  config.attack.cw.max_iterations = 10
  fgsm_stamp = os.path.getmtime(tmp_path / "attacks" / "natural" / "fgsm.npz")
  attack_study.run(config, str(tmp_path))
  assert os.path.getmtime(tmp_path / "attacks" / "natural" / "optbrittle.npz") != stamp
  assert os.path.getmtime(tmp_path / "attacks" / "natural" / "fgsm.npz") == fgsm_stamp


def test_corrupt_artifact_is_recomputed(tmp_path, tiny_config):
  config = _config(tiny_config)
  attack_study.run(config, str(tmp_path))
  path = tmp_path / "attacks" / "natural" / "fgsm.npz"
  path.write_bytes(b"garbage")
  out = attack_study.run(config, str(tmp_path))
  with np.load(path) as f:
    assert f["success"].shape == (3,)
  assert 0.0 <= out["table1"]["natural"]["fgsm"]["success_rate"] <= 1.0


def test_select_images_pool():
  """Images come from the first `pool` test images only, all correctly classified; the
  draw is seeded; a bad pool is an error naming it."""
  import jax.numpy as jnp
  import pytest
  from advbound import data as data_lib
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, 50).astype(np.int32)
  images = np.repeat(np.arange(50, dtype=np.float32)[:, None, None, None] / 100, 4, axis=1)
  test = data_lib.Dataset(images=images.reshape(50, 2, 2, 1), labels=labels, name="t",
                          split="test", bounds=(0.0, 1.0), class_names=("a", "b", "c"))
  wrong = set(range(0, 50, 4))
  # a "model" that is right except on every 4th image
  table = np.eye(3, dtype=np.float32)[np.where(np.isin(np.arange(50), list(wrong)),
                                               (labels + 1) % 3, labels)]
  def fn(x):  # the image's pixel value encodes its index
    return jnp.asarray(table)[jnp.round(x[:, 0, 0, 0] * 100).astype(jnp.int32)]
  idx = attack_study.select_images([fn], test, 10, seed=3, pool=20)
  assert len(idx) == 10 and len(set(idx.tolist())) == 10
  assert idx.max() < 20 and not set(idx.tolist()) & wrong
  np.testing.assert_array_equal(idx, attack_study.select_images([fn], test, 10, seed=3, pool=20))
  with pytest.raises(ValueError, match="only 15 of the first 20"):
    attack_study.select_images([fn], test, 16, seed=3, pool=20)
  for bad in (0, 51, 2.5):
    with pytest.raises(ValueError, match=f"attack.pool .*{bad!r}"):
      attack_study.select_images([fn], test, 5, seed=3, pool=bad)


def test_table_images_prefix(tmp_path, tiny_config):
  """Table 1 reports on the first attack.table_images attacked images, Table 2 too; the
  artifacts hold all of them; a bad value is an error naming it."""
  import pytest
  from advbound.studies.decision_boundary import region_study
  config = tiny_config
  config.attack.num_images = config.attack.batch_size = 4
  config.attack.table_images = 2
  out = attack_study.run(config, str(tmp_path))
  assert out["num_images"] == 4 and out["table_images"] == 2 and len(out["indices"]) == 4
  for name in ("optbrittle", "fgsm"):
    with np.load(tmp_path / "attacks" / "natural" / f"{name}.npz") as f:
      assert f["adversarial"].shape[0] == 4
      ok = f["success"][:2].astype(bool)
      assert out["table1"]["natural"][name]["success_rate"] == ok.mean()
      rms = out["table1"]["natural"][name]["rms"]
      assert (rms is None) if not ok.any() else np.isclose(rms, f["rms"][:2][ok].mean())
      if name == "optbrittle":
        point_first2 = 1.0 - ok.mean()
  assert "(2 test images" in (tmp_path / "attacks" / "table1.md").read_text()
  table2 = region_study.run(config, str(tmp_path))["table2"]["natural"]
  assert table2["point"]["optbrittle"] == point_first2
  for bad in (0, 5):  # (a float is refused by the ConfigDict itself)
    config.attack.table_images = bad
    with pytest.raises(ValueError, match=f"attack.table_images .*{bad!r}"):
      attack_study.run(config, str(tmp_path))


def test_attack_resumes_from_parts(tmp_path, monkeypatch, tiny_config):
  """An attack killed after its first chunk keeps that chunk; the rerun attacks only the rest
  and gives the same artifact as an uninterrupted run."""
  import pytest
  from advbound.attacks import presets
  config = tiny_config
  config.attack.num_images, config.attack.batch_size = 4, 2
  config.attack.names = ("optbrittle",)
  real, calls = presets.run, {"n": 0, "kill": 2}

  def dying(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == calls["kill"]:
      raise RuntimeError("simulated kill")
    return real(*args, **kwargs)

  monkeypatch.setattr(presets, "run", dying)
  with pytest.raises(RuntimeError, match="simulated kill"):
    attack_study.run(config, str(tmp_path / "a"))
  parts = tmp_path / "a" / "attacks" / "natural" / "optbrittle.parts"
  assert sorted(os.listdir(parts)) == ["000000000.npz"]
  calls.update(n=0, kill=-1)
  attack_study.run(config, str(tmp_path / "a"))
  assert calls["n"] == 1 and not parts.exists()
  attack_study.run(config, str(tmp_path / "b"))
  with np.load(tmp_path / "a" / "attacks" / "natural" / "optbrittle.npz") as f, \
       np.load(tmp_path / "b" / "attacks" / "natural" / "optbrittle.npz") as g:
    for k in ("adversarial", "success", "rms", "indices"):
      np.testing.assert_array_equal(f[k], g[k])
