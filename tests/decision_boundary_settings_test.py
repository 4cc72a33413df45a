"""Tests of advbound/studies/decision_boundary/settings.py: He et al.'s shipped configs pass;
every kind of bad setting of its sections (attack, boundary, region, detect) is reported with
its full path, all at once, before anything runs."""

import importlib

import numpy as np
import pytest
from ml_collections import config_dict

from advbound.config.schema import ConfigError
from advbound.studies.decision_boundary import settings
from tests.configs_test import DECISION_BOUNDARY


@pytest.mark.parametrize("name", [c for c in DECISION_BOUNDARY if c != "imagenet"])
def test_shipped_configs_are_valid(name):  # imagenet: against fake files, imagenet_config_test
  settings.validate(importlib.import_module(f"configs.{name}").get_config())


def test_tiny_config_is_valid(tiny_config):
  settings.validate(tiny_config)


def _quickstart():
  return importlib.import_module("configs.quickstart").get_config()


def _problems(config, **kwargs):
  with pytest.raises(ConfigError) as e:
    settings.validate(config, **kwargs)
  assert str(e.value).count("\n  ") == len(e.value.problems)
  return e.value.problems


@pytest.mark.parametrize("path,value,expected", [
    ("boundary.step", -1.0, "boundary.step: must be > 0, got -1.0"),
    ("boundary.step", 0.6, "boundary.step: 0.6 is larger than boundary.max_distance 0.5"),
    ("boundary.max_distance", 2.0, "boundary.max_distance: must be <= 1.0"),
    ("boundary.num_directions", 785, "boundary.num_directions: must be at most 784"),
    ("boundary.method", "slow", "boundary.method: must be one of ('scan', 'fast')"),
    ("boundary.examples", ("pgd",), "boundary.examples: unknown attack ['pgd']"),
    ("attack.num_images", 0, "attack.num_images: must be >= 1, got 0"),
    ("attack.num_images", 1001, "attack.num_images: must be at most 1000 (the test split)"),
    ("attack.pool", 20000, "attack.pool: must be at most 1000"),
    ("attack.pool", 10, "attack.num_images: must be at most 10 (attack.pool)"),
    ("attack.table_images", 17, "attack.table_images: must be at most 16"),
    ("attack.names", ("optmargin", "pgd"), "attack.names: unknown attack ['pgd']"),
    ("attack.names", ("fgsm", "fgsm"), "attack.names: names a attack twice"),
    ("attack.cw.max_iterations", 0, "attack.cw.max_iterations: must be >= 1"),
    ("attack.cw.abort_early_scope", "all", "attack.cw.abort_early_scope: must be one of"),
    ("region.radius", 0.0, "region.radius: must be > 0"),
    ("region.validation_images", 501, "region.validation_images: must be at most 500"),
    ("region.certify_alpha", 1.0, "region.certify_alpha: must be < 1"),
    ("region.attacks", ("pgd",), "region.attacks: unknown attack ['pgd']"),
    ("detect.train_fraction", 0.0, "detect.train_fraction: must be > 0"),
    ("detect.train_fraction", 0.99, "leaves 16 image(s) to train and 0 to test"),
    ("detect.attacks", ("optstrong",), "detect.attacks: unknown attack"),
    ("detect.train_attacks", ("fgsm", "optstrong"), "detect.train_attacks: unknown attack"),
    ("eval.pgd_examples", 5000, "eval.pgd_examples: must be at most 1000"),
    ("eval.pgd.epsilon", 8.0, "eval.pgd.epsilon: must be <= 1.0"),
])
def test_bad_value_is_named(path, value, expected):
  config = _quickstart()
  *parents, leaf = path.split(".")
  node = config
  for p in parents:
    node = node[p]
  with node.unlocked():
    node[leaf] = value
  problems = _problems(config)
  assert any(expected in p for p in problems), problems


def test_region_max_radius_below_initial():
  config = _quickstart()
  config.region.initial, config.region.max_radius = 0.2, 0.1
  assert "region.max_radius: 0.1 is below region.initial 0.2" in _problems(config)


