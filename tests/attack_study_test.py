"""End-to-end check of advbound/attack_study.py on a tiny config."""

import os

import numpy as np

from advbound import attack_study, io


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
  assert "optbrittle" in md and "100% 0.0732" in md  # the paper's number beside ours
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
