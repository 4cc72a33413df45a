"""Tests of advbound/config/schema.py, the declarations every config section is checked with:
unknown and missing keys, every problem reported at once by full path, bounds that name values
of the data, defaults filled for consumers; and of every section declared in advbound: each
setting documented, each optional setting's default passing its own check."""

import dataclasses
import importlib
import pkgutil

import pytest
from ml_collections import config_dict

import advbound.studies
from advbound.config import schema
from advbound.config.schema import setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class Inner(schema.Section):
  """A nested section."""
  epsilon: float = setting(check=schema.Real(lo=0, hi="span"), doc="a budget on the data's scale")
  steps: int = setting(3, check=schema.Count(), doc="an optional count")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outer(schema.Section):
  """A section with a required and an optional setting, a nested section and named entries."""
  seed: int = setting(check=schema.Int(lo=0), doc="a required seed")
  images: int = setting(check=schema.Count(at_most="test"), doc="at most the test split")
  dtype: str = setting("float32", check=schema.Choice(("float32", "bfloat16")),
                       doc="an optional choice")
  inner: Inner = setting(check=schema.Sub(Inner), doc="a nested section")
  entries: dict = setting(None, check=schema.Each(Inner, what="entry"),
                          doc="named nested sections")

  @classmethod
  def validate(cls, c, path, values, ctx):
    if values.get("seed") == 7:
      c.fail(f"{path}.seed", "7 is unlucky")


def _cfg(**overrides):
  cfg = config_dict.ConfigDict(dict(seed=0, images=10, inner=dict(epsilon=0.3)))
  with cfg.unlocked():
    for k, v in overrides.items():
      cfg[k] = v
  return cfg


def _check(cfg, ctx=None):
  c = schema.Checker()
  Outer.check(c, "outer", cfg, ctx if ctx is not None else {"span": 1.0, "test": 100})
  return c.problems


def test_a_valid_section_passes():
  assert _check(_cfg()) == []


def test_unknown_key_is_named_with_the_known_keys():
  assert _check(_cfg(sed=1)) == [
      "outer.sed: unknown key (known keys of outer: seed, images, dtype, inner, entries)"]


def test_missing_required_key():
  cfg = _cfg()
  with cfg.unlocked():
    del cfg["seed"]
  assert _check(cfg) == ["outer.seed: missing"]


def test_every_problem_is_reported_at_once_by_full_path():
  cfg = _cfg(seed=-1, images=0, dtype="half", entries=dict(a=dict(epsilon=0.1, steps=0)))
  cfg.inner.epsilon = 2.0
  with cfg.inner.unlocked():
    cfg.inner.extra = 1
  problems = _check(cfg)
  assert sorted(p.split(":")[0] for p in problems) == [
      "outer.dtype", "outer.entries.a.steps", "outer.images", "outer.inner.epsilon",
      "outer.inner.extra", "outer.seed"], problems
  with pytest.raises(schema.ConfigError) as e:
    c = schema.Checker()
    c.problems = problems
    c.raise_if_any()
  assert e.value.problems == problems and str(e.value).startswith("6 problem(s) in the config")


def test_validate_runs_after_the_fields():
  assert _check(_cfg(seed=7)) == ["outer.seed: 7 is unlucky"]


def test_bounds_name_values_of_the_data():
  assert _check(_cfg(images=101)) == [
      "outer.images: must be at most 100 (the test split), got 101"]
  cfg = _cfg()
  cfg.inner.epsilon = 8.0
  assert _check(cfg, {"span": 255.0, "test": 100}) == []
  assert _check(cfg, {"span": 1.0, "test": 100}) == [
      "outer.inner.epsilon: must be <= 1.0, got 8.0"]
  assert _check(cfg, {}) == []  # the data unknown (its own problem): the bound is dropped


def test_of_fills_the_declared_defaults():
  out = Outer.of(_cfg())
  assert out == Outer(seed=0, images=10, dtype="float32", inner=Inner(epsilon=0.3, steps=3),
                      entries=None)
  assert Outer.of(_cfg(dtype="bfloat16")).dtype == "bfloat16"
  assert Outer.default("dtype") == "float32" and Inner.default("steps") == 3
  with pytest.raises(KeyError):
    Outer.default("seed")  # required: no default
  with pytest.raises(KeyError):
    Outer.of(config_dict.ConfigDict(dict(images=1)))  # unchecked: a required key is missing


def test_table_documents_every_setting():
  rows = Outer.table("outer")
  assert rows[0] == "| `outer.seed` | int >= 0 | required | a required seed |"
  assert ("| `outer.inner.epsilon` | number [0, span] | required | a budget on the data's "
          "scale |") in rows
  assert len(rows) == len(Outer.fields()) + 2 * len(Inner.fields())


def test_mutable_defaults_are_refused():
  with pytest.raises(TypeError):
    setting([1], doc="a list")


# ---- every section declared in advbound ----------------------------------------------------

def _settings_modules():
  """advbound.training.settings and every study's settings module."""
  names = ["advbound.training.settings"]
  for info in pkgutil.iter_modules(advbound.studies.__path__):
    if info.ispkg and importlib.util.find_spec(f"advbound.studies.{info.name}.settings"):
      names.append(f"advbound.studies.{info.name}.settings")
  return [importlib.import_module(n) for n in names]


def _sections():
  _settings_modules()
  found, todo = [], list(schema.Section.__subclasses__())
  while todo:
    cls = todo.pop()
    if cls.__module__.startswith("advbound.") and cls not in found:
      found.append(cls)
    todo += cls.__subclasses__()
  return sorted(found, key=lambda cls: (cls.__module__, cls.__qualname__))


# what the data of a study may be: bounds naming it must admit the declared defaults
CTX = {"name": "cifar10", "image_shape": (32, 32, 3), "num_classes": 10, "span": 255.0,
       "pixels": 3072, "train": 45000, "validation": 5000, "test": 10000}


def test_every_study_has_a_settings_module():
  modules = {m.__name__ for m in _settings_modules()}
  assert {"advbound.training.settings", "advbound.studies.decision_boundary.settings",
          "advbound.studies.blind_spot.settings", "advbound.studies.region_defense.settings",
          "advbound.studies.training_dynamics.settings"} <= modules


@pytest.mark.parametrize("section", _sections(), ids=lambda s: f"{s.__module__}.{s.__name__}")
def test_every_setting_is_documented(section):
  assert dataclasses.is_dataclass(section) and section.__dataclass_params__.frozen
  assert section.fields() or section.extra_keys, f"{section.__name__} declares no settings"
  for f in section.fields():
    assert set(f.metadata) >= {"check", "doc"}, f"{section.__name__}.{f.name}: not a setting()"
    doc = f.metadata["doc"]
    assert isinstance(doc, str) and doc.strip() and "\n" not in doc, (
        f"{section.__name__}.{f.name}: needs a one-line doc")
    assert isinstance(f.metadata["check"], schema.Check), f"{section.__name__}.{f.name}"


@pytest.mark.parametrize("section", _sections(), ids=lambda s: f"{s.__module__}.{s.__name__}")
def test_optional_defaults_pass_their_own_check(section):
  """A default is a value a config may write (None may also stand for "not written", e.g.
  attack.cw's overrides keep each attack's own setting)."""
  for f in section.fields():
    if f.default is schema.REQUIRED or f.default is None:
      continue
    check = f.metadata["check"]
    if isinstance(check, schema.Names) and callable(check.allowed):
      continue  # depends on other sections of the config
    c = schema.Checker()
    assert check(c, f"{section.__name__}.{f.name}", f.default, CTX), c.problems
