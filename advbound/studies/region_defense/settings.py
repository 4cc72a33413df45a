"""The region-defense study's settings, each declared once (`advbound.config.schema`): its check,
its default where it is optional, its doc. `validate` checks a config before anything runs and
raises one `ConfigError` listing every problem by full path (data, model and model variants as
the other studies check them, then this study's sections, then what relates them: the compared
classifiers are model variants, the kappa sweep's classifiers are compared ones, the adapted
attacks are evaluated ones, the image counts fit the splits). Consumers read a section through
`<Section>.of(config.<section>)`, which fills the defaults declared here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from advbound.attacks import cao_gong
from advbound.config import schema
from advbound.config.schema import ConfigError, setting
from advbound.studies.region_defense import protocol
from advbound.training import settings as shared

ATTACKS = ("T-JSMA", "T-CW-L0", "T-FGSM", "T-IGSM", "T-CW-Linf", "T-CW-L2", "DeepFool")
ADAPTED = ("T-CW-L0", "T-CW-L2", "T-CW-Linf")
# evaluation.overrides key -> the attack whose settings it overrides
OVERRIDES = {"jsma": "T-JSMA", "cw_l0": "T-CW-L0", "fgsm": "T-FGSM", "igsm": "T-IGSM",
             "cw_linf": "T-CW-Linf", "cw_l2": "T-CW-L2", "deepfool": "DeepFool"}
GRID_ATTACKS = ("T-FGSM", "T-IGSM")  # their epsilons: the grid k / 256 of the range

__all__ = ["ConfigError", "validate", "Config", "Study", "Radius", "Region", "Evaluation",
           "Overrides", "EpsilonGrid", "Adapted", "Adaptive", "Figures"]


# ---- value checks of this study -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Numbers(schema.Check):
  """A tuple (possibly empty) of numbers >= 0, and <= hi when given; `what` is the problem's
  wording of the expected value."""
  hi: float | None = None
  what: str = ""

  def __call__(self, c, path, value, ctx):
    if not isinstance(value, (tuple, list)) or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0
        or (self.hi is not None and v > self.hi) for v in value):
      return c.fail(path, f"must be {self.what}, got {value!r}")
    return True

  def describe(self):
    return f"tuple of numbers >= 0{'' if self.hi is None else f' <= {self.hi}'}"


@dataclasses.dataclass(frozen=True)
class AttackSettings(schema.Check):
  """A section of settings of Cao & Gong's `attack` (`cao_gong.settings`' names, less the
  targeting, the bounds and the epsilons the study sets), plus `EpsilonGrid` for FGSM / IGSM."""
  attack: str = ""

  def __call__(self, c, path, value, ctx):
    if not hasattr(value, "keys"):
      return c.fail(path, f"must be a section, got {value!r}")
    section = EpsilonGrid if self.attack in GRID_ATTACKS else AttackOptions
    before = len(c.problems)
    section.check(c, path, value, {**ctx, "attack": self.attack})
    return len(c.problems) == before

  def describe(self):
    return f"section of {self.attack} settings"


def _attack_keys(cfg, ctx) -> tuple[str, ...]:
  """The settings of ctx["attack"] that evaluation.overrides may set."""
  return tuple(sorted(cao_gong.accepted(ctx["attack"]) - {"targeted", "bounds", "epsilons"}))


def _known(key: str):
  """A callable of ctx: the names ctx[key] (a tuple; empty when unknown)."""
  return lambda ctx: tuple(ctx.get(key) or ())


# ---- the sections -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class Study(schema.Section):
  """study: the point classifiers compared (Tables 3-6) and the one region classification is
  built on."""
  point: str = setting(check=schema.Anything(),
                       doc="the point classifier region classification is built on (one of "
                           "study.classifiers)")
  classifiers: tuple = setting(check=schema.Names(_known("variants"), what="model variant",
                                                  among="models"),
                               doc="the point classifiers of Tables 3-6 (model variants)")
  batch_size: int = setting(check=schema.Count(),
                            doc="batch size of the point classifiers' predictions")

  @classmethod
  def validate(cls, c, path, values, ctx):
    if "classifiers" not in values or "point" not in values or c.failed_under(
        f"{path}.classifiers"):
      return
    if values["point"] not in values["classifiers"]:
      c.fail(f"{path}.point", f"must be one of study.classifiers "
             f"{tuple(values['classifiers'])}, got {values['point']!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Radius(schema.Section):
  """radius: Algorithm 1, the region classifier's radius learned on validation images (radii
  as fractions of the data range)."""
  initial: float = setting(check=schema.Real(lo=0, hi=1), doc="the first radius tried, r0")
  step: float = setting(check=schema.Real(lo=0, lo_open=True, hi=1),
                        doc="the radius grows by this step")
  num_samples: int = setting(check=schema.Count(), doc="m: samples of the region per image")
  seed: int = setting(check=schema.Int(lo=0), doc="PRNG seed of the region samples")
  validation_images: int | None = setting(
      None, check=schema.Count(at_most="validation", what="the validation split", optional=True),
      doc="the first this many validation images (None: all)")
  max_radius: float | None = setting(
      None, check=schema.Real(lo=0, lo_open=True, hi=1, optional=True),
      doc="the largest radius tried (None: no limit)")
  tolerance: float = setting(
      0.0, check=schema.Real(lo=0, hi=1),
      doc="the radius may cost this much validation accuracy below the point classifier's")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Region(schema.Section):
  """region: the deployed region classifier (a majority vote over noise in the region)."""
  num_samples: int = setting(check=schema.Count(), doc="m: noise samples of each vote")
  seed: int = setting(check=schema.Int(lo=0), doc="PRNG seed of the votes' noise")
  batch_size: int = setting(check=schema.Count(), doc="noisy inputs per forward pass")
  score_draws: int = setting(check=schema.Count(),
                             doc="independent noise draws at which the region rows are scored")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttackOptions(schema.Section):
  """evaluation.overrides.<attack>: any of the attack's settings (`cao_gong.settings`)."""
  extra_keys = staticmethod(_attack_keys)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EpsilonGrid(schema.Section):
  """evaluation.overrides.fgsm / .igsm: the attack's settings and which points of the epsilon
  grid k / 256 of the range it tries."""
  extra_keys = staticmethod(_attack_keys)
  max_epsilon: float | None = setting(
      None, check=schema.Real(lo=1 / 256, hi=1, optional=True),
      doc="the largest epsilon tried, a fraction of the range (None: the whole grid)")
  grid_stride: int | None = setting(
      None, check=schema.Count(at_most=256, what="the 256 grid points", optional=True),
      doc="every stride-th point of the grid (None: every point)")


