"""Config schemas: every setting declared once, with its type, default, range and doc.

A config section is a frozen dataclass deriving from `Section`, each field declared with
`setting`:

  @dataclasses.dataclass(frozen=True, kw_only=True)
  class Eval(schema.Section):
    seed: int = schema.setting(check=schema.Int(lo=0), doc="PRNG seed of the PGD starts")
    compute_dtype: str = schema.setting("float32", check=schema.Choice(DTYPES),
                                        doc="dtype the model computes in")

- A field without a default is required; a field with one is optional, and its default is the
  one place that value is written.
- `Eval.check(c, "eval", cfg, ctx)` reports, into the `Checker` `c`, every unknown key, every
  missing required key and every value outside its declared check, by full path; then it calls
  the section's own `validate(c, path, values, ctx)` for what relates keys to each other or to
  the data (split sizes, the pixel span, an abstract forward pass), given in `ctx`.
- `Eval.of(cfg)` reads a section (already checked) into an instance with the defaults filled:
  consumers read settings through it and never restate a default.

Config files stay ml_collections ConfigDicts holding data only; the schema checks them and is
not stored in them. Stamps (`advbound.runtime.stages`) hash the config as written, so adding an
optional setting does not invalidate existing workdirs (a changed default does not either: bump
the stage's `version` when a default changes results).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable, ClassVar, Iterable, Mapping

REQUIRED = dataclasses.MISSING


class ConfigError(ValueError):
  """A config with one or more bad settings; `problems` lists them ("path: what is wrong")."""

  def __init__(self, problems: list[str]):
    self.problems = list(problems)
    super().__init__(f"{len(problems)} problem(s) in the config:\n  " + "\n  ".join(problems))


def to_dict(cfg) -> Any:
  """A ConfigDict (or a plain value) as plain Python."""
  return cfg.to_dict() if hasattr(cfg, "to_dict") else cfg


class Checker:
  """Collects problems ("path: message"); each helper returns whether the value passed."""

  def __init__(self):
    self.problems: list[str] = []

  def fail(self, path: str, message: str) -> bool:
    self.problems.append(f"{path}: {message}")
    return False

  def failed_under(self, path: str) -> bool:
    """Whether a problem was reported at `path` or below it."""
    return any(p.startswith((f"{path}:", f"{path}.")) for p in self.problems)

  def raise_if_any(self) -> None:
    if self.problems:
      raise ConfigError(self.problems)

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

  def string(self, path: str, value, *, optional: bool = False) -> bool:
    if value is None and optional:
      return True
    if not isinstance(value, str):
      return self.fail(path, f"must be a string{' or None' if optional else ''}, got {value!r}")
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
                f"--config.{path}=a,b)")
      where = f"{among} " if among else ""
      return self.fail(path, f"unknown {what} {bad}; must be among {where}{tuple(allowed)}"
                       + hint)
    if len(set(value)) != len(value):
      return self.fail(path, f"names a {what} twice: {tuple(value)}")
    return True


def _bound(value, ctx: Mapping[str, Any]):
  """A bound given as a number, or as the name of a value of the data (`ctx`, e.g. "span")."""
  return ctx.get(value) if isinstance(value, str) else value


# ---- checks of one value: callables (checker, path, value, ctx) -> bool ------------------------

@dataclasses.dataclass(frozen=True)
class Check:
  """Base of the value checks; `describe()` is the type column of the settings tables."""

  def __call__(self, c: Checker, path: str, value, ctx: Mapping[str, Any]) -> bool:
    raise NotImplementedError

  def describe(self) -> str:
    return type(self).__name__.lower()


@dataclasses.dataclass(frozen=True)
class Real(Check):
  """A finite number in [lo, hi] (open ends with lo_open / hi_open); a bound may name a value of
  the data (ctx), e.g. hi="span" (the pixel range)."""
  lo: float | str | None = None
  hi: float | str | None = None
  lo_open: bool = False
  hi_open: bool = False
  optional: bool = False

  def __call__(self, c, path, value, ctx):
    return c.number(path, value, lo=_bound(self.lo, ctx), hi=_bound(self.hi, ctx),
                    lo_open=self.lo_open, hi_open=self.hi_open, optional=self.optional)

  def describe(self):
    lo = "" if self.lo is None else f"{'(' if self.lo_open else '['}{self.lo}"
    hi = "" if self.hi is None else f"{self.hi}{')' if self.hi_open else ']'}"
    rng = f" {lo or '(-inf'}, {hi or 'inf)'}" if (lo or hi) else ""
    return f"number{rng}{' or None' if self.optional else ''}"


@dataclasses.dataclass(frozen=True)
class Int(Check):
  """An int in [lo, hi] (bounds as for `Real`)."""
  lo: int | str | None = None
  hi: int | str | None = None
  optional: bool = False

  def __call__(self, c, path, value, ctx):
    return c.number(path, value, lo=_bound(self.lo, ctx), hi=_bound(self.hi, ctx),
                    integer=True, optional=self.optional)

  def describe(self):
    rng = f" >= {self.lo}" if self.lo is not None else ""
    rng += f" <= {self.hi}" if self.hi is not None else ""
    return f"int{rng}{' or None' if self.optional else ''}"


@dataclasses.dataclass(frozen=True)
class Count(Check):
  """An int >= 1, at most `at_most` (a number, or the name of a value of the data such as a
  split size, "test"); `what` names that limit in the message."""
  at_most: int | str | None = None
  what: str = ""
  optional: bool = False

  def __call__(self, c, path, value, ctx):
    limit = _bound(self.at_most, ctx)
    what = self.what or (f"the {self.at_most} split" if isinstance(self.at_most, str) else "")
    return c.count(path, value, limit, what, optional=self.optional)

  def describe(self):
    limit = f" <= {self.what or self.at_most}" if self.at_most is not None else ""
    return f"count{limit}{' or None' if self.optional else ''}"


@dataclasses.dataclass(frozen=True)
class Flag(Check):
  """True or False."""

  def __call__(self, c, path, value, ctx):
    return c.flag(path, value)

  def describe(self):
    return "bool"


@dataclasses.dataclass(frozen=True)
class Choice(Check):
  """One of `values` (a tuple, or a callable of ctx returning one)."""
  values: tuple | Callable[[Mapping[str, Any]], tuple] = ()

  def __call__(self, c, path, value, ctx):
    values = self.values(ctx) if callable(self.values) else self.values
    return c.choice(path, value, tuple(values))

  def describe(self):
    return "one of " + ("(see doc)" if callable(self.values) else
                        ", ".join(repr(v) for v in self.values))


@dataclasses.dataclass(frozen=True)
class Str(Check):
  """A string (or None with optional)."""
  optional: bool = False

  def __call__(self, c, path, value, ctx):
    return c.string(path, value, optional=self.optional)

  def describe(self):
    return f"str{' or None' if self.optional else ''}"


@dataclasses.dataclass(frozen=True)
class Names(Check):
  """A non-empty tuple of distinct names among `allowed` (a tuple, or a callable of ctx)."""
  allowed: tuple | Callable[[Mapping[str, Any]], tuple] = ()
  what: str = "name"
  among: str | None = None
  nonempty: bool = True

  def __call__(self, c, path, value, ctx):
    allowed = self.allowed(ctx) if callable(self.allowed) else self.allowed
    return c.names(path, value, tuple(allowed), what=self.what, among=self.among,
                   nonempty=self.nonempty)

  def describe(self):
    return f"tuple of {self.what} names"


@dataclasses.dataclass(frozen=True)
class Anything(Check):
  """Any value (free text such as a note); checked by the section's `validate` if at all."""

  def __call__(self, c, path, value, ctx):
    return True

  def describe(self):
    return "any"


