"""The training-dynamics study's settings (advbound.studies.training_dynamics.settings): every
bad value named by its full path, all problems at once, the checks against the data, the epochs
and across sections, and the declared defaults being the ones the consumers use."""

import dataclasses

import numpy as np
import pytest

from advbound.config import schema
from advbound.config.schema import ConfigError
from advbound.studies.training_dynamics import epochs, examples, settings
from configs import training_dynamics, training_dynamics_quickstart, training_dynamics_smoke

_SIZES = dict(train=3500, validation=500, test=1000)


def _set(config, path, value):
  section, key = path.rsplit(".", 1)
  node = config
  for part in section.split("."):
    node = node[part]
  with node.ignore_type():
    node[key] = value


def _problems(config, sizes=_SIZES) -> list[str]:
  with pytest.raises(ConfigError) as e:
    settings.validate(config, sizes=sizes)
  return e.value.problems


@pytest.mark.parametrize("path,value,expected", [
    ("models.adversarial.snapshot_every", None, "must be the steps of one epoch"),
    ("models.adversarial.num_steps", 100, "whole number of epochs"),
    ("models.adversarial.init_from", None, "must name the naturally trained variant"),
    ("models.adversarial.adversarial", False, "models.adversarial.adversarial: must be True"),
    ("study.adversarial", "robust", "study.adversarial: must be one of ("),
    ("study.epochs", (1, 2), "must include epoch 0"),
    ("study.epochs", (0, 9), "study.epochs: names epochs [9] beyond the last one (8)"),
    ("universal.fixed_epochs", (0, 12), "beyond the last one (8)"),
    ("universal.sources", ("test",), "universal.sources"),
    ("universal.batch_size", 2000, "universal.batch_size: must be at most 1000 (the smaller "
     "split)"),
    ("detect.features", (16, 32), "three convolution widths"),
    ("sharedness.ratio_perturbations", 300, "sharedness.ratio_inputs - 1"),
    ("destruction.noise", (0.1, -0.1), "levels must be > 0"),
    ("destruction.brightness", (1.5,), "destruction.brightness: levels must be within the "
     "data's range 1.0"),
    ("destruction.attacks", ("bi", "cw"), "destruction.attacks: unknown attack ['cw']"),
    ("destruction.deepfool.candidates", 1, "destruction.deepfool.candidates: must be >= 2"),
    ("destruction.deepfool.steps", 3, "destruction.deepfool.steps: unknown key"),
    ("study.test_images", 5000, "at most 1000 (the test split)"),
    ("study.epsilon", 1.5, "study.epsilon: must be <= 1.0"),
    ("models.adversarial.snapshot_every", 55, "one epoch of the train split is 54 steps"),
    ("study.partial_epoch_steps", 54, "must be an int in [1, 54)"),
    ("study.partial_epoch_steps", 0, "study.partial_epoch_steps: must be >= 1"),
    ("study.eval_images", 100, "at most 100 (study.eval_images"),
    ("detect.train_images", 100, "must be >= study.train_images (200)"),
    ("detect.train_images", 4000, "detect.train_images: must be at most 3500 (the train split)"),
    ("profiles.threshold", 1.5, "profiles.threshold: must be <= 1"),
    ("figures.amplify", 0.0, "figures.amplify: must be > 0"),
])
def test_bad_settings_are_named(path, value, expected):
  config = training_dynamics_quickstart.get_config()
  _set(config, path, value)
  problems = _problems(config)
  assert any(expected in p for p in problems), problems


def test_every_problem_at_once():
  config = training_dynamics_quickstart.get_config()
  for path, value in (("study.num_steps", 0), ("sharedness.future_epochs", (0, 20)),
                      ("universal.iterations", -1), ("detect.seed", -1),
                      ("figures.perturbation_epochs", ()), ("destruction.deepfool.norm", "l1")):
    _set(config, path, value)
  config.bogus = 1
  problems = _problems(config)
  for start in ("study.num_steps: must be >= 1", "sharedness.future_epochs: names epochs [20]",
                "universal.iterations: must be >= 1", "detect.seed: must be >= 0",
                "figures.perturbation_epochs: must be a non-empty tuple of epochs",
                "destruction.deepfool.norm: must be one of ('l2', 'linf')",
                "config.bogus: unknown key"):
    assert sum(p.startswith(start) for p in problems) == 1, (start, problems)
  assert len(problems) == 7, problems


def test_epochs_outside_the_measured_ones_are_named():
  config = training_dynamics_quickstart.get_config()
  config.study.epochs = (0, 1, 2, -1)
  problems = _problems(config)
  assert any(p.startswith("destruction.epochs: names epochs [4]") for p in problems)
  # the sharedness ratio's epochs need not be measured ones (they make their own examples)
  assert not any(p.startswith("sharedness.ratio_epochs") for p in problems), problems


