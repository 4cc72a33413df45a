"""Tests of advbound/training/settings.py, the sections every study shares (data, model,
models.<variant> with its attack, guard and own model, eval): the shipped configs pass; every
kind of bad shared setting is reported with its full path, all at once, before anything runs."""

import importlib

import numpy as np
import pytest
from ml_collections import config_dict

from advbound.config import schema
from advbound.studies.blind_spot import settings as blind_spot_settings
from advbound.studies.region_defense import settings as region_defense_settings
from advbound.training import settings
from tests.configs_test import BLIND_SPOT, REGION_DEFENSE

SIZES = {"train": 45000, "validation": 5000, "test": 10000}


@pytest.mark.parametrize("name", REGION_DEFENSE)
def test_shipped_region_defense_configs_are_valid(name):
  region_defense_settings.validate(importlib.import_module(f"configs.{name}").get_config())


@pytest.mark.parametrize("name", BLIND_SPOT)
def test_shipped_blind_spot_configs_are_valid(name):
  blind_spot_settings.validate(importlib.import_module(f"configs.{name}").get_config())


def _quickstart():
  return importlib.import_module("configs.quickstart").get_config()


def _problems(config, sizes=None, variants=None) -> list[str]:
  """The problems of the shared sections of `config` (data, model, models, eval)."""
  c = schema.Checker()
  top = {k: config[k] for k in config.keys()}
  info, sizes, _ = settings.check_trained(c, top, sizes, variants)
  if "eval" in top:
    settings.Eval.check(c, "eval", top["eval"], settings.data_ctx(info, sizes))
  return c.problems


def test_shipped_shared_sections_are_valid():
  assert _problems(_quickstart()) == []
  assert _problems(importlib.import_module("configs.cifar_fast").get_config(), SIZES) == []


