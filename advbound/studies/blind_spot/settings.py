"""The blind-spot study's settings, each declared once (`advbound.config.schema`): the study's
sections `Study`, `Distance`, `Divergence`, `Attack` (with `CW`), `Figures`, and the top level
`Config` (which sections a config holds, and its free-text `note`).

`validate(config)` checks a config before anything runs and raises one `ConfigError` listing
every problem by full path: data, model and model variants as the other studies check them
(`check_trained`), then this study's sections against the data (split sizes, the pixel span,
the class count, the variants' names) and against each other (the study's test images bound
the attacked and the divergence's counts; Figure 5's pair must lie on the study's grid).
Consumers read settings through `<Section>.of(cfg)` and never restate a default.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Mapping

from advbound.attacks import cw_linf
from advbound.config import schema
from advbound.config.schema import ConfigError
from advbound.training import settings as shared

STARTS = ("noise", "grey")  # protocol.start
INITS = ("random", "pca")  # split_divergence.INITS (kept here: validation imports no sklearn)

__all__ = ["Attack", "Config", "CW", "ConfigError", "Distance", "Divergence", "Figures",
           "Study", "validate"]


def _variants(ctx: Mapping[str, Any]) -> tuple:
  return tuple(ctx.get("variants") or ())


# ---- checks of one value particular to this study --------------------------------------------

def _is_number(v) -> bool:
  return not isinstance(v, bool) and isinstance(v, (int, float))


@dataclasses.dataclass(frozen=True)
class Alphas(schema.Check):
  """A non-empty tuple of distinct scale factors in (0, 1], the first 1.0 (the untransformed
  test set)."""

  def __call__(self, c, path, value, ctx):
    if (not isinstance(value, (tuple, list)) or not value
        or any(not _is_number(a) or not 0 < a <= 1 for a in value)):
      return c.fail(path, f"must be a non-empty tuple of scale factors in (0, 1], got "
                    f"{value!r}")
    if float(value[0]) != 1.0:
      return c.fail(path, f"must start with 1.0 (the untransformed test set that Table 1, "
                    f"Figures 1-3 and Figure 5 compare against), got {tuple(value)}")
    if len(set(value)) != len(value):
      return c.fail(path, f"names a scale factor twice: {tuple(value)}")
    return True

  def describe(self):
    return "tuple of scale factors in (0, 1], the first 1.0"


@dataclasses.dataclass(frozen=True)
class Pair(schema.Check):
  """(alpha, beta), two numbers, or None."""

  def __call__(self, c, path, value, ctx):
    if value is None:
      return True
    if (not isinstance(value, (tuple, list)) or len(value) != 2
        or any(not _is_number(v) for v in value)):
      return c.fail(path, f"must be (alpha, beta), got {value!r}")
    return True

  def describe(self):
    return "(alpha, beta) or None"


# ---- the sections -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class Study(schema.Section):
  """The attacked model, the distance extractors, the budget, the grid, the test images."""
  attacked: str = schema.setting(
      check=schema.Choice(_variants),
      doc="the model variant attacked (Tables 1-3, Figures 1-5): one of config.models")
  extractors: tuple = schema.setting(
      check=schema.Names(_variants, what="model variant", among="models"),
      doc="the model variants whose embeddings measure the distance to the training set")
  epsilon: float = schema.setting(
      check=schema.Real(lo=0, lo_open=True, hi="span"),
      doc="the L-inf budget of a success, on the data's pixel scale (at most its span)")
  alphas: tuple = schema.setting(
      check=Alphas(),
      doc="the scale factors alpha of the scale-and-shift grid, each with its betas")
  batch_size: int = schema.setting(
      check=schema.Count(), doc="images per compiled forward pass (predictions, embeddings)")
  test_images: int | None = schema.setting(
      check=schema.Count(at_most="test", what="the test split", optional=True),
      doc="the first test images used throughout (None: all of the test split)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Distance(schema.Section):
  """The distance of a test image to the training set and the bins of Figures 1-3."""
  k: int = schema.setting(
      check=schema.Count(), doc="nearest training embeddings whose mean distance is taken")
  query_chunk: int = schema.setting(
      check=schema.Count(), doc="test embeddings per kNN chunk (memory, not results)")
  reference_block: int = schema.setting(
      check=schema.Count(), doc="training embeddings per kNN block (memory, not results)")
  bins: int = schema.setting(check=schema.Count(), doc="distance bins of Figures 1-3")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Divergence(schema.Section):
  """Table 1's train/test divergence: per-class t-SNE of equal counts, KDE KL, its spreads."""
  model: str = schema.setting(
      check=schema.Choice(_variants), doc="the model variant whose embeddings are projected")
  train_per_class: int = schema.setting(
      check=schema.Int(lo=3),
      doc="training embeddings drawn per class (exactly; classes x count <= the training split)")
  test_per_class: int = schema.setting(
      check=schema.Int(lo=3),
      doc="test embeddings drawn per class (exactly; classes x count <= the study's test images)")
  perplexity: float = schema.setting(
      check=schema.Real(lo=1), doc="t-SNE perplexity (capped at (n - 1) / 3 per class)")
  max_iter: int = schema.setting(
      check=schema.Int(lo=250), doc="t-SNE iterations (scikit-learn's minimum is 250)")
  init: str = schema.setting(check=schema.Choice(INITS), doc="t-SNE initialisation")
  grid: int = schema.setting(check=schema.Int(lo=2), doc="KL integration grid points per axis")
  seed: int = schema.setting(
      check=schema.Int(lo=0), doc="seed of the draws, the t-SNE maps and the resamples")
  seeds: int = schema.setting(
      check=schema.Count(), doc="t-SNE maps of the same points (the KL's spread over maps)")
  resamples: int = schema.setting(
      check=schema.Int(lo=10), doc="bootstrap resamples and permutations of the first map")

  @classmethod
  def validate(cls, c, path, values, ctx):
    """Equal per-class counts: each count times the classes must fit its split (the study's
    test images for the test count); a class short of its count is caught when the data is
    read."""
    num_classes = ctx.get("num_classes")
    for key, size, split in (("train_per_class", ctx.get("train"), "the training split"),
                             ("test_per_class", ctx.get("test_images"),
                              "the study's test images")):
      value = values.get(key)
      if key not in values or c.failed_under(f"{path}.{key}"):
        continue
      if num_classes and size and value * num_classes > size:
        c.fail(f"{path}.{key}", f"{value} per class x {num_classes} classes exceeds the "
               f"{size} images of {split}")


