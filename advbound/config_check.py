"""Validates a whole study config before the first stage runs; every problem at once.

`validate(config)` checks every key against the schema of the sections the studies read
(unknown keys are rejected with their full path), every value against its type and range or
choices, the names of attacks, models and model variants, the counts against the data set's
split sizes (read cheaply: labels only), the magnitudes against the data set's bounds, and the
model against the data (an abstract forward pass, no weights). All problems are collected and
raised together as one `ConfigError`, so a bad setting is found in seconds, not when its stage
is reached hours into a run.
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Iterable

import jax
import numpy as np
from flax import nnx

from advbound import boundary as boundary_lib
from advbound import data as data_lib
from advbound.training import guard as guard_lib
from advbound import models as models_lib
from advbound.attacks import presets

SECTIONS = ("data", "model", "models", "eval", "attack", "boundary", "region", "detect")

# Keys of config.attack.cw that every CW-based preset accepts as an override.
CW_OVERRIDES = ("binary_search_steps", "max_iterations", "learning_rate", "initial_const",
                "abort_early", "abort_early_scope", "distortion_weight")
TRAIN_KEYS = ("seed", "num_steps", "batch_size", "optimizer", "learning_rate", "momentum",
              "nesterov", "weight_decay", "schedule", "schedule_boundaries", "schedule_factors",
              "warmup_fraction", "augment", "adversarial", "attack", "log_every",
              "checkpoint_every")
# optional train keys: defensive distillation (Papernot et al.; Cao & Gong's baseline)
TRAIN_OPTIONAL = ("temperature", "distill_from", "augment_from", "augment_examples",
                  "snapshot_every", "init_from",
                  # fast recipes (configs/cifar_fast.py): mixed precision, label smoothing,
                  # cutout, the catastrophic-overfitting guard, a variant's own architecture
                  "compute_dtype", "label_smoothing", "cutout", "guard", "model")
PGD_KEYS = ("epsilon", "step_size", "num_steps", "random_start")


class ConfigError(ValueError):
  """A config with one or more bad settings; `problems` lists them ("path: what is wrong")."""

  def __init__(self, problems: list[str]):
    self.problems = list(problems)
    super().__init__(f"{len(problems)} problem(s) in the config:\n  " + "\n  ".join(problems))


def _to_dict(cfg) -> Any:
  return cfg.to_dict() if hasattr(cfg, "to_dict") else cfg


class Checker:
  """Collects problems; each helper returns whether the value passed."""

  def __init__(self):
    self.problems: list[str] = []

  def fail(self, path: str, message: str) -> bool:
    self.problems.append(f"{path}: {message}")
    return False

  def keys(self, path: str, cfg, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
    """The section as a dict; unknown keys and missing required keys are problems."""
    if not hasattr(cfg, "keys"):
      self.fail(path, f"must be a section (ConfigDict), got {cfg!r}")
      return {}
    allowed = tuple(allowed)
    for k in cfg.keys():
      if k not in allowed:
        self.fail(f"{path}.{k}", f"unknown key (known keys of {path}: {', '.join(allowed)})")
    for k in required:
      if k not in cfg.keys():
        self.fail(f"{path}.{k}", "missing")
    return {k: cfg[k] for k in cfg.keys()}

  def number(self, path: str, value, *, lo=None, hi=None, lo_open=False, hi_open=False,
             integer=False, optional=False) -> bool:
    if value is None and optional:
      return True
    kind = "an int" if integer else "a number"
    ok_type = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
      return self.fail(path, f"must be {kind}{' or None' if optional else ''}, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
      return self.fail(path, f"must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and (value >= hi if hi_open else value > hi):
      return self.fail(path, f"must be {'<' if hi_open else '<='} {hi}, got {value!r}")
    return True

  def count(self, path: str, value, at_most: int | None = None, what: str = "",
            optional: bool = False) -> bool:
    if at_most is not None and at_most < 1:
      return self.number(path, value, lo=1, integer=True, optional=optional)
    ok = self.number(path, value, lo=1, integer=True, optional=optional)
    if ok and value is not None and at_most is not None and value > at_most:
      return self.fail(path, f"must be at most {at_most}{' (' + what + ')' if what else ''}, "
                       f"got {value!r}")
    return ok

  def flag(self, path: str, value) -> bool:
    if not isinstance(value, bool):
      return self.fail(path, f"must be True or False, got {value!r}")
    return True

  def choice(self, path: str, value, choices) -> bool:
    if value not in choices:
      return self.fail(path, f"must be one of {tuple(choices)}, got {value!r}")
    return True

  def names(self, path: str, value, allowed, *, what: str, among: str | None = None,
            nonempty: bool = True) -> bool:
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
      return self.fail(path, f"must be a tuple of names, got {value!r}")
    if nonempty and not value:
      return self.fail(path, "must name at least one")
    bad = [v for v in value if v not in allowed]
    if bad:
      hint = ""
      if any(isinstance(v, str) and "," in v for v in bad):
        hint = (f" (a tuple override is written --config.{path}=\"('a', 'b')\", not "
                "--config.{path}=a,b)").replace("{path}", path)
      where = f"{among} " if among else ""
      return self.fail(path, f"unknown {what} {bad}; must be among {where}{tuple(allowed)}"
                       + hint)
    if len(set(value)) != len(value):
      return self.fail(path, f"names a {what} twice: {tuple(value)}")
    return True


def validate(config, *, variants: Iterable[str] | None = None,
             sizes: dict[str, int] | None = None, required: Iterable[str] = SECTIONS) -> None:
  """Raises ConfigError listing every problem of `config` (a ConfigDict of a study).

  Args:
    config: the study config (sections among `SECTIONS`; every section present is checked).
    required: the sections the caller needs (e.g. training alone: data, model, models, eval).
    variants: the model variants the run is restricted to (--only); each must exist.
    sizes: {"train", "validation", "test"} split sizes; default `data.split_sizes` of
      config.data (cheap: no images are read).
  """
  c = Checker()
  top = c.keys("config", config, SECTIONS, required=tuple(required))
  info, sizes, _ = check_trained(c, top, sizes, variants)
  span = info.get("span")
  _check_eval(c, top.get("eval"), sizes, span)
  attacks = _check_attack(c, top.get("attack"), sizes)
  examples = _check_boundary(c, top.get("boundary"), attacks, info)
  _check_region(c, top.get("region"), attacks, sizes, span)
  _check_detect(c, top.get("detect"), examples, top.get("attack"))
  if c.problems:
    raise ConfigError(c.problems)


def check_trained(c: Checker, top: dict, sizes, variants=None) -> tuple[dict, dict, tuple]:
  """Checks the sections every study shares (data, model, models) of the config's top-level
  sections `top`. Returns (data info: span, ...; split sizes; the model variants' names)."""
  info = check_data(c, top.get("data"), sizes)
  sizes = info.pop("sizes", None) or {}
  check_model(c, top.get("model"), info)
  check_models(c, top.get("models"), sizes, info.get("span"), variants, info)
  models = top.get("models")
  return info, sizes, tuple(models.keys()) if hasattr(models, "keys") else ()


def check_data(c: Checker, cfg, sizes) -> dict:
  out: dict[str, Any] = {}
  if cfg is None:
    return out
  d = c.keys("data", cfg, ("name", "source", "path", "seed", "data_dir"),
             required=("name", "source", "seed"))
  name_ok = c.choice("data.name", d.get("name"), tuple(data_lib.INFO))
  source_ok = c.choice("data.source", d.get("source"), data_lib.SOURCES)
  c.number("data.seed", d.get("seed"), lo=0, integer=True)
  path = d.get("path") or ""
  if not isinstance(path, str):
    c.fail("data.path", f"must be a string, got {path!r}")
    path = ""
  data_dir = d.get("data_dir")
  if data_dir is not None and not isinstance(data_dir, str):
    c.fail("data.data_dir", f"must be a string or None, got {data_dir!r}")
  if not (name_ok and source_ok):
    return out
  name, source = d["name"], d["source"]
  if source == "npz" and not path:
    c.fail("data.path", "source 'npz' needs a path (a file or glob, may contain '{split}')")
    return out
  if source != "npz" and path:
    c.fail("data.path", f"{path!r} is given but data.source is {source!r}; paths are for "
           "'npz' (set --config.data.source=npz, or clear the path)")
  if source == "embedded" and name != "mnist":
    c.fail("data.source", f"the embedded source holds MNIST only, not {name!r}")
    return out
  info = data_lib.INFO[name]
  out.update(name=name, image_shape=info.image_shape, num_classes=info.num_classes,
             span=info.bounds[1] - info.bounds[0])
  if sizes is None:
    try:
      sizes = data_lib.split_sizes(name, source=source, path=path or None)
    except (OSError, ValueError) as e:
      c.fail("data.path", str(e))
      return out
  for split in ("train", "validation", "test"):
    if sizes.get(split, 0) < 1:
      c.fail("data", f"the {split} split of {name!r} ({source}) would be empty "
             f"(sizes {sizes})")
  out["sizes"] = sizes
  return out


def check_model(c: Checker, cfg, info: dict, path: str = "model") -> None:
  if cfg is None:
    return
  m = _to_dict(cfg)
  name = m.get("name")
  if not c.choice(f"{path}.name", name, tuple(models_lib.REGISTRY)):
    return
  params = inspect.signature(models_lib.REGISTRY[name].__init__).parameters
  allowed = tuple(p for p in params if p not in ("self", "rngs"))
  c.keys(path, cfg, ("name",) + allowed)
  kwargs = {k: v for k, v in m.items() if k != "name" and k in allowed}
  if any(p.startswith(f"{path}.") for p in c.problems) or "image_shape" not in info:
    return
  try:  # abstract: builds shapes only, no weights, no compute
    def forward():
      model = models_lib.build(name, rngs=nnx.Rngs(0), **kwargs)
      model.eval()
      return model(jax.numpy.zeros((1,) + info["image_shape"], jax.numpy.float32))
    out = jax.eval_shape(forward)
  except Exception as e:  # pylint: disable=broad-except
    c.fail(path, f"{name} with {kwargs} does not build or does not take "
           f"{info['name']} images {info['image_shape']}: {type(e).__name__}: {e}")
    return
  if tuple(out.shape) != (1, info["num_classes"]):
    c.fail(path, f"{name} with {kwargs} outputs {tuple(out.shape[1:])} logits per image; "
           f"{info['name']} has {info['num_classes']} classes")


def _check_pgd(c: Checker, path: str, cfg, span, extra=()) -> None:
  p = c.keys(path, cfg, PGD_KEYS + tuple(extra), required=PGD_KEYS)
  if span is not None:
    c.number(f"{path}.epsilon", p.get("epsilon"), lo=0, hi=span)
    c.number(f"{path}.step_size", p.get("step_size"), lo=0, hi=span)
  c.number(f"{path}.num_steps", p.get("num_steps"), lo=0, integer=True)
  c.flag(f"{path}.random_start", p.get("random_start"))


def check_models(c: Checker, cfg, sizes, span, variants, info=None) -> None:
  if cfg is None:
    return
  if not hasattr(cfg, "keys") or not list(cfg.keys()):
    c.fail("models", "must hold at least one model variant (e.g. models.natural)")
    return
  for v in cfg.keys():
    path = f"models.{v}"
    t = c.keys(path, cfg[v], TRAIN_KEYS + TRAIN_OPTIONAL, required=TRAIN_KEYS)
    if not t:
      continue
    c.number(f"{path}.seed", t.get("seed"), lo=0, integer=True)
    steps_ok = c.count(f"{path}.num_steps", t.get("num_steps"))
    c.count(f"{path}.batch_size", t.get("batch_size"), sizes.get("train"), "the train split")
    c.choice(f"{path}.optimizer", t.get("optimizer"), ("adam", "sgd"))
    c.number(f"{path}.learning_rate", t.get("learning_rate"), lo=0, lo_open=True)
    c.number(f"{path}.momentum", t.get("momentum"), lo=0, hi=1, hi_open=True)
    c.flag(f"{path}.nesterov", t.get("nesterov"))
    c.number(f"{path}.weight_decay", t.get("weight_decay"), lo=0)
    c.choice(f"{path}.schedule", t.get("schedule"), ("constant", "piecewise", "cosine",
                                                    "onecycle", "cyclic"))
    bounds, factors = t.get("schedule_boundaries"), t.get("schedule_factors")
    if not (isinstance(bounds, (tuple, list)) and all(
        isinstance(b, numbers.Real) and 0 < b < 1 for b in bounds) and list(bounds) == sorted(
            bounds)):
      c.fail(f"{path}.schedule_boundaries", f"must be increasing fractions in (0, 1), got "
             f"{bounds!r}")
    elif not (isinstance(factors, (tuple, list)) and len(factors) == len(bounds) and all(
        isinstance(f, numbers.Real) and f > 0 for f in factors)):
      c.fail(f"{path}.schedule_factors", f"must be {len(bounds)} numbers > 0 (one per "
             f"boundary), got {factors!r}")
    c.number(f"{path}.warmup_fraction", t.get("warmup_fraction"), lo=0, hi=1, hi_open=True)
    c.choice(f"{path}.augment", t.get("augment"), ("none", "crop_flip"))
    c.flag(f"{path}.adversarial", t.get("adversarial"))
    if "attack" in t:
      _check_pgd(c, f"{path}.attack", t["attack"], span,
                 extra=("epsilon_warmup_fraction", "labels"))
      if "labels" in t["attack"]:
        c.choice(f"{path}.attack.labels", t["attack"]["labels"], ("true", "predicted"))
      c.number(f"{path}.attack.epsilon_warmup_fraction",
               t["attack"].get("epsilon_warmup_fraction", 0.0), lo=0, hi=1, hi_open=True)
    if "temperature" in t:
      c.number(f"{path}.temperature", t.get("temperature"), lo=0, lo_open=True)
    if "snapshot_every" in t:
      c.count(f"{path}.snapshot_every", t.get("snapshot_every"), optional=True)
    if "augment_examples" in t:
      c.count(f"{path}.augment_examples", t.get("augment_examples"), optional=True)
    if "compute_dtype" in t:
      c.choice(f"{path}.compute_dtype", t["compute_dtype"], models_lib.COMPUTE_DTYPES)
    if "label_smoothing" in t:
      c.number(f"{path}.label_smoothing", t["label_smoothing"], lo=0, hi=1, hi_open=True)
    if "cutout" in t:
      c.number(f"{path}.cutout", t["cutout"], lo=0, integer=True)
    if t.get("guard") is not None:
      _check_guard(c, f"{path}.guard", t["guard"], span, sizes)
    if t.get("model"):
      check_model(c, t["model"], info or {}, path=f"{path}.model")
    if t.get("init_from") in cfg.keys() and _architecture(cfg, v) != _architecture(
        cfg, t["init_from"]):
      c.fail(f"{path}.init_from", f"{t['init_from']!r} has another architecture "
             f"({_architecture(cfg, t['init_from'])}, not {_architecture(cfg, v)}): a run can "
             "start only from weights of its own architecture")
    for key in ("distill_from", "augment_from", "init_from"):
      other = t.get(key)
      if other is not None and (not isinstance(other, str) or other not in cfg.keys()
                                or other == v):
        c.fail(f"{path}.{key}", f"must name another model variant "
               f"({sorted(k for k in cfg.keys() if k != v)}), got {other!r}")
    c.count(f"{path}.log_every", t.get("log_every"))
    c.count(f"{path}.checkpoint_every", t.get("checkpoint_every"))
    del steps_ok
  for v in variants or ():
    if v not in cfg.keys():
      c.fail("--only", f"unknown model variant {v!r}; the config has {sorted(cfg.keys())}")


def _architecture(models_cfg, variant: str):
  """A variant's own `model` section as a dict, or "the config's model" when it has none."""
  own = models_cfg[variant].get("model") if hasattr(models_cfg[variant], "get") else None
  return _to_dict(own) if own else "the config's model"


def _check_guard(c: Checker, path: str, cfg, span, sizes) -> None:
  g = c.keys(path, cfg, guard_lib.GUARD_KEYS, required=guard_lib.GUARD_KEYS[:-1])
  c.count(f"{path}.every", g.get("every"))
  c.count(f"{path}.examples", g.get("examples"), sizes.get("train"), "the train split")
  c.number(f"{path}.max_drop", g.get("max_drop"), lo=0, hi=1)
  if "seed" in g:
    c.number(f"{path}.seed", g["seed"], lo=0, integer=True)
  if "pgd" in g:
    _check_pgd(c, f"{path}.pgd", g["pgd"], span)


def _check_eval(c: Checker, cfg, sizes, span) -> None:
  if cfg is None:
    return
  e = c.keys("eval", cfg, ("seed", "batch_size", "pgd_examples", "pgd", "compute_dtype"),
             required=("seed", "batch_size", "pgd_examples", "pgd"))
  if "compute_dtype" in e:
    c.choice("eval.compute_dtype", e["compute_dtype"], models_lib.COMPUTE_DTYPES)
  c.number("eval.seed", e.get("seed"), lo=0, integer=True)
  c.count("eval.batch_size", e.get("batch_size"))
  c.count("eval.pgd_examples", e.get("pgd_examples"), sizes.get("test"), "the test split")
  if "pgd" in e:
    _check_pgd(c, "eval.pgd", e["pgd"], span)


def _check_attack(c: Checker, cfg, sizes) -> tuple[str, ...]:
  if cfg is None:
    return ()
  keys = ("names", "num_images", "seed", "batch_size", "pool", "table_images", "cw")
  a = c.keys("attack", cfg, keys, required=("names", "num_images", "seed", "batch_size", "cw"))
  names_ok = c.names("attack.names", a.get("names"), presets.NAMES, what="attack")
  test = sizes.get("test")
  pool = a.get("pool")
  pool_ok = c.count("attack.pool", pool, test, "the test split", optional=True)
  limit = pool if (pool_ok and pool is not None) else test
  what = "attack.pool" if (pool_ok and pool is not None) else "the test split"
  n_ok = c.count("attack.num_images", a.get("num_images"), limit, what)
  c.count("attack.table_images", a.get("table_images"),
          a.get("num_images") if n_ok else None, "attack.num_images", optional=True)
  c.number("attack.seed", a.get("seed"), lo=0, integer=True)
  c.count("attack.batch_size", a.get("batch_size"))
  if "cw" in a:
    w = c.keys("attack.cw", a["cw"], CW_OVERRIDES)
    for k in ("binary_search_steps", "max_iterations"):
      if k in w:
        c.count(f"attack.cw.{k}", w[k])
    for k in ("learning_rate", "initial_const", "distortion_weight"):
      if k in w:
        c.number(f"attack.cw.{k}", w[k], lo=0, lo_open=True)
    if "abort_early" in w:
      c.flag("attack.cw.abort_early", w["abort_early"])
    if "abort_early_scope" in w:
      c.choice("attack.cw.abort_early_scope", w["abort_early_scope"], ("example", "batch"))
  return tuple(a["names"]) if names_ok else ()


def _check_boundary(c: Checker, cfg, attacks, info) -> tuple[str, ...]:
  if cfg is None:
    return ()
  keys = ("num_directions", "both_signs", "seed", "step", "max_distance", "method",
          "batch_size", "chunk_images", "region_radius", "examples")
  b = c.keys("boundary", cfg, keys, required=keys)
  dim = int(np.prod(info["image_shape"])) if "image_shape" in info else None
  c.count("boundary.num_directions", b.get("num_directions"), dim,
          "the number of pixel values; directions are mutually orthogonal")
  c.flag("boundary.both_signs", b.get("both_signs"))
  c.number("boundary.seed", b.get("seed"), lo=0, integer=True)
  span = info.get("span")
  dist_ok = c.number("boundary.max_distance", b.get("max_distance"), lo=0, lo_open=True, hi=span)
  step_ok = c.number("boundary.step", b.get("step"), lo=0, lo_open=True)
  if dist_ok and step_ok and b["step"] > b["max_distance"]:
    c.fail("boundary.step", f"{b['step']!r} is larger than boundary.max_distance "
           f"{b['max_distance']!r}: the grid would be empty")
  c.choice("boundary.method", b.get("method"), boundary_lib.METHODS)
  c.count("boundary.batch_size", b.get("batch_size"))
  c.count("boundary.chunk_images", b.get("chunk_images"))
  c.number("boundary.region_radius", b.get("region_radius"), lo=0, lo_open=True, hi=span)
  ok = c.names("boundary.examples", b.get("examples"), attacks or presets.NAMES,
               what="attack", among="attack.names")
  return tuple(b["examples"]) if ok else ()


def _check_region(c: Checker, cfg, attacks, sizes, span) -> None:
  if cfg is None:
    return
  keys = ("radius", "step", "initial", "num_samples", "max_radius", "validation_images", "seed",
          "batch_size", "attacks", "certify_sigma", "certify_select", "certify_estimate",
          "certify_alpha", "measurement_samples")
  r = c.keys("region", cfg, keys, required=tuple(k for k in keys if k != "max_radius"))
  c.number("region.radius", r.get("radius"), lo=0, lo_open=True, hi=span)
  c.number("region.step", r.get("step"), lo=0, lo_open=True, hi=span)
  init_ok = c.number("region.initial", r.get("initial"), lo=0, hi=span)
  max_ok = c.number("region.max_radius", r.get("max_radius"), lo=0, lo_open=True, hi=span,
                    optional=True)
  if init_ok and max_ok and r.get("max_radius") is not None and r["max_radius"] < r["initial"]:
    c.fail("region.max_radius", f"{r['max_radius']!r} is below region.initial "
           f"{r['initial']!r}")
  c.count("region.num_samples", r.get("num_samples"))
  c.count("region.validation_images", r.get("validation_images"), sizes.get("validation"),
          "the validation split")
  c.number("region.seed", r.get("seed"), lo=0, integer=True)
  c.count("region.batch_size", r.get("batch_size"))
  c.names("region.attacks", r.get("attacks"), attacks or presets.NAMES,
          what="attack", among="attack.names")
  c.number("region.certify_sigma", r.get("certify_sigma"), lo=0, lo_open=True, hi=span)
  c.count("region.certify_select", r.get("certify_select"))
  c.count("region.certify_estimate", r.get("certify_estimate"))
  c.number("region.certify_alpha", r.get("certify_alpha"), lo=0, hi=1, lo_open=True,
           hi_open=True)
  c.count("region.measurement_samples", r.get("measurement_samples"))


def _check_detect(c: Checker, cfg, examples, attack_cfg) -> None:
  if cfg is None:
    return
  keys = ("offset", "scale", "batch_size", "steps", "learning_rate", "train_fraction", "seed",
          "attacks", "train_attacks")
  d = c.keys("detect", cfg, keys, required=keys)
  c.number("detect.offset", d.get("offset"))
  c.number("detect.scale", d.get("scale"), lo=0, lo_open=True)
  c.count("detect.batch_size", d.get("batch_size"))
  c.count("detect.steps", d.get("steps"))
  c.number("detect.learning_rate", d.get("learning_rate"), lo=0, lo_open=True)
  c.number("detect.seed", d.get("seed"), lo=0, integer=True)
  if c.number("detect.train_fraction", d.get("train_fraction"), lo=0, hi=1, lo_open=True,
              hi_open=True) and attack_cfg is not None:
    n = attack_cfg.get("num_images")
    if isinstance(n, numbers.Integral) and n >= 1:
      cut = int(round(d["train_fraction"] * n))
      if not 0 < cut < n:
        c.fail("detect.train_fraction", f"{d['train_fraction']!r} of attack.num_images {n} "
               f"leaves {cut} image(s) to train and {n - cut} to test; both need at least one")
  ok = c.names("detect.attacks", d.get("attacks"), examples or presets.NAMES,
               what="attack", among="boundary.examples")
  c.names("detect.train_attacks", d.get("train_attacks"),
          tuple(d["attacks"]) if ok else presets.NAMES,
          what="attack", among="detect.attacks")