def _override(key: str) -> Any:
  return setting(None, check=AttackSettings(OVERRIDES[key]),
                 doc=f"settings of {OVERRIDES[key]} over the released ones (None: none)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Overrides(schema.Section):
  """evaluation.overrides: settings of each base attack over its released defaults (a dict of
  the settings as written, or None)."""
  jsma: dict | None = _override("jsma")
  cw_l0: dict | None = _override("cw_l0")
  fgsm: dict | None = _override("fgsm")
  igsm: dict | None = _override("igsm")
  cw_linf: dict | None = _override("cw_linf")
  cw_l2: dict | None = _override("cw_l2")
  deepfool: dict | None = _override("deepfool")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Evaluation(schema.Section):
  """evaluation: the evaluated images and the attacks run on every point classifier."""
  num_images: int = setting(check=schema.Count(),
                            doc="images evaluated (at most the pool of test images)")
  seed: int = setting(check=schema.Int(lo=0), doc="seed of the images' draw")
  batch_size: int = setting(check=schema.Count(), doc="attack inputs per chunk")
  pool: int | None = setting(
      check=schema.Count(at_most="test", what="the test split", optional=True),
      doc="images are drawn among the first this many test images (None: all)")
  draw: str = setting(check=schema.Choice(protocol.DRAWS),
                      doc="which images may be drawn (protocol.DRAWS; 'standard': the paper's)")
  attacks: tuple = setting(check=schema.Names(ATTACKS, what="attack"),
                           doc="the attacks run on study.point")
  baseline_attacks: tuple = setting(check=schema.Names(ATTACKS, what="attack", nonempty=False),
                                    doc="the attacks run on the other classifiers")
  kappas: tuple = setting(check=Numbers(what="a tuple of confidences >= 0"),
                          doc="T-CW-L2 confidences of the high-confidence sweep (0: T-CW-L2)")
  kappa_classifiers: tuple = setting(
      check=schema.Names(_known("classifiers"), what="classifier", among="study.classifiers",
                         nonempty=False),
      doc="the classifiers the kappa sweep runs on")
  overrides: Overrides = setting(check=schema.Sub(Overrides),
                                 doc="the attacks' settings by base attack")

  @classmethod
  def validate(cls, c, path, values, ctx):
    n, pool = values.get("num_images"), values.get("pool")
    limit = pool if isinstance(pool, int) and pool > 0 else ctx.get("test")
    if "num_images" in values and not c.failed_under(f"{path}.num_images") and (
        limit is not None and limit >= 1 and n > limit):
      c.fail(f"{path}.num_images", f"must be at most {limit} (the pool of test images), got "
             f"{n!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Adapted(schema.Section):
  """adapted: Cao & Gong's -A attacks, x'' = clip(x + (1 + alpha)(x' - x))."""
  attacks: tuple = setting(check=schema.Names(ADAPTED, what="attack", nonempty=False),
                           doc="the attacks amplified (among evaluation.attacks)")
  alphas: tuple = setting(check=Numbers(what="a tuple of numbers in [0, inf)"),
                          doc="the amplifications alpha")

  @classmethod
  def validate(cls, c, path, values, ctx):
    evaluated, written = tuple(ctx.get("attacks") or ()), values.get("attacks")
    if not isinstance(written, (tuple, list)):
      return
    missing = [x for x in written if evaluated and x not in evaluated]
    if missing:
      c.fail(f"{path}.attacks", f"{missing} are not among evaluation.attacks {evaluated}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Adaptive(schema.Section):
  """adaptive: EOT-PGD through the region classifier's noise (beyond the paper), and
  AutoAttack's rand version against it."""
  epsilons: tuple = setting(check=Numbers(hi=1.0, what="a tuple of numbers in [0, 1.0)"),
                            doc="L-inf budgets, fractions of the data range")
  step_factor: float = setting(check=schema.Real(lo=0, lo_open=True),
                               doc="step size = step_factor * epsilon / num_steps")
  num_steps: int = setting(check=schema.Count(), doc="PGD steps")
  num_samples: int = setting(check=schema.Count(), doc="noise samples per gradient (EOT)")
  seed: int = setting(check=schema.Int(lo=0), doc="PRNG seed of the attack")
  batch_size: int = setting(check=schema.Count(), doc="attacked inputs per batch")
  autoattack: bool = setting(False, check=schema.Flag(),
                             doc="also AutoAttack-rand (APGD-CE, APGD-DLR, EOT over 20 draws of "
                             "the cube) untargeted at each epsilon")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Figures(schema.Section):
  """figures: Figure 2's vote histogram and the example grids (Figures 1, 5, 9)."""
  histogram_samples: int = setting(check=schema.Count(), doc="noise samples of Figure 2")
  seed: int = setting(check=schema.Int(lo=0), doc="PRNG seed of Figure 2's noise")
  grid_kappa: float = setting(check=schema.Real(lo=0), doc="T-CW-L2 confidence of the grid")
  grid_alpha: float = setting(check=schema.Real(lo=0), doc="alpha of the -A grid (Figure 9)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(shared.Trained):
  """The top level of a region-defense config."""
  study: Study = setting(check=schema.Sub(Study), doc="the compared classifiers")
  radius: Radius = setting(check=schema.Sub(Radius), doc="Algorithm 1")
  region: Region = setting(check=schema.Sub(Region), doc="the region classifier")
  evaluation: Evaluation = setting(check=schema.Sub(Evaluation), doc="images and attacks")
  adapted: Adapted = setting(check=schema.Sub(Adapted), doc="the -A attacks")
  adaptive: Adaptive = setting(check=schema.Sub(Adaptive), doc="EOT-PGD")
  figures: Figures = setting(check=schema.Sub(Figures), doc="the figures")
  note: Any = setting("", check=schema.Anything(), doc="free text appended to the report's "
                                                       "introduction")


SECTIONS = tuple(f.name for f in Config.fields())
REQUIRED = Config.required()
# this study's sections, checked in this order (each may feed ctx of the next)
_STUDY = ("study", "radius", "region", "evaluation", "adapted", "adaptive", "figures")


def _names(c, path: str, value) -> tuple:
  """`value` (a tuple of names) if no problem was reported at `path`, else ()."""
  ok = isinstance(value, (tuple, list)) and not c.failed_under(path)
  return tuple(value) if ok else ()


def validate(config, *, sizes: dict[str, int] | None = None,
             variants: tuple[str, ...] | None = None) -> None:
  """Raises ConfigError listing every problem of a region-defense config. `sizes`: the split
  sizes if known (else read from the data set); `variants`: the model variants to check (None:
  all)."""
  c = schema.Checker()
  top = c.keys("config", config, SECTIONS, required=REQUIRED)
  _, sizes, names = shared.check_trained(c, top, sizes, variants)
  ctx: dict[str, Any] = {**sizes, "variants": names}
  fields = {f.name: f.metadata["check"] for f in Config.fields()}
  for name in _STUDY:
    if top.get(name) is not None:
      fields[name](c, name, top[name], ctx)
    if name == "study":
      ctx["classifiers"] = _names(c, "study.classifiers", _get(top, "study", "classifiers"))
    elif name == "evaluation":
      ctx["attacks"] = _names(c, "evaluation.attacks", _get(top, "evaluation", "attacks"))
  if c.problems:
    raise ConfigError(c.problems)


def _get(top: dict, section: str, key: str):
  cfg = top.get(section)
  return cfg[key] if hasattr(cfg, "keys") and key in cfg.keys() else None
