"""The region-defense settings (advbound/studies/region_defense/settings.py): every key declared
once with its check, default and doc; every problem reported at once by full path; the data and
cross-section checks; consumers read the declared defaults."""

import importlib

import pytest

from advbound.config.schema import ConfigError
from advbound.studies.region_defense import attacks, settings
from configs import region_defense_smoke

SIZES = {"train": 55000, "validation": 5000, "test": 10000}
SECTIONS = (settings.Study, settings.Radius, settings.Region, settings.Evaluation,
            settings.Overrides, settings.EpsilonGrid, settings.Adapted, settings.Adaptive,
            settings.Figures, settings.Config)


def _problems(config, **kw) -> list[str]:
  with pytest.raises(ConfigError) as e:
    settings.validate(config, sizes=SIZES, **kw)
  return e.value.problems


@pytest.mark.parametrize("name", ["region_defense_smoke", "region_defense_quickstart",
                                  "region_defense_mnist", "region_defense_cifar"])
def test_every_key_of_the_shipped_configs_is_declared(name):
  config = importlib.import_module(f"configs.{name}").get_config()
  settings.validate(config)
  for section in settings.SECTIONS:
    if section in ("data", "model", "models", "note"):
      continue
    declared = {f.name for f in getattr(settings, section.capitalize()).fields()}
    assert set(config[section].keys()) <= declared, section


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.__name__)
def test_every_setting_has_a_check_and_a_one_line_doc(section):
  for f in section.fields():
    assert f.metadata["doc"] and "\n" not in f.metadata["doc"], f.name
  rows = section.table("x")
  assert len(rows) >= len(section.fields())


def test_several_problems_at_once_by_full_path():
  config = region_defense_smoke.get_config()
  config.radius.step = 0.0
  config.region.score_draws = 0
  config.evaluation.draw = "every"
  config.evaluation.overrides.cw_l2.max_iteration = 5
  config.evaluation.overrides.igsm.grid_stride = 300
  config.adaptive.epsilons = (0.1, 1.5)
  config.figures.seed = -1
  config.study.batch_size = 0
  problems = _problems(config)
  for path in ("radius.step", "region.score_draws", "evaluation.draw",
               "evaluation.overrides.cw_l2.max_iteration", "evaluation.overrides.igsm.grid_stride",
               "adaptive.epsilons", "figures.seed", "study.batch_size"):
    assert sum(p.startswith(path + ":") for p in problems) == 1, (path, problems)
  assert len(problems) == 8, problems


def test_unknown_and_missing_keys_are_named():
  config = region_defense_smoke.get_config()
  config.study.pointt = "natural"
  del config.region["seed"]
  config.extra = 1
  problems = _problems(config)
  assert "region.seed: missing" in problems
  assert any(p.startswith("study.pointt: unknown key") for p in problems)
  assert any(p.startswith("config.extra: unknown key") for p in problems)


def test_the_data_dependent_checks():
  config = region_defense_smoke.get_config()
  config.radius.validation_images = 5001
  config.evaluation.pool = 10001
  problems = _problems(config)
  assert "radius.validation_images: must be at most 5000 (the validation split), got 5001" \
      in problems
  assert "evaluation.pool: must be at most 10000 (the test split), got 10001" in problems
  config = region_defense_smoke.get_config()
  config.evaluation.pool = 20
  config.evaluation.num_images = 21  # at most the pool, when one is set
  assert _problems(config) == [
      "evaluation.num_images: must be at most 20 (the pool of test images), got 21"]
  config.evaluation.pool = None
  config.evaluation.num_images = 10001
  assert _problems(config) == [
      "evaluation.num_images: must be at most 10000 (the pool of test images), got 10001"]


def test_the_cross_section_checks():
  config = region_defense_smoke.get_config()
  config.study.point = "teacher"  # a model variant, but not a compared classifier
  config.evaluation.kappa_classifiers = ("natural", "teacher")
  config.evaluation.attacks = ("T-CW-L2", "T-FGSM")
  config.adapted.attacks = ("T-CW-L0", "T-CW-L2")
  problems = _problems(config)
  assert any(p.startswith("study.point: must be one of study.classifiers") for p in problems)
  assert any(p.startswith("evaluation.kappa_classifiers: unknown classifier ['teacher']")
             for p in problems)
  assert "adapted.attacks: ['T-CW-L0'] are not among evaluation.attacks ('T-CW-L2', " \
      "'T-FGSM')" in problems
  config = region_defense_smoke.get_config()
  config.study.classifiers = ("natural", "robust")  # not a model variant
  problems = _problems(config)
  assert any(p.startswith("study.classifiers: unknown model variant ['robust']")
             for p in problems)


def test_overrides_are_the_attacks_own_settings():
  config = region_defense_smoke.get_config()
  config.evaluation.overrides.fgsm.max_epsilon = 0.5  # the grid settings: FGSM / IGSM only
  settings.validate(config, sizes=SIZES)
  config.evaluation.overrides.cw_l2.max_epsilon = 0.5
  config.evaluation.overrides.igsm.max_epsilon = 2.0
  del config.evaluation.overrides["deepfool"]
  config.evaluation.overrides.deepfool = 3
  problems = _problems(config)
  assert any(p.startswith("evaluation.overrides.cw_l2.max_epsilon: unknown key")
             for p in problems)
  assert "evaluation.overrides.igsm.max_epsilon: must be <= 1, got 2.0" in problems
  assert "evaluation.overrides.deepfool: must be a section, got 3" in problems


def test_optional_settings_have_their_declared_defaults():
  config = region_defense_smoke.get_config()
  for key in ("tolerance", "validation_images", "max_radius"):
    del config.radius[key]
  del config.evaluation.overrides["deepfool"]
  settings.validate(config, sizes=SIZES)
  r = settings.Radius.of(config.radius)
  assert (r.tolerance, r.validation_images, r.max_radius) == (0.0, None, None)
  assert "tolerance" not in config.radius  # reading fills nothing into the (stamped) config
  assert settings.Config.of(config).note == ""
  assert settings.Evaluation.of(config.evaluation).overrides.deepfool is None
  grid = settings.EpsilonGrid.of(config.evaluation.overrides.fgsm)
  assert (grid.max_epsilon, grid.grid_stride) == (None, None)


def test_an_absent_override_is_the_empty_one():
  config = region_defense_smoke.get_config()
  bounds = (0.0, 1.0)
  empty = attacks.settings(config, "DeepFool", 0.0, bounds)
  del config.evaluation.overrides["deepfool"]
  assert attacks.settings(config, "DeepFool", 0.0, bounds) == empty


def test_the_epsilon_grid_of_fgsm_and_igsm():
  config = region_defense_smoke.get_config()
  bounds = (0.0, 1.0)
  kw, full = attacks.settings(config, "T-FGSM", 0.0, bounds)
  assert "epsilons" not in kw and "max_epsilon" not in full  # the whole released grid
  config.evaluation.overrides.fgsm.update(dict(max_epsilon=0.1, grid_stride=2))
  kw, full = attacks.settings(config, "T-FGSM", 0.0, bounds)
  assert kw["epsilons"] and max(kw["epsilons"]) <= 0.1 + 1e-9
  assert "max_epsilon" not in kw and "grid_stride" not in kw
  assert (full["max_epsilon"], full["grid_stride"]) == (0.1, 2)