@pytest.mark.parametrize("path,value,expected", [
    ("eval.pgd_examples", 5000, "eval.pgd_examples: must be at most 1000"),
    ("eval.pgd.epsilon", 8.0, "eval.pgd.epsilon: must be <= 1.0"),
    ("eval.compute_dtype", "half", "eval.compute_dtype: must be one of"),
    ("models.natural.num_steps", 0, "models.natural.num_steps: must be >= 1"),
    ("models.natural.batch_size", 4000, "models.natural.batch_size: must be at most 3500"),
    ("models.natural.optimizer", "lamb", "models.natural.optimizer: must be one of"),
    ("models.natural.schedule_boundaries", (0.75, 0.5), "schedule_boundaries: must be increasing"),
    ("models.natural.schedule_factors", (0.1,), "schedule_factors: must be 2 numbers > 0"),
    ("models.adversarial.attack.epsilon_warmup_fraction", 1.0, "must be < 1"),
    ("models.adversarial.attack.labels", "mine", "models.adversarial.attack.labels: must be one"),
    ("models.natural.snapshot_every", 0, "models.natural.snapshot_every: must be >= 1"),
    ("models.natural.init_from", "robust", "models.natural.init_from: must name another"),
    ("data.source", "web", "data.source: must be one of ('tfds', 'embedded', 'npz')"),
    ("data.seed", -1, "data.seed: must be >= 0"),
    ("data.name", "cifar10", "data.source: the embedded source holds MNIST only"),
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


@pytest.mark.parametrize("path,value,expected", [
    ("models.natural.compute_dtype", "float16",
     "models.natural.compute_dtype: must be one of ('float32', 'bfloat16'), got 'float16'"),
    ("models.natural.label_smoothing", 1.0, "models.natural.label_smoothing: must be < 1"),
    ("models.natural.cutout", -8, "models.natural.cutout: must be >= 0"),
    ("models.natural.model.width", 0, "ResNet9 width must be >= 1"),
    ("models.natural.model.bogus", 1, "models.natural.model.bogus: unknown key"),
    ("models.adversarial.guard.examples", 0, "models.adversarial.guard.examples: must be >= 1"),
    ("models.adversarial.guard.examples", 45001,
     "models.adversarial.guard.examples: must be at most 45000 (the train split)"),
    ("models.adversarial.guard.max_drop", 1.5, "models.adversarial.guard.max_drop: must be <= 1"),
    ("models.adversarial.guard.seed", -1, "models.adversarial.guard.seed: must be >= 0"),
    ("models.adversarial.guard.pgd.epsilon", 300.0, "guard.pgd.epsilon: must be <= 255"),
    ("models.adversarial.init_from", "natural", "'natural' has another architecture"),
])
def test_bad_fast_settings_are_named(path, value, expected):
  config = importlib.import_module("configs.cifar_fast").get_config()
  *parents, leaf = path.split(".")
  node = config
  for p in parents:
    node = node[p]
  with node.unlocked():
    node[leaf] = value
  problems = _problems(config, SIZES)
  assert any(expected in p for p in problems), problems


def test_all_problems_reported_at_once():
  config = _quickstart()
  config.data.seed = -1
  config.models.natural.num_steps = 0
  config.models.adversarial.attack.step_size = -0.1
  config.eval.batch_size = 0
  problems = _problems(config, variants=["natural", "robust"])
  assert len(problems) == 5, problems
  assert "--only: unknown model variant 'robust'; the config has ['adversarial', 'natural']" in (
      problems)


def test_unknown_and_missing_keys_are_named_by_full_path():
  config = _quickstart()
  with config.unlocked():
    config.models.natural.attack.epsilonn = 0.3
    config.models.natural.dropout = 0.5
    config.eval.pgd.stepsize = 0.1
    del config.models.adversarial["log_every"]
    del config.data["seed"]
  problems = _problems(config)
  for p in ("models.natural.attack.epsilonn", "models.natural.dropout", "eval.pgd.stepsize"):
    assert any(q.startswith(f"{p}: unknown key") for q in problems), problems
  assert {"models.adversarial.log_every: missing", "data.seed: missing"} <= set(problems)


def test_models_must_hold_a_variant():
  config = _quickstart()
  with config.unlocked():
    config.models = config_dict.ConfigDict()
  assert "models: must hold at least one model variant" in _problems(config)


def test_model_must_fit_the_data():
  config = _quickstart()
  config.data.name, config.data.source = "cifar10", "tfds"  # MnistCNN on 32x32x3 images
  assert any(p.startswith("model: mnist_cnn") and "(32, 32, 3)" in p for p in _problems(config))
  cifar = importlib.import_module("configs.cifar").get_config()
  cifar.model.depth = 31
  assert any("depth must be 6n+2" in p for p in _problems(cifar))
  with cifar.model.unlocked():
    cifar.model.depth, cifar.model.bogus = 32, 1
  assert any(p.startswith("model.bogus: unknown key") for p in _problems(cifar))


def test_counts_checked_against_npz_files(tmp_path):
  rng = np.random.default_rng(0)
  np.savez(tmp_path / "small.npz", x=rng.integers(0, 255, (50, 28, 28, 1), np.uint8),
           y=np.arange(50) % 10)
  config = _quickstart()
  config.data.source, config.data.path = "npz", str(tmp_path / "small.npz")
  problems = _problems(config)  # a pool of 50: 35 train / 5 validation / 10 test
  assert any(p.startswith("eval.pgd_examples: must be at most 10") for p in problems)
  assert any(p.startswith("models.natural.batch_size: must be at most 35") for p in problems)
  config.data.path = str(tmp_path / "missing_{split}.npz")
  assert any(p.startswith("data.path: no .npz file matches") for p in _problems(config))
  config.data.source = "npz"
  config.data.path = ""
  assert any(p.startswith("data.path: source 'npz' needs a path") for p in _problems(config))
  config.data.source = "tfds"
  config.data.path = "x.npz"
  assert any(p.startswith("data.path: 'x.npz' is given but data.source is 'tfds'")
             for p in _problems(config))


def test_the_hold_out_size_is_checked_against_the_data(tmp_path):
  rng = np.random.default_rng(1)
  for split, n in (("train", 300), ("test", 40)):
    np.savez(tmp_path / f"d_{split}.npz", x=rng.integers(0, 255, (n, 28, 28, 1), np.uint8),
             y=np.arange(n) % 10)
  config = _quickstart()
  config.data.source, config.data.path = "npz", str(tmp_path / "d_{split}.npz")
  problems = _problems(config)  # 300 training images, the default hold-out of 5,000
  assert any(p.startswith("data.path: ") and "--config.data.validation_size below 300" in p
             for p in problems), problems
  config.data.validation_size = 30  # 270 train / 30 validation / 40 test
  problems = _problems(config)
  assert not any(p.startswith("data.") for p in problems), problems
  assert any(p.startswith("eval.pgd_examples: must be at most 40") for p in problems)
  config.data.source, config.data.path = "embedded", ""  # a pool: the setting does not apply
  assert any(p.startswith("data.validation_size: 30 is given, but embedded data")
             for p in _problems(config))


def test_check_trained_returns_the_data_and_the_variants():
  c = schema.Checker()
  config = _quickstart()
  info, sizes, names = settings.check_trained(c, {k: config[k] for k in config.keys()}, None)
  assert c.problems == []
  assert info == {"name": "mnist", "image_shape": (28, 28, 1), "num_classes": 10, "span": 1.0,
                  "bounds": (0.0, 1.0)}
  assert sizes == {"train": 3500, "validation": 500, "test": 1000}
  assert sorted(names) == ["adversarial", "natural"]


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
  assert _problems(config) == []


def test_of_fills_the_consumers_defaults():
  """A variant written without the optional keys reads as their consumers' defaults."""
  train = settings.Train.of(_quickstart().models.natural)
  assert (train.temperature, train.label_smoothing, train.cutout, train.compute_dtype) == (
      1.0, 0.0, 0, "float32")
  assert train.snapshot_every is None and train.guard is None and train.model is None
  assert train.attack.labels == "true" and train.attack.epsilon_warmup_fraction == 0.0
  assert settings.Eval.of(_quickstart().eval).compute_dtype == "float32"
  guard = importlib.import_module("configs.cifar_fast").get_config().models.adversarial.guard
  with guard.unlocked():
    del guard["seed"]
  assert settings.Guard.of(guard).seed == 0
  data = settings.Data.of(config_dict.ConfigDict(dict(name="mnist", source="tfds", seed=0)))
  assert data.path == "" and data.data_dir is None
