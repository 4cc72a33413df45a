"""Validates a region-defense config before anything runs: every problem at once, as one
`schema.ConfigError` (data, model and model variants as the other studies check them,
then this study's sections)."""

from __future__ import annotations

from advbound.attacks import cao_gong
from advbound.config.schema import Checker, ConfigError
from advbound.training import settings as shared
from advbound.studies.region_defense import protocol

SECTIONS = ("data", "model", "models", "study", "radius", "region", "evaluation", "adapted",
            "adaptive", "figures", "note")
REQUIRED = SECTIONS[:-1]
ATTACKS = ("T-JSMA", "T-CW-L0", "T-FGSM", "T-IGSM", "T-CW-Linf", "T-CW-L2", "DeepFool")
OVERRIDES = {"jsma": "T-JSMA", "cw_l0": "T-CW-L0", "fgsm": "T-FGSM", "igsm": "T-IGSM",
             "cw_linf": "T-CW-Linf", "cw_l2": "T-CW-L2", "deepfool": "DeepFool"}

__all__ = ["ConfigError", "validate"]


def validate(config, *, sizes: dict[str, int] | None = None) -> None:
  """Raises ConfigError listing every problem of a region-defense config."""
  c = Checker()
  top = c.keys("config", config, SECTIONS, required=REQUIRED)
  _, sizes, variants = shared.check_trained(c, top, sizes)
  classifiers = _check_study(c, top.get("study"), variants)
  _check_radius(c, top.get("radius"), sizes)
  _check_region(c, top.get("region"))
  attacks = _check_evaluation(c, top.get("evaluation"), sizes, classifiers)
  _check_adapted(c, top.get("adapted"), attacks)
  _check_adaptive(c, top.get("adaptive"))
  _check_figures(c, top.get("figures"))
  if c.problems:
    raise ConfigError(c.problems)


def _check_study(c, cfg, variants) -> tuple:
  if cfg is None:
    return ()
  s = c.keys("study", cfg, ("point", "classifiers", "batch_size"),
             required=("point", "classifiers", "batch_size"))
  ok = c.names("study.classifiers", s.get("classifiers"), variants, what="model variant",
               among="models")
  if ok and s.get("point") not in s["classifiers"]:
    c.fail("study.point", f"must be one of study.classifiers {tuple(s['classifiers'])}, got "
           f"{s.get('point')!r}")
  c.count("study.batch_size", s.get("batch_size"))
  return tuple(s.get("classifiers") or ()) if ok else ()


def _check_radius(c, cfg, sizes) -> None:
  if cfg is None:
    return
  r = c.keys("radius", cfg, ("initial", "step", "num_samples", "seed", "validation_images",
                             "max_radius", "tolerance"),
             required=("initial", "step", "num_samples", "seed"))
  c.number("radius.initial", r.get("initial"), lo=0, hi=1)
  c.number("radius.step", r.get("step"), lo=0, lo_open=True, hi=1)
  c.count("radius.num_samples", r.get("num_samples"))
  c.number("radius.seed", r.get("seed"), lo=0, integer=True)
  c.count("radius.validation_images", r.get("validation_images"), sizes.get("validation"),
          "the validation split", optional=True)
  c.number("radius.max_radius", r.get("max_radius"), lo=0, lo_open=True, hi=1, optional=True)
  c.number("radius.tolerance", r.get("tolerance", 0.0), lo=0, hi=1)


def _check_region(c, cfg) -> None:
  if cfg is None:
    return
  keys = ("num_samples", "seed", "batch_size", "score_draws")
  r = c.keys("region", cfg, keys, required=keys)
  c.count("region.num_samples", r.get("num_samples"))
  c.count("region.score_draws", r.get("score_draws"))
  c.number("region.seed", r.get("seed"), lo=0, integer=True)
  c.count("region.batch_size", r.get("batch_size"))


