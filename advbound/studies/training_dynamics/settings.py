"""The training-dynamics study's config: each section declared once (`advbound.config.schema`),
every key with its check, default (optional keys) and doc; `validate` checks a whole config
before anything runs and raises one `ConfigError` listing every problem by full path (data,
model and model variants as the other studies check them, then this study's sections).

Epoch settings are tuples of ints, -1 for the last epoch T; they must lie within 0..T and,
except study.epochs and sharedness.ratio_epochs, among the measured epochs (study.epochs).
Consumers read a section through `<Section>.of(cfg)` (defaults filled), never restating one.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

from advbound import training
from advbound.analysis import transforms
from advbound.config import schema
from advbound.training import settings as shared

# the error `experiments.common` turns into exit status 2
ConfigError = schema.ConfigError  # pylint: disable=invalid-name

ATTACKS = ("bi", "fgsm", "deepfool")
UNIVERSAL_SOURCES = (("train",), ("train", "test"))

__all__ = ["ATTACKS", "Config", "ConfigError", "DeepFool", "Destruction", "Detect", "Figures",
           "Profiles", "SECTIONS", "Sharedness", "Study", "Universal", "validate"]


# ---- checks of this study's values --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Epochs(schema.Check):
  """A non-empty tuple of epochs (ints >= 0, -1 for the last), within 0..T (ctx "last") and,
  with `measured`, among the measured epochs (ctx "measured"); None too with `optional`."""
  measured: bool = True
  optional: bool = False

  def __call__(self, c, path, value, ctx):
    if value is None and self.optional:
      return True
    if (not isinstance(value, (tuple, list)) or not value
        or any(isinstance(e, bool) or not isinstance(e, int) or e < -1 for e in value)):
      return c.fail(path, f"must be a non-empty tuple of epochs (ints >= 0, -1 for the last), "
                    f"got {value!r}")
    last, measured = ctx.get("last"), ctx.get("measured") if self.measured else None
    if last is not None:
      bad = [e for e in value if e > last]
      if bad:
        return c.fail(path, f"names epochs {bad} beyond the last one ({last})")
    if measured is not None:
      missing = sorted({last if e == -1 else e for e in value} - measured)
      if missing:
        return c.fail(path, f"names epochs {missing} that study.epochs does not measure")
    return True

  def describe(self):
    where = "measured " if self.measured else ""
    return f"tuple of {where}epochs (-1: last){' or None' if self.optional else ''}"


@dataclasses.dataclass(frozen=True)
class Levels(schema.Check):
  """A non-empty tuple of numbers (a transformation's levels): > 0 with `positive`, within
  +-ctx[`within`] (the data's range) when given."""
  positive: bool = False
  within: str | None = None

  def __call__(self, c, path, value, ctx):
    if (not isinstance(value, (tuple, list)) or not value
        or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in value)):
      return c.fail(path, f"must be a non-empty tuple of levels, got {value!r}")
    if self.positive and any(v <= 0 for v in value):
      return c.fail(path, f"levels must be > 0, got {tuple(value)}")
    span = ctx.get(self.within) if self.within else None
    if span is not None and any(abs(v) > span for v in value):
      return c.fail(path, f"levels must be within the data's range {span}, got {tuple(value)}")
    return True

  def describe(self):
    return "tuple of levels" + (" > 0" if self.positive else "") + (
        f" within +-{self.within}" if self.within else "")


@dataclasses.dataclass(frozen=True)
class Widths(schema.Check):
  """Three convolution widths (ints >= 1), the Metzen detector's."""

  def __call__(self, c, path, value, ctx):
    if (not isinstance(value, (tuple, list)) or len(value) != 3
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)):
      return c.fail(path, f"must be three convolution widths (ints >= 1; Metzen et al.'s "
                    f"(96, 192, 192)), got {value!r}")
    return True

  def describe(self):
    return "three ints >= 1"


