"""End-to-end check of advbound/studies/decision_boundary/region_study.py on a tiny config."""

import os

import numpy as np

from advbound.runtime import io

from advbound.studies.decision_boundary import region_study


def test_table2_radius_certified_and_figures(tmp_path, tiny_config):
  config = tiny_config
  out = region_study.run(config, str(tmp_path))
  t = out["table2"]["natural"]
  assert set(t) == {"point", "region", "region_learned"}
  for classifier in t.values():
    assert set(classifier) == {"benign", "optbrittle", "fgsm"}
    assert all(0.0 <= a <= 1.0 for a in classifier.values())
  assert t["point"]["benign"] == 1.0  # the attacked images are chosen correctly classified
  with np.load(tmp_path / "attacks" / "natural" / "optbrittle.npz") as f:
    assert t["point"]["optbrittle"] == 1.0 - f["success"].mean()
  r = out["radius"]["natural"]
  assert r["learned"] >= 0.0 and r["paper"] == 0.3
  for noise in ("gaussian", "uniform"):
    curve = out["certified"]["natural"][noise]["certified_accuracy"]
    assert all(a >= b for a, b in zip(curve, curve[1:]))  # non-increasing in the radius
  for name in ("radius", "certified", "measurement"):
    assert (tmp_path / "region" / "figures" / f"{name}_natural.png").stat().st_size > 1000
  md = (tmp_path / "region" / "table2.md").read_text()
  assert "95%" in md  # the paper's OPTBRITTLE region accuracy beside ours
  assert io.read_json(str(tmp_path / "region" / "table2.json"))["table2"] == out["table2"]
  # the learned radius is cached: a second run does not redo Algorithm 1
  stamp = os.path.getmtime(tmp_path / "region" / "radius_natural.json")
  region_study.run(config, str(tmp_path))
  assert os.path.getmtime(tmp_path / "region" / "radius_natural.json") == stamp