def _check_evaluation(c, cfg, sizes, classifiers) -> tuple:
  if cfg is None:
    return ()
  keys = ("num_images", "seed", "batch_size", "pool", "draw", "attacks", "baseline_attacks",
          "kappas", "kappa_classifiers", "overrides")
  e = c.keys("evaluation", cfg, keys, required=keys)
  if e.get("draw") not in protocol.DRAWS:
    c.fail("evaluation.draw", f"must be one of {protocol.DRAWS}, got {e.get('draw')!r}")
  pool = e.get("pool")
  c.count("evaluation.pool", pool, sizes.get("test"), "the test split", optional=True)
  at_most = pool if isinstance(pool, int) and pool > 0 else sizes.get("test")
  c.count("evaluation.num_images", e.get("num_images"), at_most, "the pool of test images")
  c.number("evaluation.seed", e.get("seed"), lo=0, integer=True)
  c.count("evaluation.batch_size", e.get("batch_size"))
  ok = c.names("evaluation.attacks", e.get("attacks"), ATTACKS, what="attack")
  c.names("evaluation.baseline_attacks", e.get("baseline_attacks"), ATTACKS, what="attack",
          nonempty=False)
  kappas = e.get("kappas")
  if not isinstance(kappas, (tuple, list)) or any(
      isinstance(k, bool) or not isinstance(k, (int, float)) or k < 0 for k in kappas):
    c.fail("evaluation.kappas", f"must be a tuple of confidences >= 0, got {kappas!r}")
  c.names("evaluation.kappa_classifiers", e.get("kappa_classifiers"), classifiers,
          what="classifier", among="study.classifiers", nonempty=False)
  o = c.keys("evaluation.overrides", e.get("overrides"), tuple(OVERRIDES))
  for key, settings in o.items():
    if not hasattr(settings, "keys"):
      c.fail(f"evaluation.overrides.{key}", f"must be a section, got {settings!r}")
      continue
    allowed = cao_gong.accepted(OVERRIDES[key]) - {"targeted", "bounds", "epsilons"}
    if key in ("fgsm", "igsm"):
      # the grid k / 256 of the range: every grid_stride-th point, up to max_epsilon
      allowed |= {"max_epsilon", "grid_stride"}
      c.number(f"evaluation.overrides.{key}.max_epsilon", settings.get("max_epsilon"),
               lo=1 / 256, hi=1, optional=True)
      c.count(f"evaluation.overrides.{key}.grid_stride", settings.get("grid_stride"), 256,
              "the 256 grid points", optional=True)
    c.keys(f"evaluation.overrides.{key}", settings, tuple(sorted(allowed)))
  return tuple(e["attacks"]) if ok else ()


def _check_adapted(c, cfg, attacks) -> None:
  if cfg is None:
    return
  a = c.keys("adapted", cfg, ("attacks", "alphas"), required=("attacks", "alphas"))
  c.names("adapted.attacks", a.get("attacks"), ("T-CW-L0", "T-CW-L2", "T-CW-Linf"),
          what="attack", nonempty=False)
  missing = [x for x in a.get("attacks") or () if attacks and x not in attacks]
  if missing:
    c.fail("adapted.attacks", f"{missing} are not among evaluation.attacks {attacks}")
  _fractions(c, "adapted.alphas", a.get("alphas"), hi=None)


def _fractions(c, path, value, hi=1.0) -> None:
  if not isinstance(value, (tuple, list)) or any(
      isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0
      or (hi is not None and v > hi) for v in value):
    c.fail(path, f"must be a tuple of numbers in [0, {hi if hi is not None else 'inf'}), "
           f"got {value!r}")


def _check_adaptive(c, cfg) -> None:
  if cfg is None:
    return
  keys = ("epsilons", "step_factor", "num_steps", "num_samples", "seed", "batch_size")
  a = c.keys("adaptive", cfg, keys, required=keys)
  _fractions(c, "adaptive.epsilons", a.get("epsilons"))
  c.number("adaptive.step_factor", a.get("step_factor"), lo=0, lo_open=True)
  c.count("adaptive.num_steps", a.get("num_steps"))
  c.count("adaptive.num_samples", a.get("num_samples"))
  c.number("adaptive.seed", a.get("seed"), lo=0, integer=True)
  c.count("adaptive.batch_size", a.get("batch_size"))


def _check_figures(c, cfg) -> None:
  if cfg is None:
    return
  keys = ("histogram_samples", "seed", "grid_kappa", "grid_alpha")
  f = c.keys("figures", cfg, keys, required=keys)
  c.count("figures.histogram_samples", f.get("histogram_samples"))
  c.number("figures.seed", f.get("seed"), lo=0, integer=True)
  c.number("figures.grid_kappa", f.get("grid_kappa"), lo=0)
  c.number("figures.grid_alpha", f.get("grid_alpha"), lo=0)
