"""End-to-end check of advbound/region_study.py on a tiny config."""

import os

import numpy as np
from ml_collections import config_dict

from advbound import io, region_study
from configs import common


def _tiny_config():
  config = config_dict.ConfigDict()
  config.data = common.data("mnist", "embedded")
  config.model = config_dict.ConfigDict(dict(name="mnist_cnn"))
  config.models = config_dict.ConfigDict()
  config.models.natural = common.train(num_steps=60, batch_size=32, log_every=30,
                                       checkpoint_every=60)
  config.eval = common.evaluation(common.pgd(0.3, 0.1, 2), pgd_examples=10)
  config.attack = common.attack(num_images=4, batch_size=4, binary_search_steps=2,
                                max_iterations=20)
  config.attack.names = ("optbrittle", "fgsm")
  config.region = common.region(radius=0.3, step=0.1, validation_images=20, certify_sigma=0.25,
                                num_samples=20, measurement_samples=200, batch_size=512)
  config.region.certify_estimate = 100
  config.region.attacks = ("optbrittle", "fgsm")
  return config


def test_table2_radius_certified_and_figures(tmp_path):
  config = _tiny_config()
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
