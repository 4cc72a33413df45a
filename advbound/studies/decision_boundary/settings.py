"""He et al.'s study's config, declared once (`advbound.config.schema`): its own sections
(`Attack` with its `CwOverrides`, `Boundary`, `Region`, `Detect`) beside the shared ones
(`advbound.training.settings`: data, model, models, eval).

`validate(config)` checks a whole config before the first stage runs and raises one
`ConfigError` listing every problem, by full path: every key against its declaration, the
attack names, the counts against the data set's split sizes (read cheaply: labels only), the
magnitudes against the data's range, and the model against the data (an abstract forward pass).
A stage run alone needs only some sections (`STAGE_SECTIONS`); those present beyond them are
checked too.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Iterable

from advbound import boundary as boundary_lib
from advbound.attacks import presets
from advbound.config import schema
from advbound.config.schema import Checker, ConfigError, setting
from advbound.training import settings as shared

__all__ = ["Attack", "Boundary", "Config", "ConfigError", "CwOverrides", "Detect", "Region",
           "SECTIONS", "STAGE_SECTIONS", "TRAIN_SECTIONS", "validate"]


def _attack_names(ctx) -> tuple[str, ...]:
  """The attacks of attack.names when they passed (else every preset)."""
  return ctx.get("attacks") or presets.NAMES


@dataclasses.dataclass(frozen=True, kw_only=True)
class CwOverrides(schema.Section):
  """Overrides of the CW-based attacks' paper settings (advbound.attacks.presets); a key not
  written keeps each preset's own value (None below: not overridden)."""
  binary_search_steps: int | None = setting(None, check=schema.Count(),
                                            doc="binary-search steps over the constant c")
  max_iterations: int | None = setting(None, check=schema.Count(),
                                       doc="Adam iterations per binary-search step")
  learning_rate: float | None = setting(None, check=schema.Real(lo=0, lo_open=True),
                                        doc="Adam's learning rate")
  initial_const: float | None = setting(None, check=schema.Real(lo=0, lo_open=True),
                                        doc="the first constant c of the binary search")
  abort_early: bool | None = setting(None, check=schema.Flag(),
                                     doc="stop an image's iterations once the loss stalls")
  abort_early_scope: str | None = setting(None, check=schema.Choice(("example", "batch")),
                                          doc="abort_early judged per example or per batch")
  distortion_weight: float | None = setting(None, check=schema.Real(lo=0, lo_open=True),
                                            doc="weight of the distortion term of the loss")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Attack(schema.Section):
  """The attack study: the named attacks on num_images seeded test images that every model
  classifies correctly, drawn among the first `pool` test images."""
  names: tuple = setting(check=schema.Names(presets.NAMES, what="attack"),
                         doc="the attacks (advbound.attacks.presets.NAMES)")
  num_images: int = setting(check=schema.Count(),
                            doc="attacked images (at most the pool, or the test split)")
  seed: int = setting(check=schema.Int(lo=0), doc="PRNG seed of the draw of the images")
  batch_size: int = setting(check=schema.Count(), doc="images per attack batch")
  pool: int | None = setting(None, check=schema.Count(at_most="test", optional=True),
                             doc="draw among the first this many test images (None: all)")
  table_images: int | None = setting(None, check=schema.Count(optional=True),
                                     doc="Tables 1 and 2 report on the first this many "
                                     "attacked images (None: all)")
  cw: CwOverrides = setting(check=schema.Sub(CwOverrides),
                            doc="overrides of the CW-based attacks' settings")

  @classmethod
  def validate(cls, c, path, values, ctx):
    pool, n = values.get("pool"), values.get("num_images")
    pool_ok = pool is not None and not c.failed_under(f"{path}.pool")
    limit = pool if pool_ok else ctx.get("test")
    what = f"{path}.pool" if pool_ok else "the test split"
    n_ok = not c.failed_under(f"{path}.num_images") and isinstance(n, numbers.Integral)
    if n_ok and limit is not None and limit >= 1 and n > limit:
      c.fail(f"{path}.num_images", f"must be at most {limit} ({what}), got {n!r}")
      n_ok = False
    table = values.get("table_images")
    if (n_ok and table is not None and not c.failed_under(f"{path}.table_images")
        and table > n):
      c.fail(f"{path}.table_images", f"must be at most {n} ({path}.num_images), got {table!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Boundary(schema.Section):
  """The boundary study: distances to the decision boundary along random orthogonal directions
  on the grid step, 2*step, ..., max_distance."""
  num_directions: int = setting(
      check=schema.Count(at_most="pixels", what="the number of pixel values; directions are "
                         "mutually orthogonal"),
      doc="random orthogonal directions per image")
  both_signs: bool = setting(check=schema.Flag(), doc="also search along each negated direction")
  seed: int = setting(check=schema.Int(lo=0), doc="PRNG seed of the directions")
  step: float = setting(check=schema.Real(lo=0, lo_open=True),
                        doc="the grid step (at most max_distance)")
  max_distance: float = setting(check=schema.Real(lo=0, lo_open=True, hi="span"),
                                doc="the farthest distance searched")
  method: str = setting(check=schema.Choice(boundary_lib.METHODS),
                        doc="the search (advbound.boundary.METHODS)")
  batch_size: int = setting(check=schema.Count(), doc="points per forward batch")
  chunk_images: int = setting(check=schema.Count(), doc="images per saved chunk")
  region_radius: float = setting(check=schema.Real(lo=0, lo_open=True, hi="span"),
                                 doc="the region classifier's cube half-width (the figures' "
                                 "reference line)")
  examples: tuple = setting(
      check=schema.Names(_attack_names, what="attack", among="attack.names"),
      doc="the attacks whose outputs are analysed (among attack.names)")

  @classmethod
  def validate(cls, c, path, values, ctx):
    step, dist = values.get("step"), values.get("max_distance")
    if (not c.failed_under(f"{path}.step") and not c.failed_under(f"{path}.max_distance")
        and step > dist):
      c.fail(f"{path}.step", f"{step!r} is larger than {path}.max_distance {dist!r}: the grid "
             "would be empty")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Region(schema.Section):
  """Region classification (Cao & Gong): its radius learned by Algorithm 1 on validation
  images, its certification, and the measurement study."""
  radius: float = setting(check=schema.Real(lo=0, lo_open=True, hi="span"),
                          doc="the cube half-width of Table 2 (Cao & Gong's learned value)")
  step: float = setting(check=schema.Real(lo=0, lo_open=True, hi="span"),
                        doc="Algorithm 1's radius step")
  initial: float = setting(check=schema.Real(lo=0, hi="span"), doc="Algorithm 1's first radius")
  num_samples: int = setting(check=schema.Count(), doc="noise samples per region prediction")
  max_radius: float | None = setting(None, check=schema.Real(lo=0, lo_open=True, hi="span",
                                                             optional=True),
                                     doc="Algorithm 1 stops here (None: the data's range)")
  validation_images: int = setting(check=schema.Count(at_most="validation"),
                                   doc="Algorithm 1 learns the radius on the first this many "
                                   "validation images")
  seed: int = setting(check=schema.Int(lo=0), doc="PRNG seed of the noise")
  batch_size: int = setting(check=schema.Count(), doc="points per forward batch")
  attacks: tuple = setting(check=schema.Names(_attack_names, what="attack", among="attack.names"),
                           doc="the attacks whose examples Table 2 classifies")
  certify_sigma: float = setting(check=schema.Real(lo=0, lo_open=True, hi="span"),
                                 doc="certification: the Gaussian noise's sigma")
  certify_select: int = setting(check=schema.Count(),
                                doc="certification: samples selecting the class")
  certify_estimate: int = setting(check=schema.Count(),
                                  doc="certification: samples estimating its probability")
  certify_alpha: float = setting(check=schema.Real(lo=0, hi=1, lo_open=True, hi_open=True),
                                 doc="certification: the one-sided level")
  measurement_samples: int = setting(check=schema.Count(),
                                     doc="noise samples per image of the measurement study")
  measurement_targets: int = setting(9, check=schema.Count(),
                                     doc="the measurement study's targeted CW examples: toward "
                                     "this many other classes, those the model ranks highest on "
                                     "the image (9: every other class of a 10-class data set)")

  @classmethod
  def validate(cls, c, path, values, ctx):
    top, initial = values.get("max_radius"), values.get("initial")
    if (top is not None and not c.failed_under(f"{path}.max_radius")
        and not c.failed_under(f"{path}.initial") and top < initial):
      c.fail(f"{path}.max_radius", f"{top!r} is below {path}.initial {initial!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Detect(schema.Section):
  """He et al.'s boundary classifier on normalized distances (d - offset) / scale. ctx
  "examples": boundary.examples when they passed; "attack_images": attack.num_images."""
  offset: float = setting(check=schema.Real(), doc="subtracted from each distance")
  scale: float = setting(check=schema.Real(lo=0, lo_open=True), doc="divides each distance")
  batch_size: int = setting(check=schema.Count(),
                            doc="benign and adversarial inputs (each) per step")
  steps: int = setting(check=schema.Count(), doc="Adam steps")
  learning_rate: float = setting(check=schema.Real(lo=0, lo_open=True), doc="Adam's rate")
  train_fraction: float = setting(check=schema.Real(lo=0, hi=1, lo_open=True, hi_open=True),
                                  doc="the first this fraction of the attacked images train it, "
                                  "the rest test it")
  seed: int = setting(check=schema.Int(lo=0), doc="PRNG seed of the weights and batches")
  attacks: tuple = setting(
      check=schema.Names(lambda ctx: ctx.get("examples") or presets.NAMES, what="attack",
                         among="boundary.examples"),
      doc="the attacks whose examples it is tested on (among boundary.examples)")
  train_attacks: tuple = setting(check=schema.Names(presets.NAMES, what="attack"),
                                 doc="the attacks whose examples train it (among detect.attacks)")

  @classmethod
  def validate(cls, c, path, values, ctx):
    n, fraction = ctx.get("attack_images"), values.get("train_fraction")
    if (not c.failed_under(f"{path}.train_fraction") and isinstance(n, numbers.Integral)
        and n >= 1):
      cut = int(round(fraction * n))
      if not 0 < cut < n:
        c.fail(f"{path}.train_fraction", f"{fraction!r} of attack.num_images {n} leaves {cut} "
               f"image(s) to train and {n - cut} to test; both need at least one")
    if not (c.failed_under(f"{path}.attacks") or c.failed_under(f"{path}.train_attacks")):
      c.names(f"{path}.train_attacks", values.get("train_attacks"),
              tuple(values.get("attacks")), what="attack", among=f"{path}.attacks")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(shared.Trained):
  """The top level of He et al.'s config: its sections."""
  eval: Any = setting(doc="clean and PGD test accuracy of every variant (`eval` above)")
  attack: Attack = setting(check=schema.Sub(Attack), doc="Table 1: the attacks and images")
  boundary: Boundary = setting(check=schema.Sub(Boundary),
                               doc="boundary distances along random directions (Figures 1-3)")
  region: Region = setting(check=schema.Sub(Region),
                           doc="point vs region classification (Table 2), certification")
  detect: Detect = setting(check=schema.Sub(Detect), doc="the boundary classifier (Tables 3, 4)")
  note: Any = setting("", check=schema.Str(), doc="free text appended to the report's "
                      "introduction (e.g. the config's departures from the paper)")


SECTIONS = tuple(f.name for f in Config.fields())
REQUIRED = Config.required()
# the sections each stage run alone needs (experiments.train, .attack, .boundary, .region)
TRAIN_SECTIONS = ("data", "model", "models", "eval")
STAGE_SECTIONS = {"train": TRAIN_SECTIONS, "attack": TRAIN_SECTIONS + ("attack",),
                  "boundary": TRAIN_SECTIONS + ("attack", "boundary"),
                  "region": TRAIN_SECTIONS + ("attack", "region"), "study": REQUIRED}


def _passed(c: Checker, path: str, cfg, key: str) -> bool:
  """Whether section `cfg` at `path` holds `key` and it passed its check."""
  return hasattr(cfg, "keys") and key in cfg.keys() and not c.failed_under(f"{path}.{key}")


def validate(config, *, variants: Iterable[str] | None = None,
             sizes: dict[str, int] | None = None, required: Iterable[str] = REQUIRED) -> None:
  """Raises ConfigError listing every problem of `config` (a ConfigDict of He et al.'s study).

  Args:
    config: the study config (sections among `SECTIONS`; every section present is checked).
    variants: the model variants the run is restricted to (--only); each must exist.
    sizes: {"train", "validation", "test"} split sizes; default `data.split_sizes` of
      config.data (cheap: no images are read).
    required: the sections the caller needs (e.g. training alone: `TRAIN_SECTIONS`).
  """
  c = Checker()
  top = c.keys("config", config, SECTIONS, required=tuple(required))
  info, sizes, _ = shared.check_trained(c, top, sizes, variants)
  ctx = shared.data_ctx(info, sizes)
  if top.get("eval") is not None:
    shared.Eval.check(c, "eval", top["eval"], ctx)
  attack = top.get("attack")
  if attack is not None:
    Attack.check(c, "attack", attack, ctx)
    if _passed(c, "attack", attack, "names"):
      ctx["attacks"] = tuple(attack["names"])
    if hasattr(attack, "get"):
      ctx["attack_images"] = attack.get("num_images")
  if top.get("boundary") is not None:
    Boundary.check(c, "boundary", top["boundary"], ctx)
    if _passed(c, "boundary", top["boundary"], "examples"):
      ctx["examples"] = tuple(top["boundary"]["examples"])
  if top.get("region") is not None:
    Region.check(c, "region", top["region"], ctx)
  if top.get("detect") is not None:
    Detect.check(c, "detect", top["detect"], ctx)
  c.raise_if_any()