def test_all_problems_reported_at_once():
  config = _quickstart()
  config.boundary.step = -1.0
  config.attack.num_images = 0
  config.region.radius = -0.3
  config.detect.steps = 0
  problems = _problems(config, variants=["natural", "robust"])
  assert len(problems) == 5, problems
  assert any(p.startswith("--only: unknown model variant 'robust'") for p in problems)


def test_unknown_keys_anywhere_are_named_by_full_path():
  config = _quickstart()
  with config.unlocked():
    config.attack.nmes = ("fgsm",)
    config.attack.cw.iterations = 3
    config.models.natural.attack.epsilonn = 0.3
    config.extra = 1
  problems = _problems(config)
  assert any(p.startswith("attack.nmes: unknown key") for p in problems)
  assert any(p.startswith("attack.cw.iterations: unknown key") for p in problems)
  assert any(p.startswith("models.natural.attack.epsilonn: unknown key") for p in problems)
  assert any(p.startswith("config.extra: unknown key") for p in problems)


def test_missing_section_and_key():
  config = _quickstart()
  with config.unlocked():
    del config["detect"]
    del config.region["radius"]
  problems = _problems(config)
  assert "config.detect: missing" in problems and "region.radius: missing" in problems


def test_model_must_fit_the_data():
  config = _quickstart()
  config.data.name, config.data.source = "cifar10", "tfds"  # MnistCNN on 32x32x3 images
  config.boundary.max_distance = 0.5
  assert any(p.startswith("model: mnist_cnn") and "(32, 32, 3)" in p for p in _problems(config))


def test_tuple_written_as_list_gets_a_hint():
  config = _quickstart()
  config.attack.names = ("optmargin,fgsm",)
  assert any("--config.attack.names=\"('a', 'b')\"" in p for p in _problems(config))


def test_counts_checked_against_npz_files(tmp_path):
  rng = np.random.default_rng(0)
  np.savez(tmp_path / "small.npz", x=rng.integers(0, 255, (50, 28, 28, 1), np.uint8),
           y=np.arange(50) % 10)
  config = _quickstart()
  config.data.source, config.data.path = "npz", str(tmp_path / "small.npz")
  problems = _problems(config)  # a pool of 50: 35 train / 5 validation / 10 test
  assert any(p.startswith("attack.num_images: must be at most 10") for p in problems)
  assert any(p.startswith("eval.pgd_examples: must be at most 10") for p in problems)
  assert any(p.startswith("region.validation_images: must be at most 5") for p in problems)
  assert any(p.startswith("models.natural.batch_size: must be at most 35") for p in problems)


def test_placeholders_accept_none_and_reject_bad_values():
  config = _quickstart()
  assert config.attack.pool is None and config.region.max_radius == 0.6
  config.attack.pool = 0
  config.region.max_radius = -1.0
  problems = _problems(config)
  assert any(p.startswith("attack.pool: must be >= 1") for p in problems)
  assert any(p.startswith("region.max_radius: must be > 0") for p in problems)
  fresh = config_dict.ConfigDict({"x": config_dict.placeholder(int)})
  assert fresh.x is None


def test_required_sections_depend_on_the_entry_point():
  """Training alone needs data, model, models and eval; a study needs every section."""
  config = _quickstart()
  with config.unlocked():
    for section in ("attack", "boundary", "region", "detect"):
      del config[section]
  settings.validate(config, required=settings.TRAIN_SECTIONS)
  settings.validate(config, required=settings.STAGE_SECTIONS["train"])
  problems = _problems(config)
  assert {"config.attack: missing", "config.detect: missing"} <= set(problems)
  assert _problems(config, required=settings.STAGE_SECTIONS["boundary"]) == [
      "config.attack: missing", "config.boundary: missing"]


def test_section_defaults_are_the_consumers():
  """The optional settings' defaults: what the stages use when a key is absent."""
  assert settings.Attack.default("pool") is None
  assert settings.Attack.default("table_images") is None
  assert settings.Region.default("max_radius") is None
  assert "cw" in settings.Attack.required()
