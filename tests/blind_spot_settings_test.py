"""The blind-spot study's settings (advbound.studies.blind_spot.settings): every bad value named
by its full path, all problems at once, the checks against the data and across sections, and
the declared defaults being the ones the consumers use."""

import dataclasses
import inspect

import pytest
from ml_collections import config_dict

from advbound.attacks import cw_linf
from advbound.config.schema import ConfigError
from advbound.studies.blind_spot import settings
from configs import blind_spot_quickstart, blind_spot_smoke

SIZES = dict(train=3500, validation=500, test=1000)


def _set(config, path, value):
  section, key = path.rsplit(".", 1)
  node = config
  for part in section.split("."):
    node = node[part]
  with node.ignore_type():
    node[key] = value


def _problems(config) -> list[str]:
  with pytest.raises(ConfigError) as e:
    settings.validate(config, sizes=SIZES)
  return e.value.problems


@pytest.mark.parametrize("path,value,expected", [
    ("study.attacked", "robust", "study.attacked: must be one of"),
    ("study.extractors", ("natural", "teacher"), "unknown model variant ['teacher']"),
    ("study.epsilon", 0.0, "study.epsilon: must be > 0"),
    ("study.epsilon", 1.5, "study.epsilon: must be <= 1.0"),  # the pixel span of MNIST
    ("study.alphas", (0.9, 1.0), "must start with 1.0"),
    ("study.alphas", (1.0, 1.5), "scale factors in (0, 1]"),
    ("study.alphas", (1.0, 0.9, 0.9), "study.alphas: names a scale factor twice"),
    ("study.test_images", 5000, "study.test_images: must be at most 1000"),
    ("study.batch_size", 0, "study.batch_size: must be >= 1"),
    ("attack.num_images", 2000, "attack.num_images: must be at most 1000"),
    ("attack.starts", ("noise", "white"), "unknown start ['white']"),
    ("attack.noise_std", -0.1, "attack.noise_std: must be >= 0"),
    ("attack.stop_at_threshold", 1, "attack.stop_at_threshold: must be True or False"),
    ("attack.cw.decrease_factor", 1.0, "attack.cw.decrease_factor: must be < 1"),
    ("attack.cw.const_factor", 1.0, "attack.cw.const_factor: must be > 1"),
    ("attack.cw.initial_const", 50.0, "attack.cw.initial_const: must be below "
     "attack.cw.largest_const"),
    ("attack.cw.steps", 3, "attack.cw.steps: unknown key"),
    ("divergence.model", "teacher", "divergence.model: must be one of"),
    ("divergence.max_iter", 100, "divergence.max_iter: must be >= 250"),
    ("divergence.init", "spectral", "divergence.init: must be one of ('random', 'pca')"),
    ("divergence.resamples", 5, "divergence.resamples: must be >= 10"),
    ("divergence.train_per_class", 400, "divergence.train_per_class: 400 per class x 10 classes "
     "exceeds the 3500 images of the training split"),
    ("figures.histogram_pair", (0.75, 0.0), "must be a transformed pair of the grid"),
    ("figures.histogram_pair", (0.7,), "figures.histogram_pair: must be (alpha, beta)"),
    ("distance.k", 0, "distance.k: must be >= 1"),
])
def test_bad_settings_are_named(path, value, expected):
  config = blind_spot_quickstart.get_config()
  _set(config, path, value)
  problems = _problems(config)
  assert any(expected in p for p in problems), problems


def test_every_problem_at_once_across_sections():
  config = blind_spot_quickstart.get_config()
  _set(config, "study.epsilon", -1.0)
  _set(config, "distance.bins", 0)
  _set(config, "divergence.grid", 1)
  _set(config, "attack.seed", -1)
  _set(config, "figures.examples", 0)
  problems = _problems(config)
  for path in ("study.epsilon", "distance.bins", "divergence.grid", "attack.seed",
               "figures.examples"):
    assert any(p.startswith(f"{path}: ") for p in problems), (path, problems)
  assert len(problems) == 5, problems