def test_required_keys_stay_required_and_none_values_are_allowed():
  config = training_dynamics_quickstart.get_config()
  assert config.study.epochs is None and config.sharedness.future_epochs is None
  del config.study["epochs"]
  del config.sharedness["future_epochs"]
  assert set(_problems(config)) == {"study.epochs: missing", "sharedness.future_epochs: missing"}


def test_configs_validate_and_variant_argument():
  settings.validate(training_dynamics_quickstart.get_config(), sizes=_SIZES)
  settings.validate(training_dynamics_quickstart.get_config("fashion_mnist"),
                    sizes=dict(train=55000, validation=5000, test=10000))
  settings.validate(training_dynamics_smoke.get_config(), sizes=_SIZES)
  for variant in training_dynamics.VARIANTS:
    n = 55000 if variant == "fashion_mnist" else 45000
    settings.validate(training_dynamics.get_config(variant),
                      sizes=dict(train=n, validation=5000, test=10000))
  c = training_dynamics.get_config()
  assert epochs.count(c) == 250 and c.models.adversarial.attack.labels == "predicted"
  assert c.universal.iterations == 200 and c.detect.features == (96, 192, 192)
  # the paper's sizes: Figures 3/5/6/8/16 on the whole test split, detectors on the whole
  # training split, the profiles on 256
  assert c.study.eval_images is None and c.detect.train_images is None
  assert (c.study.test_images, c.study.train_images) == (256, 256)


def test_epoch_length_follows_the_split():
  """The defect of issue 25: 352 / 391 steps were hard-coded, the trainer's epoch is
  len(train) // 128. Each config's epoch is the split's, and a split of another size (an .npz
  path) is refused with both numbers named."""
  for variant, n, steps in (("cifar", 45000, 351), ("cifar_reduced", 45000, 351),
                            ("fashion_mnist", 55000, 429)):
    c = training_dynamics.get_config(variant)
    assert c.models.adversarial.snapshot_every == steps, variant
    assert c.models.adversarial.num_steps % steps == 0
  assert training_dynamics_quickstart.get_config().models.adversarial.snapshot_every == 54
  problems = _problems(training_dynamics.get_config(),
                       sizes=dict(train=50000, validation=5000, test=10000))
  problem = next(p for p in problems if "snapshot_every" in p)
  assert "351" in problem and "390" in problem, problem


def test_gtsrb_substitutes_label_their_epsilons():
  for variant in ("cifar_convnet", "fashion_mnist"):
    note = training_dynamics.get_config(variant).note
    assert "GTSRB" in note and " 8 " in note and " 20 " in note
  assert training_dynamics.get_config("cifar").get("note") is None
  with pytest.raises(ValueError, match="'gtsrb'"):
    training_dynamics.get_config("gtsrb")


# --- the declared defaults are the consumers' ------------------------------------------------

_OPTIONAL = ("study.eval_images", "study.partial_epoch_steps", "detect.train_images",
             "destruction.deepfool.candidates", "note", "model")


def test_optional_keys_and_their_defaults():
  optional = {f"{path}.{f.name}".lstrip("."): f.default
              for path, section in (("", settings.Config), ("study", settings.Study),
                                    ("detect", settings.Detect),
                                    ("destruction.deepfool", settings.DeepFool))
              for f in dataclasses.fields(section) if f.default is not schema.REQUIRED}
  assert optional == {k: None for k in _OPTIONAL}
  for section in (settings.Study, settings.Profiles, settings.Sharedness, settings.Universal,
                  settings.Destruction, settings.DeepFool, settings.Detect, settings.Figures):
    for name in section.required():
      with pytest.raises(KeyError):
        section.default(name)


def test_a_config_without_the_optional_keys_reads_their_defaults():
  """Leaving an optional key out is the same as writing its default: the config validates and
  the consumers resolve the same draws and settings."""
  written = training_dynamics_smoke.get_config()
  written.study.eval_images = None
  written.detect.train_images = None
  bare = training_dynamics_smoke.get_config()
  del bare.study["eval_images"]
  del bare.detect["train_images"]
  del bare.destruction.deepfool["candidates"]
  settings.validate(bare, sizes=_SIZES)
  data = {"train": np.zeros(3500), "test": np.zeros(1000)}
  assert (epochs.sizes(bare, data, detect=True) == epochs.sizes(written, data, detect=True)
          == dict(eval=1000, test=40, train=40, detect=3500))
  assert settings.DeepFool.of(bare.destruction.deepfool).candidates is None
  assert settings.Study.of(bare.study).partial_epoch_steps == 5
  assert settings.Config.of(bare).note is None
  # the consumer passes the declared default on to DeepFool
  assert examples.settings.DeepFool is settings.DeepFool


def test_every_section_is_documented():
  rows = settings.Config.table("config")
  names = {row.split("`")[1] for row in rows}
  assert {f"config.{k}" for k in _OPTIONAL + ("universal.sources",)} <= names
  assert all(row.count("|") >= 5 and not row.rstrip().endswith("|  |") for row in rows)
  assert settings.SECTIONS == ("data", "model", "models", "study", "profiles", "sharedness",
                               "universal", "destruction", "detect", "figures", "note")