@dataclasses.dataclass(frozen=True)
class Sub(Check):
  """A nested section of type `section` (a `Section` subclass)."""
  section: type = None  # type: ignore[assignment]
  optional: bool = False

  def __call__(self, c, path, value, ctx):
    if value is None and self.optional:
      return True
    before = len(c.problems)
    self.section.check(c, path, value, ctx)
    return len(c.problems) == before

  def describe(self):
    return f"section {self.section.__name__}{' or None' if self.optional else ''}"


@dataclasses.dataclass(frozen=True)
class Each(Check):
  """A section of named entries (e.g. models.<variant>), each of type `section`."""
  section: type = None  # type: ignore[assignment]
  nonempty: bool = True
  what: str = "entry"

  def pick(self, entry) -> type:
    """The section type an entry is checked as (`section`; subclasses may choose by entry)."""
    del entry
    return self.section

  def __call__(self, c, path, value, ctx):
    if not hasattr(value, "keys"):
      return c.fail(path, f"must be a section (ConfigDict), got {value!r}")
    if self.nonempty and not list(value.keys()):
      return c.fail(path, f"must hold at least one {self.what}")
    before = len(c.problems)
    for name in value.keys():
      self.pick(value[name]).check(c, f"{path}.{name}", value[name], {**ctx, "entry": name})
    return len(c.problems) == before

  def describe(self):
    return f"named {self.what}s, each a section {self.section.__name__}"


