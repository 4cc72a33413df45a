"""Tests of advbound/config_check.py: the shipped configs pass; every kind of bad setting is
reported with its full path, all at once, before anything runs."""

import importlib

import numpy as np
import pytest
from ml_collections import config_dict

from advbound import config_check
from advbound.studies.blind_spot import settings as blind_spot_settings
from advbound.studies.region_defense import settings as region_defense_settings
from tests.configs_test import BLIND_SPOT, DECISION_BOUNDARY, REGION_DEFENSE


@pytest.mark.parametrize("name", DECISION_BOUNDARY)
def test_shipped_configs_are_valid(name):
  config_check.validate(importlib.import_module(f"configs.{name}").get_config())


@pytest.mark.parametrize("name", REGION_DEFENSE)
def test_shipped_region_defense_configs_are_valid(name):
  region_defense_settings.validate(importlib.import_module(f"configs.{name}").get_config())


@pytest.mark.parametrize("name", BLIND_SPOT)
def test_shipped_blind_spot_configs_are_valid(name):
  blind_spot_settings.validate(importlib.import_module(f"configs.{name}").get_config())


def test_tiny_config_is_valid(tiny_config):
  config_check.validate(tiny_config)


def _quickstart():
  return importlib.import_module("configs.quickstart").get_config()


def _problems(config, **kwargs):
  with pytest.raises(config_check.ConfigError) as e:
    config_check.validate(config, **kwargs)
  assert str(e.value).count("\n  ") == len(e.value.problems)
  return e.value.problems


@pytest.mark.parametrize("path,value,expected", [
    ("boundary.step", -1.0, "boundary.step: must be > 0, got -1.0"),
    ("boundary.step", 0.6, "boundary.step: 0.6 is larger than boundary.max_distance 0.5"),
    ("boundary.max_distance", 2.0, "boundary.max_distance: must be <= 1.0"),
    ("boundary.num_directions", 785, "boundary.num_directions: must be at most 784"),
    ("boundary.method", "slow", "boundary.method: must be one of ('scan', 'fast')"),
    ("attack.num_images", 0, "attack.num_images: must be >= 1, got 0"),
    ("attack.num_images", 1001, "attack.num_images: must be at most 1000 (the test split)"),
    ("attack.pool", 20000, "attack.pool: must be at most 1000"),
    ("attack.table_images", 17, "attack.table_images: must be at most 16"),
    ("attack.names", ("optmargin", "pgd"), "attack.names: unknown attack ['pgd']"),
    ("attack.names", ("fgsm", "fgsm"), "attack.names: names a attack twice"),
    ("attack.cw.max_iterations", 0, "attack.cw.max_iterations: must be >= 1"),
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
    ("models.natural.num_steps", 0, "models.natural.num_steps: must be >= 1"),
    ("models.natural.batch_size", 4000, "models.natural.batch_size: must be at most 3500"),
    ("models.natural.optimizer", "lamb", "models.natural.optimizer: must be one of"),
    ("models.natural.schedule_boundaries", (0.75, 0.5), "schedule_boundaries: must be increasing"),
    ("models.adversarial.attack.epsilon_warmup_fraction", 1.0, "must be < 1"),
    ("data.source", "web", "data.source: must be one of ('tfds', 'embedded', 'npz')"),
    ("data.seed", -1, "data.seed: must be >= 0"),
    ("model.name", "resnet", "model.name: must be one of"),
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
    config.models.natural.attack.epsilonn = 0.3
    config.extra = 1
  problems = _problems(config)
  assert any(p.startswith("attack.nmes: unknown key") for p in problems)
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
  cifar = importlib.import_module("configs.cifar").get_config()
  cifar.model.depth = 31
  assert any("depth must be 6n+2" in p for p in _problems(cifar))
  with cifar.model.unlocked():
    cifar.model.depth, cifar.model.bogus = 32, 1
  assert any(p.startswith("model.bogus: unknown key") for p in _problems(cifar))


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
  config.data.path = str(tmp_path / "missing_{split}.npz")
  assert any(p.startswith("data.path: no .npz file matches") for p in _problems(config))
  config.data.source = "tfds"
  config.data.path = "x.npz"
  assert any(p.startswith("data.path: 'x.npz' is given but data.source is 'tfds'")
             for p in _problems(config))


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
  config_check.validate(config, required=("data", "model", "models", "eval"))
  problems = _problems(config)
  assert {"config.attack: missing", "config.detect: missing"} <= set(problems)


def test_distillation_keys_are_checked():
  config = _quickstart()
  config.models.natural.temperature = 0.0
  config.models.adversarial.distill_from = "adversarial"
  problems = _problems(config)
  assert any(p.startswith("models.natural.temperature: must be > 0") for p in problems)
  assert any(p.startswith("models.adversarial.distill_from: must name another model variant")
             for p in problems)
  config = _quickstart()
  config.models.adversarial.temperature = 100.0
  config.models.adversarial.distill_from = "natural"
  config_check.validate(config)