@dataclasses.dataclass(frozen=True)
class Sources(schema.Check):
  """The data universal perturbations are made on: ('train',) or ('train', 'test')."""

  def __call__(self, c, path, value, ctx):
    if (not isinstance(value, (tuple, list)) or "train" not in value
        or any(v not in ("train", "test") for v in value) or len(set(value)) != len(value)):
      return c.fail(path, f"must be ('train',) or ('train', 'test') (the data the "
                    f"perturbations are made on; the fixed epochs use train), got {value!r}")
    return True

  def describe(self):
    return "('train',) or ('train', 'test')"


# ---- the sections -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class Study(schema.Section):
  """`study`: the adversarially trained variant, the measured epochs, BI, the input draws."""
  adversarial: str = schema.setting(
      check=schema.Choice(lambda ctx: ctx.get("variants", ())),
      doc="the models.<variant> trained adversarially from init_from, a snapshot per epoch")
  epochs: tuple | None = schema.setting(
      check=Epochs(measured=False, optional=True),
      doc="the measured epochs (must include 0; -1: the last); None: every epoch 0..T")
  epsilon: float = schema.setting(check=schema.Real(lo=0, lo_open=True, hi="span"),
                                  doc="BI's and FGSM's L-inf radius on the data's scale")
  step_size: float = schema.setting(check=schema.Real(lo=0, lo_open=True, hi="span"),
                                    doc="BI's step on the data's scale")
  num_steps: int = schema.setting(check=schema.Count(), doc="BI's iterations")
  test_images: int = schema.setting(
      check=schema.Count(at_most="test"),
      doc="the test draw (Figures 1, 9, 10): a nested subset of the eval draw")
  train_images: int = schema.setting(
      check=schema.Count(at_most="train"),
      doc="the training draw (Figure 9's training data): a subset of the detect draw")
  seed: int = schema.setting(check=schema.Int(lo=0),
                             doc="seed of the input draws and the bootstrap intervals")
  batch_size: int = schema.setting(check=schema.Count(), doc="batch of attacks and evaluation")
  paper_unit: float = schema.setting(
      check=schema.Real(lo=0, lo_open=True, hi="span"),
      doc="the data's stand-in for one step of the paper's 0-255 CIFAR-10 scale")
  eval_images: int | None = schema.setting(
      None, check=schema.Count(at_most="test", optional=True),
      doc="the eval draw (Figures 3, 5, 6, 8, 16); None: the whole test split")
  partial_epoch_steps: int | None = schema.setting(
      None, check=schema.Int(lo=1, optional=True),
      doc="a declared shorter 'epoch' of that many steps (< one pass over the train split); "
          "None: snapshot_every is one pass")

  @classmethod
  def validate(cls, c, path, values, ctx):
    name, models = values.get("adversarial"), ctx.get("models")
    if not c.failed_under(f"{path}.adversarial") and models is not None:
      _check_adversarial(c, name, models[name], values, ctx)
    ev, n = values.get("eval_images"), values.get("test_images")
    if (ev is not None and not c.failed_under(f"{path}.eval_images")
        and isinstance(n, int) and not isinstance(n, bool) and n >= 1):
      c.count(f"{path}.test_images", n, ev,
              f"{path}.eval_images (the test draw is a subset of the eval draw)")
    ep = values.get("epochs")
    if isinstance(ep, (tuple, list)) and 0 not in ep:
      c.fail(f"{path}.epochs", f"must include epoch 0 (the model before adversarial training), "
             f"got {tuple(ep)}")