def test_the_study_test_images_bound_the_attack_and_the_divergence():
  """study.test_images (None: the test split) caps attack.num_images and the divergence's test
  count; a bad study.test_images falls back to the test split's size."""
  config = blind_spot_quickstart.get_config()
  _set(config, "study.test_images", 500)
  _set(config, "attack.num_images", 600)
  _set(config, "divergence.test_per_class", 60)  # 60 x 10 > 500
  problems = _problems(config)
  assert "attack.num_images: must be at most 500 (the test images of the study " \
         "(study.test_images)), got 600" in problems
  assert ("divergence.test_per_class: 60 per class x 10 classes exceeds the 500 images of the "
          "study's test images") in problems
  _set(config, "study.test_images", 0)
  problems = _problems(config)
  assert not any(p.startswith(("attack.", "divergence.")) for p in problems), problems


def test_figure5_pair_follows_the_grid():
  """The pair is checked against the study's alphas as written; None means no Figure 5."""
  config = blind_spot_quickstart.get_config()
  _set(config, "figures.histogram_pair", None)
  settings.validate(config, sizes=SIZES)
  _set(config, "figures.histogram_pair", (1.0, 0.0))  # the untransformed pair: not Figure 5's
  assert any(p.startswith("figures.histogram_pair: must be a transformed pair")
             for p in _problems(config))


def test_unknown_section_and_missing_one():
  config = blind_spot_quickstart.get_config()
  config.tsne = config_dict.ConfigDict(dict(perplexity=5))
  del config["attack"]
  problems = _problems(config)
  assert any(p.startswith("config.tsne: unknown key") for p in problems)
  assert any(p.startswith("config.attack: missing") for p in problems)


def test_missing_key_and_missing_cw_section():
  config = blind_spot_quickstart.get_config()
  del config.study["batch_size"]
  del config.attack["cw"]
  problems = _problems(config)
  assert "study.batch_size: missing" in problems
  assert "attack.cw: missing" in problems


def test_shipped_small_configs_are_valid():
  settings.validate(blind_spot_smoke.get_config(), sizes=SIZES)
  settings.validate(blind_spot_quickstart.get_config(), sizes=SIZES)


def test_cw_defaults_are_the_attacks_own():
  """An unset attack.cw key takes carlini_wagner_linf's default, as it did when the section
  was passed through as written."""
  params = inspect.signature(cw_linf.carlini_wagner_linf).parameters
  for f in settings.CW.fields():
    assert settings.CW.default(f.name) == params[f.name].default, f.name
  cw = settings.CW.of(config_dict.ConfigDict(dict(max_iterations=5)))
  assert cw.max_iterations == 5 and cw.abort_early is params["abort_early"].default


def test_note_defaults_to_empty_and_of_fills_no_config():
  config = blind_spot_smoke.get_config()
  assert settings.Config.of(config).note == config.note
  del config["note"]
  settings.validate(config, sizes=SIZES)
  assert settings.Config.of(config).note == ""
  assert "note" not in config and "abort_early" not in config.attack.cw  # nothing filled in


def test_every_key_is_declared_once_with_a_doc():
  """Every key a shipped config holds is a field, documented, and the table covers it."""
  rows = "\n".join(settings.Config.table("config"))
  config = blind_spot_quickstart.get_config()
  for name, section in (("study", settings.Study), ("distance", settings.Distance),
                        ("divergence", settings.Divergence), ("attack", settings.Attack),
                        ("figures", settings.Figures), ("attack.cw", settings.CW)):
    node = config
    for part in name.split("."):
      node = node[part]
    assert set(node.keys()) <= {f.name for f in dataclasses.fields(section)}, name
    for f in dataclasses.fields(section):
      assert f.metadata["doc"] and f"`config.{name}.{f.name}`" in rows
