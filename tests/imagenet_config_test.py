"""configs/imagenet.py (He et al.'s Appendix D): the config checks against a fake ImageNet npz
pair, and the decision-boundary study runs end to end with its structure at toy size on a
tiny Keras model (instead of Inception-ResNet-v2), its report holding Table 5 beside the
paper's."""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest

from advbound import data as data_lib, stats
from advbound.config.schema import ConfigError
from advbound.studies.decision_boundary import pipeline, report, settings
from configs import imagenet
from tests.study_reads import assert_declared_reads

keras = pytest.importorskip("keras")

SHAPE = data_lib.INFO["imagenet"].image_shape


def tiny_keras():
  """A tiny 1,000-class Keras classifier of 299 x 299 x 3 images (average pooling to 13 x 13,
  one dense layer), importable as 'tests.imagenet_config_test:tiny_keras'."""
  keras.utils.set_random_seed(0)
  return keras.Sequential([keras.Input(SHAPE), keras.layers.AveragePooling2D(23),
                           keras.layers.Flatten(), keras.layers.Dense(1000, name="logits")])


def write_npz_pair(folder, *, test: int, train: int, labels=None, seed: int = 0) -> str:
  """Random uint8 images as folder/imagenet_{test,train}.npz; the test labels `labels` (None:
  random). Returns the data.path pattern."""
  rng = np.random.default_rng(seed)
  x_test = rng.integers(0, 256, (test,) + SHAPE, dtype=np.uint8)
  y_test = rng.integers(0, 1000, test) if labels is None else labels(x_test)
  np.savez(os.path.join(folder, "imagenet_test.npz"), x=x_test, y=y_test)
  np.savez(os.path.join(folder, "imagenet_train.npz"),
           x=rng.integers(0, 256, (train,) + SHAPE, dtype=np.uint8),
           y=rng.integers(0, 1000, train))
  return os.path.join(folder, "imagenet_{split}.npz")


def _problems(config) -> list[str]:
  try:
    settings.validate(config)
  except ConfigError as e:
    return [line.strip() for line in str(e).splitlines()[1:]]
  return []


def test_paper_config_checks_against_a_fake_npz_pair(tmp_path):
  path = write_npz_pair(str(tmp_path), test=450, train=51)
  config = imagenet.get_config()
  config.data.path = path
  # the released weights file is not here: the check names it
  assert _problems(config) == [
      "models.natural.source.weights: weights file "
      f"'imagenet/{imagenet.WEIGHTS}' does not exist"]
  config.models.natural.source.weights = ""
  assert _problems(config) == []
  # the paper's sizes, read back from the config
  assert config.attack.num_images == 450 and config.attack.table_images is None
  assert int(round(config.detect.train_fraction * 450)) == 350
  assert config.region.radius == 0.02 and config.boundary.region_radius == 0.02
  assert set(config.attack.names) == {"optbrittle", "optmargin", "fgsm"}
  # a test file one image short of the 450 attacked images fails the check
  write_npz_pair(str(tmp_path), test=449, train=51)
  assert _problems(config) == ["attack.num_images: must be at most 449 (the test split), "
                               "got 450"]


def test_toy_config_checks_and_tfds_names_the_npz_route(tmp_path):
  config = imagenet.get_config("toy")
  config.data.path = write_npz_pair(str(tmp_path), test=4, train=52)
  assert _problems(config) == []
  config.data.source, config.data.path = "tfds", ""
  (problem,) = _problems(config)
  assert "cannot be read through tfds" in problem and "--config.data.source=npz" in problem
  assert "imagenet_{split}.npz" in problem
  with pytest.raises(ValueError, match="variant must be one of"):
    imagenet.get_config("toy2")


def _tiny_labels(x_uint8) -> np.ndarray:
  """Keras' own top-1 predictions of tiny_keras on uint8 images, with Inception's preprocessing
  (x / 127.5 - 1): the fake images are all classified correctly."""
  net = tiny_keras()
  return np.argmax(net.predict(x_uint8.astype(np.float32) / 127.5 - 1.0, verbose=0), -1)


def _rate(k, n):
  return stats.proportion(k, n)


def _synthetic_results() -> dict:
  """Stage results of a run on ImageNet with distinct counts in every cell (so that a cell
  taken from the wrong place shows)."""
  t1 = {a: {"rms_interval": stats.bootstrap(np.full(m, rms) + np.arange(m) * 1e-6, seed=0)}
        for a, m, rms in (("optbrittle", 9, 5e-4), ("optmargin", 8, 1e-3), ("fgsm", 7, 0.03))}
  point = {"benign": _rate(10, 10), "optbrittle": _rate(1, 10), "optmargin": _rate(2, 10),
           "fgsm": _rate(3, 10)}
  region = {"benign": _rate(9, 10), "optbrittle": _rate(6, 10), "optmargin": _rate(4, 10),
            "fgsm": _rate(5, 10)}
  detector = lambda fp, fns: {"cells": {"false_positive": fp, "false_negative": fns}}
  return {
      "attacks": {"table1": {"natural": t1}},
      "region": {"table2_cells": {"natural": {"point": point, "region": region}}},
      "detect": {"table3": {"natural": {
          "optbrittle": detector(_rate(1, 20), {"optbrittle": _rate(2, 19),
                                                "optmargin": _rate(11, 19)}),
          "optmargin": detector(_rate(3, 20), {"optbrittle": _rate(12, 18),
                                               "optmargin": _rate(4, 18)})}},
                 "table4": {"natural": detector(_rate(5, 20), {"fgsm": _rate(6, 17)})}},
      "train": {"natural": {"test_accuracy": 0.8, "test_examples": 600}},
  }