_CW_DEFAULTS = {k: p.default for k, p in
                inspect.signature(cw_linf.carlini_wagner_linf).parameters.items()}


def _cw(key: str, check: schema.Check, doc: str):
  """A CW setting whose default is the attack's own (cw_linf.carlini_wagner_linf)."""
  return schema.setting(_CW_DEFAULTS[key], check=check, doc=doc)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CW(schema.Section):
  """Carlini & Wagner's L-inf attack (advbound.attacks.cw_linf); defaults: the attack's own."""
  max_iterations: int | None = _cw(
      "max_iterations", schema.Count(optional=True), "optimiser steps per constant c")
  learning_rate: float | None = _cw(
      "learning_rate", schema.Real(lo=0, lo_open=True, optional=True), "Adam's learning rate")
  initial_const: float | None = _cw(
      "initial_const", schema.Real(lo=0, lo_open=True, optional=True),
      "the first constant c (below largest_const)")
  largest_const: float | None = _cw(
      "largest_const", schema.Real(lo=0, lo_open=True, optional=True),
      "the constant c at which an image is given up")
  const_factor: float | None = _cw(
      "const_factor", schema.Real(lo=1, lo_open=True, optional=True),
      "the factor c grows by after a failure")
  decrease_factor: float | None = _cw(
      "decrease_factor", schema.Real(lo=0, hi=1, lo_open=True, hi_open=True, optional=True),
      "the factor tau shrinks by after a success")
  reduce_const: bool = _cw("reduce_const", schema.Flag(), "halve c after a success")
  abort_early: bool = _cw("abort_early", schema.Flag(),
                          "stop a constant's optimisation at its first success")

  @classmethod
  def validate(cls, c, path, values, ctx):
    lo, hi = values.get("initial_const"), values.get("largest_const")
    if _is_number(lo) and _is_number(hi) and lo >= hi:
      c.fail(f"{path}.initial_const", f"must be below {path}.largest_const ({hi}), got {lo!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Attack(schema.Section):
  """C&W L-inf on a seeded draw of the study's test images, from each start, at every pair."""
  num_images: int = schema.setting(
      check=schema.Count(at_most="test_images",
                         what="the test images of the study (study.test_images)"),
      doc="test images drawn (seeded) and attacked at every (alpha, beta)")
  starts: tuple = schema.setting(
      check=schema.Names(STARTS, what="start"), doc="the attack's starts (protocol.start)")
  noise_std: float = schema.setting(
      check=schema.Real(lo=0), doc="std of the noisy start's Gaussian noise (data scale)")
  seed: int = schema.setting(check=schema.Int(lo=0), doc="seed of the draw and the noise")
  batch_size: int = schema.setting(
      check=schema.Count(), doc="images per attacked (resumable) part")
  stop_at_threshold: bool = schema.setting(
      check=schema.Flag(),
      doc="end an image's search once within alpha * epsilon (distortion no longer minimal)")
  cw: CW = schema.setting(check=schema.Sub(CW), doc="the C&W attack's settings")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Figures(schema.Section):
  """Figure 4's and Figure 5's settings."""
  histogram_pair: tuple | None = schema.setting(
      check=Pair(), doc="Figure 5's (alpha, beta), a transformed pair of the grid (None: none)")
  examples: int = schema.setting(check=schema.Count(), doc="Figure 4's number of test images")
  histogram_bins: int = schema.setting(check=schema.Count(), doc="Figure 5's histogram bins")

  @classmethod
  def validate(cls, c, path, values, ctx):
    pair, alphas = values.get("histogram_pair"), ctx.get("alphas")
    if (pair is None or c.failed_under(f"{path}.histogram_pair")
        or not isinstance(alphas, (tuple, list)) or not all(_is_number(a) for a in alphas)):
      return
    from advbound.analysis import scale_shift  # pylint: disable=g-import-not-at-top
    grid = [tuple(map(float, p)) for p in scale_shift.grid(alphas)]
    if tuple(map(float, pair)) not in grid[1:]:
      c.fail(f"{path}.histogram_pair", f"must be a transformed pair of the grid {grid[1:]}, "
             f"got {tuple(pair)}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(shared.Trained):
  """A blind-spot config's top level: its sections and the note of its departures."""
  study: Study = schema.setting(check=schema.Sub(Study), doc="the study's models, budget, grid")
  distance: Distance = schema.setting(check=schema.Sub(Distance),
                                      doc="distances to the training set")
  divergence: Divergence = schema.setting(check=schema.Sub(Divergence),
                                          doc="Table 1's train/test divergence")
  attack: Attack = schema.setting(check=schema.Sub(Attack), doc="the C&W L-inf attack")
  figures: Figures = schema.setting(check=schema.Sub(Figures), doc="Figures 4 and 5")
  note: Any = schema.setting("", doc="the config's departures from the paper (in the report)")


def validate(config, *, sizes: dict[str, int] | None = None) -> None:
  """Raises ConfigError listing every problem of a blind-spot config.

  Args:
    config: the study's ConfigDict (top-level keys: the fields of `Config`).
    sizes: {"train", "validation", "test"} split sizes; default: read from config.data
      (labels only).
  """
  c = schema.Checker()
  fields = tuple(f.name for f in Config.fields())
  top = c.keys("config", config, fields, required=Config.required())
  info, sizes, variants = shared.check_trained(c, top, sizes)
  ctx = dict(variants=variants, span=info.get("span"), num_classes=info.get("num_classes"),
             train=sizes.get("train"), test=sizes.get("test"))
  study = Study.check(c, "study", top["study"], ctx) if "study" in top else {}
  test_images = None if c.failed_under("study.test_images") else study.get("test_images")
  ctx.update(test_images=test_images or sizes.get("test"), alphas=study.get("alphas"))
  for name, section in (("distance", Distance), ("divergence", Divergence), ("attack", Attack),
                        ("figures", Figures)):
    if name in top:
      section.check(c, name, top[name], ctx)
  models = top.get("models")
  for v in (models.keys() if hasattr(models, "keys") else ()):
    entry = models[v]
    if shared.is_imported(entry) and hasattr(entry.source, "get") and not entry.source.get(
        "embedding"):
      c.fail(f"models.{v}.source.embedding", "the study measures distances between "
             "embeddings: name the layer whose input is the model's embedding (e.g. its last "
             "linear layer)")
  if c.problems:
    raise ConfigError(c.problems)