def setting(default=REQUIRED, *, check: Check | None = None, doc: str) -> Any:
  """A field of a `Section`: no default = required. `check` validates the value as written
  (default: none); `doc` is its one-line description."""
  metadata = {"check": check or Anything(), "doc": doc}
  if isinstance(default, (list, dict)):
    raise TypeError("mutable defaults: use a tuple")
  return dataclasses.field(default=default, metadata=metadata)


class Section:
  """Base of the section declarations (frozen, kw_only dataclasses whose fields are `setting`s).

  Subclasses may define `validate(c, path, values, ctx)` (a classmethod) for checks that relate
  keys to each other or to the data; it runs after every field passed or failed its own check,
  with `values` the section as written (a dict) and `ctx` what is known of the data.
  """

  # keys a section accepts beyond its fields (e.g. a model's constructor arguments)
  extra_keys: ClassVar[Callable[[dict, Mapping[str, Any]], tuple[str, ...]] | None] = None

  @classmethod
  def fields(cls) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(cls)  # type: ignore[arg-type]

  @classmethod
  def required(cls) -> tuple[str, ...]:
    return tuple(f.name for f in cls.fields()
                 if f.default is REQUIRED and f.default_factory is REQUIRED)

  @classmethod
  def default(cls, key: str):
    """The declared default of optional setting `key` (KeyError if it is required)."""
    for f in cls.fields():
      if f.name == key:
        if f.default is REQUIRED:
          raise KeyError(f"{cls.__name__}.{key} is required; it has no default")
        return f.default
    raise KeyError(f"{cls.__name__} has no setting {key!r}")

  @classmethod
  def check(cls, c: Checker, path: str, cfg, ctx: Mapping[str, Any] | None = None) -> dict:
    """Reports every problem of section `cfg` at `path` into `c`; returns it as a dict."""
    ctx = dict(ctx or {})
    fields = {f.name: f for f in cls.fields()}
    extra = cls.extra_keys(cfg, ctx) if (cls.extra_keys and hasattr(cfg, "keys")) else ()
    values = c.keys(path, cfg, tuple(fields) + tuple(extra), required=cls.required())
    if not hasattr(cfg, "keys"):
      return values
    for name, f in fields.items():
      if name in values:
        f.metadata["check"](c, f"{path}.{name}", values[name], ctx)
    cls.validate(c, path, values, ctx)
    return values

  @classmethod
  def validate(cls, c: Checker, path: str, values: dict, ctx: Mapping[str, Any]) -> None:
    """Checks across keys or against the data; none by default."""

  @classmethod
  def of(cls, cfg):
    """The section `cfg` (as written, already checked) with the declared defaults filled."""
    kwargs = {}
    for f in cls.fields():
      present = hasattr(cfg, "keys") and f.name in cfg.keys()
      if not present:
        if f.default is REQUIRED:
          raise KeyError(f"{cls.__name__}: required setting {f.name!r} is missing (was the "
                         "config checked?)")
        kwargs[f.name] = f.default
        continue
      value, check = cfg[f.name], f.metadata["check"]
      if isinstance(check, Sub) and value is not None:
        value = check.section.of(value)
      elif isinstance(check, Each):
        value = {k: check.pick(value[k]).of(value[k]) for k in value.keys()}
      elif hasattr(value, "to_dict"):
        value = value.to_dict()
      elif isinstance(value, list):
        value = tuple(value)
      kwargs[f.name] = value
    return cls(**kwargs)  # type: ignore[call-arg]

  @classmethod
  def table(cls, path: str) -> list[str]:
    """The section's settings as markdown table rows: key, type, default, doc (nested sections
    follow their parent)."""
    rows, nested = [], []
    for f in cls.fields():
      check = f.metadata["check"]
      default = "required" if f.default is REQUIRED else repr(f.default)
      rows.append(f"| `{path}.{f.name}` | {check.describe()} | {default} | "
                  f"{f.metadata['doc']} |")
      if isinstance(check, Sub):
        nested.append((f"{path}.{f.name}", check.section))
      elif isinstance(check, Each):
        nested.append((f"{path}.{f.name}.<{check.what}>", check.section))
    for sub_path, section in nested:
      rows += section.table(sub_path)
    return rows


def check_top(c: Checker, config, sections: Mapping[str, Check], *,
              required: Iterable[str], ctx: Mapping[str, Any]) -> dict:
  """Checks the top level of a study config: only `sections` are allowed, `required` must be
  present, and each present one passes its check. Returns {section: value as written}."""
  top = c.keys("config", config, tuple(sections), required=tuple(required))
  for name, check in sections.items():
    if name in top:
      check(c, name, top[name], ctx)
  return top