def test_table5_takes_each_cell_from_its_stage():
  t5 = report.table5(_synthetic_results())["natural"]
  rows = t5["rows"]
  counts = lambda cell: (cell["successes"], cell["n"])
  assert list(rows) == ["benign", "optbrittle", "optmargin", "fgsm"]
  assert [counts(rows[k]["point"]) for k in rows] == [(10, 10), (1, 10), (2, 10), (3, 10)]
  assert [counts(rows[k]["region"]) for k in rows] == [(9, 10), (6, 10), (4, 10), (5, 10)]
  # FP / FN of the classifier trained on the same attack (FGSM's: Table 4)
  assert [counts(rows[k]["false_positive"]) for k in rows if k != "benign"] == [
      (1, 20), (3, 20), (5, 20)]
  assert [counts(rows[k]["false_negative"]) for k in rows if k != "benign"] == [
      (2, 19), (4, 18), (6, 17)]
  assert rows["benign"]["false_positive"] is None and rows["benign"]["distortion"] is None
  # the distortion: mean RMS of the successful examples, with its bootstrap interval
  assert rows["optmargin"]["distortion"]["estimate"] == pytest.approx(1e-3 + 3.5e-6)
  assert rows["optmargin"]["distortion"]["n"] == 8
  assert counts(t5["top1_all"]) == (480, 600)
  md = report.format_table5({"natural": t5}, attacked=10, table=10,
                            detect_split={"train": 8, "test": 2})
  line = next(l for l in md.splitlines() if l.startswith("| optmargin |"))
  cells = [c.strip() for c in line.strip("|").split("|")]
  assert cells[1].startswith("0.001") and cells[2] == "0.00101 (outside)"
  assert cells[3:5] == ["20.0% [5.7, 51.0] (2/10)", "0.0% (outside)"]
  assert cells[5:7] == ["40.0% [16.8, 68.7] (4/10)", "16.0% (outside)"]
  assert cells[7:] == ["15.0% [5.2, 36.0] (3/20)", "4.0% (outside)",
                       "22.2% [9.0, 45.2] (4/18)", "3.0% (outside)"]
  last = md.splitlines()[[l.startswith("| benign (every") for l in md.splitlines()].index(True)]
  assert "80.0% [76.6, 83.0] (480/600) | 65.0% (outside)" in last


def test_figures_are_captioned_with_the_appendix_numbers():
  assert report.figure_caption("boundary/figures/figure1_natural_rms.png", "imagenet") == (
      "Figure 8: decision boundary distances around one validation image and its adversarial "
      "examples, RMS distance (natural)")
  assert report.figure_caption("boundary/figures/figure2_natural_linf.png", "imagenet") == (
      "Figure 9 (left, middle): minimum and median boundary distances, L-inf distance "
      "(natural)")
  assert report.figure_caption("boundary/figures/figure3_natural_rms.png", "imagenet") == (
      "Figure 9 (right): average purity of the adjacent classes (natural)")
  # other data sets keep the main text's figures, named by their path
  assert report.figure_caption("boundary/figures/figure1_natural_rms.png", "cifar10") == (
      "boundary/figures/figure1_natural_rms.png")


# The measurement study (region_study) makes a targeted CW example toward every other class:
# 999 on ImageNet, beyond a test's memory and time, until it takes region.measurement_targets.
_MEASUREMENT_TARGETS = "measurement_targets" in {f.name for f in settings.Region.fields()}


@pytest.mark.skipif(not _MEASUREMENT_TARGETS,
                    reason="region_study makes 999 targeted CW examples on ImageNet (needs "
                    "region.measurement_targets)")
def test_toy_study_on_a_tiny_keras_model_reports_table_5(tmp_path):
  config = imagenet.get_config("toy")
  config.data.path = write_npz_pair(str(tmp_path), test=4, train=52, labels=_tiny_labels)
  config.models.natural.source = imagenet.source(
      factory="tests.imagenet_config_test:tiny_keras", kwargs={})
  # smaller still than the toy's, for a fast test: one grid point, one validation image, two
  # radii, two targets of the measurement study
  config.boundary.step = config.boundary.max_distance
  config.region.update(dict(validation_images=1, max_radius=0.02, certify_estimate=2,
                            measurement_targets=2))
  workdir = str(tmp_path / "run")
  results = pipeline.run(config, workdir)
  assert_declared_reads(pipeline.STUDY, workdir, config)
  m = results["models"]["natural"]
  assert m["imported"] and "keras tests.imagenet_config_test:tiny_keras" in m["source"]
  assert "[0, 1] mapped onto its [-1, 1]" in m["source"]
  # the labels are Keras' own predictions: our rescaled model agrees on every test image
  assert m["test_correct"] == m["test_examples"] == 4
  saved = json.load(open(os.path.join(workdir, "results.json")))
  assert saved["models"]["natural"]["source"] == m["source"]
  assert saved["paper"]["table5"] == report.PAPER_TABLE5
  t5 = saved["table5"]["natural"]
  assert set(t5["rows"]) == {"benign", "optbrittle", "optmargin", "fgsm"}
  assert t5["top1_all"]["n"] == 4 and t5["top1_all"]["successes"] == 4
  fgsm = t5["rows"]["fgsm"]
  assert fgsm["point"]["n"] == config.attack.num_images
  md = open(os.path.join(workdir, "report.md")).read()
  assert "## Table 5: ImageNet (Appendix D)" in md
  section = md.split("## Table 5")[1].split("\n## ")[0]
  # the paper's numbers beside ours
  for paper in ("0.000526", "0.00101", "0.0308", "65.0%", "64.0%", "16.0%", "22.0%", "4.0%",
                "3.0%", "39.0%", "41.0%"):
    assert paper in section, paper
  assert "Figure 8" in md and "Figure 9" in md