def _check_adversarial(c, name, v, study, ctx) -> None:
  """models.<adversarial>: a snapshot per epoch (one pass over the train split, or
  study.partial_epoch_steps), a whole number of epochs, init_from, adversarial."""
  if shared.is_imported(v):
    c.fail(f"models.{name}.source", "the study follows this variant's adversarial training "
           "epoch by epoch: it must be trained here, not imported (the other variants may be)")
    return
  every, steps = v.get("snapshot_every"), v.get("num_steps")
  every_ok = isinstance(every, int) and not isinstance(every, bool) and every >= 1
  if not every_ok:
    c.fail(f"models.{name}.snapshot_every", f"must be the steps of one epoch (an int >= 1): "
           f"the study measures the adversarially trained model at every epoch, got {every!r}")
  elif isinstance(steps, int) and steps % every:
    c.fail(f"models.{name}.num_steps", f"must be a whole number of epochs of "
           f"snapshot_every = {every} steps, got {steps}")
  if every_ok:
    _check_epoch_length(c, name, every, v.get("batch_size"), study.get("partial_epoch_steps"),
                        ctx.get("train"), partial_bad=c.failed_under("study.partial_epoch_steps"))
  if not v.get("init_from"):
    c.fail(f"models.{name}.init_from", "must name the naturally trained variant that "
           "adversarial training starts from (epoch 0 is that model)")
  if not v.get("adversarial"):
    c.fail(f"models.{name}.adversarial", "must be True: the study follows adversarial "
           "training")


def _check_epoch_length(c, name, every, batch, partial, train_size, *,
                        partial_bad: bool) -> None:
  """snapshot_every must be the trainer's epoch on the train split
  (training.steps_per_epoch(train_size, batch)), or equal study.partial_epoch_steps, a declared
  shorter "epoch" (not compared when its own check failed, `partial_bad`)."""
  if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1 or not train_size:
    return
  if batch > train_size:
    c.fail(f"models.{name}.batch_size", f"{batch} exceeds the train split ({train_size})")
    return
  epoch = training.steps_per_epoch(train_size, batch)
  if partial is None:
    if every != epoch:
      c.fail(f"models.{name}.snapshot_every", f"is {every} steps, but one epoch of the train "
             f"split is {epoch} steps ({train_size} // batch_size {batch}); set it to {epoch}, "
             f"or declare a shorter epoch with study.partial_epoch_steps")
    return
  if partial_bad:
    return
  if not 1 <= partial < epoch:
    c.fail("study.partial_epoch_steps", f"must be an int in [1, {epoch}) (a part of the train "
           f"split's epoch of {epoch} steps) or None, got {partial!r}")
  elif every != partial:
    c.fail(f"models.{name}.snapshot_every", f"is {every} steps, but study.partial_epoch_steps "
           f"declares an epoch of {partial} steps")


def epoch_count(study, models) -> int | None:
  """T, the adversarial-training epochs of a config as written (None if it cannot be known:
  the study's variant or its snapshot_every / num_steps are missing or bad)."""
  name = study.get("adversarial") if hasattr(study, "keys") else None
  if not hasattr(models, "keys") or not isinstance(name, str) or name not in models.keys():
    return None
  v = models[name]
  every, steps = v.get("snapshot_every"), v.get("num_steps")
  if (not isinstance(every, int) or isinstance(every, bool) or every < 1
      or not isinstance(steps, int) or isinstance(steps, bool) or steps % every):
    return None
  return steps // every


def measured_epochs(study, last: int | None) -> set[int] | None:
  """The measured epochs of a config as written (study.epochs, -1 resolved; None: 0..T), or
  None if they cannot be known."""
  if not hasattr(study, "keys") or last is None:
    return None
  ep = study.get("epochs")
  if ep is None:
    return set(range(last + 1))
  if not isinstance(ep, (tuple, list)) or not all(isinstance(e, int) for e in ep):
    return None
  return {last if e == -1 else e for e in ep}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Profiles(schema.Section):
  """`profiles`: temporal stability profiles and transfer curves (Figures 1, 9, 10)."""
  transfer_sources: tuple = schema.setting(
      check=Epochs(), doc="the epochs whose BI examples Figure 9 transfers to every epoch")
  threshold: float = schema.setting(
      check=schema.Real(lo=0, hi=1),
      doc="MaxMin below it: a stable perturbation; MinMax at or above it: a robust input")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sharedness(schema.Section):
  """`sharedness`: sharedness against stability (Figure 2), the sharedness ratio (Figure 11)."""
  perturbations: int = schema.setting(check=schema.Count(at_most="test"),
                                      doc="Figure 2's BI perturbations of test inputs")
  train_inputs: int = schema.setting(check=schema.Count(at_most="train"),
                                     doc="the training inputs Figure 2's sharedness averages over")
  future_epochs: tuple | None = schema.setting(
      check=Epochs(optional=True),
      doc="the epochs Figure 2's stability averages over (epoch 0 dropped); None: every "
          "measured epoch")
  ratio_epochs: tuple = schema.setting(check=Epochs(measured=False),
                                       doc="the epochs of Figure 11's sharedness ratio")
  ratio_inputs: int = schema.setting(
      check=schema.Count(at_most="test"),
      doc="Figure 11's test inputs: the perturbed ones, then those they transfer to")
  ratio_perturbations: int = schema.setting(
      check=schema.Count(), doc="the first of ratio_inputs that are perturbed (< ratio_inputs)")

  @classmethod
  def validate(cls, c, path, values, ctx):
    if not (c.failed_under(f"{path}.ratio_inputs")
            or c.failed_under(f"{path}.ratio_perturbations")):
      c.count(f"{path}.ratio_perturbations", values.get("ratio_perturbations"),
              values.get("ratio_inputs") - 1, f"{path}.ratio_inputs - 1 (some inputs must "
              "remain to transfer to)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Universal(schema.Section):
  """`universal`: Metzen et al.'s universal perturbations (Figures 3, 4, 12, 13; the
  detector-maximising perturbation of Figure 7)."""
  epsilon: float = schema.setting(check=schema.Real(lo=0, lo_open=True, hi="span"),
                                  doc="L-inf radius on the data's scale")
  step_size: float = schema.setting(check=schema.Real(lo=0, lo_open=True, hi="span"),
                                    doc="step on the data's scale")
  batch_size: int = schema.setting(check=schema.Count(at_most="smallest",
                                                      what="the smaller split"),
                                   doc="m, the inputs of one batch")
  batches_per_step: int = schema.setting(check=schema.Count(),
                                         doc="K, the batches whose gradients make one step")
  iterations: int = schema.setting(check=schema.Count(), doc="the steps")
  fixed_epochs: tuple = schema.setting(
      check=Epochs(), doc="the epochs whose (training-data) perturbations every epoch is "
                          "tested under (Figure 3)")
  sources: tuple = schema.setting(check=Sources(),
                                  doc="the splits perturbations are made on, per epoch")
  seed: int = schema.setting(check=schema.Int(lo=0), doc="seed of the perturbations' batches")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeepFool(schema.Section):
  """`destruction.deepfool`: DeepFool's settings (the destruction and detection stages)."""
  norm: str = schema.setting(check=schema.Choice(("l2", "linf")), doc="the attack's norm")
  overshoot: float = schema.setting(check=schema.Real(lo=0),
                                    doc="the step's relative overshoot past the boundary")
  max_iterations: int = schema.setting(check=schema.Count(), doc="at most this many steps")
  candidates: int | None = schema.setting(
      None, check=schema.Int(lo=2, optional=True),
      doc="the highest-scoring classes considered; None: every class")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Destruction(schema.Section):
  """`destruction`: destruction rates under four transformations (Figures 5, 14, 15)."""
  epochs: tuple = schema.setting(check=Epochs(),
                                 doc="the epochs measured (and DeepFool's examples made)")
  attacks: tuple = schema.setting(check=schema.Names(ATTACKS, what="attack"),
                                  doc="whose examples are transformed")
  seed: int = schema.setting(check=schema.Int(lo=0), doc="seed of the noise draws")
  brightness: tuple = schema.setting(check=Levels(within="span"),
                                     doc="additive brightness levels on the data's scale")
  contrast: tuple = schema.setting(check=Levels(positive=True),
                                   doc="multiplicative contrast levels")
  blur: tuple = schema.setting(check=Levels(positive=True),
                               doc="Gaussian blur sigmas in pixels")
  noise: tuple = schema.setting(check=Levels(positive=True),
                                doc="additive Gaussian noise sigmas on the data's scale")
  deepfool: DeepFool = schema.setting(check=schema.Sub(DeepFool), doc="DeepFool's settings")


assert set(transforms.KINDS) <= {f.name for f in dataclasses.fields(Destruction)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Detect(schema.Section):
  """`detect`: Metzen detectors per epoch and of the fixed epochs (Figures 6, 7, 16)."""
  fixed_epochs: tuple = schema.setting(
      check=Epochs(), doc="the epochs whose detectors are tested on every epoch's examples")
  features: tuple = schema.setting(check=Widths(),
                                   doc="the detector's three convolution widths")
  steps: int = schema.setting(check=schema.Count(), doc="training steps of a detector")
  batch_size: int = schema.setting(check=schema.Count(),
                                   doc="clean (and as many adversarial) inputs of a step")
  learning_rate: float = schema.setting(check=schema.Real(lo=0, lo_open=True),
                                        doc="the detectors' Adam learning rate")
  seed: int = schema.setting(check=schema.Int(lo=0), doc="seed of the detectors' training")
  train_images: int | None = schema.setting(
      None, check=schema.Count(at_most="train", optional=True),
      doc="the detect draw of training inputs (>= study.train_images); None: the whole "
          "training split")

  @classmethod
  def validate(cls, c, path, values, ctx):
    k = values.get("train_images")
    study = ctx.get("study")
    n = study.get("train_images") if hasattr(study, "keys") else None
    if (k is not None and not c.failed_under(f"{path}.train_images") and isinstance(n, int)
        and n > k):
      c.fail(f"{path}.train_images", f"must be >= study.train_images ({n}): the training "
             f"draw is a subset of the detectors' draw, got {k}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Figures(schema.Section):
  """`figures`: what the figures show."""
  perturbation_epochs: tuple = schema.setting(
      check=Epochs(), doc="the epochs whose perturbations Figures 4 and 13 draw")
  amplify: float = schema.setting(check=schema.Real(lo=0, lo_open=True),
                                  doc="the factor drawn perturbations are magnified by")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(shared.Trained):
  """A training-dynamics config: its top-level sections."""
  study: Study = schema.setting(check=schema.Sub(Study), doc="the study's own settings")
  profiles: Profiles = schema.setting(check=schema.Sub(Profiles), doc="Figures 1, 9, 10")
  sharedness: Sharedness = schema.setting(check=schema.Sub(Sharedness), doc="Figures 2, 11")
  universal: Universal = schema.setting(check=schema.Sub(Universal), doc="Figures 3, 4, 12, 13")
  destruction: Destruction = schema.setting(check=schema.Sub(Destruction),
                                            doc="Figures 5, 14, 15")
  detect: Detect = schema.setting(check=schema.Sub(Detect), doc="Figures 6, 7, 16")
  figures: Figures = schema.setting(check=schema.Sub(Figures), doc="the figures")
  note: Any = schema.setting(None, doc="free text printed in report.md and results.json")


SECTIONS = tuple(f.name for f in dataclasses.fields(Config))


def validate(config, *, sizes: dict[str, int] | None = None) -> None:
  """Raises ConfigError listing every problem of a training-dynamics config.

  Args:
    config: the study config (a ConfigDict with the sections of `Config`).
    sizes: {"train", "validation", "test"} split sizes; default `data.split_sizes` of
      config.data (cheap: no images are read).
  """
  c = schema.Checker()
  written = {k: config[k] for k in config.keys()} if hasattr(config, "keys") else {}
  info, sizes, variants = shared.check_trained(c, written, sizes)
  study, models = written.get("study"), written.get("models")
  last = epoch_count(study, models)
  splits = [sizes.get(k) for k in ("train", "test") if sizes.get(k)]
  ctx = dict(shared.data_ctx(info, sizes), smallest=min(splits, default=None),
             variants=variants, models=models, study=study, last=last,
             measured=measured_epochs(study, last))
  sections = {f.name: f.metadata["check"] for f in dataclasses.fields(Config)}
  schema.check_top(c, config, sections, required=Config.required(), ctx=ctx)
  if c.problems:
    raise ConfigError(c.problems)
