"""Validates a training-dynamics config before anything runs: every problem at once, as one
`schema.ConfigError` (data, model and model variants as the other studies check them,
then this study's sections)."""

from __future__ import annotations

import numbers

from advbound.analysis import transforms
from advbound.config.schema import Checker, ConfigError
from advbound.training import settings as shared
from advbound.studies.training_dynamics import epochs as epochs_lib

SECTIONS = ("data", "model", "models", "study", "profiles", "sharedness", "universal",
            "destruction", "detect", "figures", "note")
REQUIRED = SECTIONS[:-1]
ATTACKS = ("bi", "fgsm", "deepfool")

__all__ = ["ConfigError", "validate"]


def validate(config, *, sizes: dict[str, int] | None = None) -> None:
  """Raises ConfigError listing every problem of a training-dynamics config."""
  c = Checker()
  top = c.keys("config", config, SECTIONS, required=REQUIRED)
  info, sizes, variants = shared.check_trained(c, top, sizes)
  span = info.get("span")
  last = _check_study(c, top.get("study"), top.get("models"), variants, sizes, span)
  measured = _measured(top.get("study"), last)
  p = c.keys("profiles", top.get("profiles"), ("transfer_sources", "threshold"),
             required=("transfer_sources", "threshold"))
  _epochs(c, "profiles.transfer_sources", p.get("transfer_sources"), last, measured)
  c.number("profiles.threshold", p.get("threshold"), lo=0, hi=1)
  _check_sharedness(c, top.get("sharedness"), sizes, last, measured)
  _check_universal(c, top.get("universal"), sizes, span, last, measured)
  _check_destruction(c, top.get("destruction"), span, last, measured)
  _check_detect(c, top.get("detect"), last, measured, sizes, top.get("study"))
  f = c.keys("figures", top.get("figures"), ("perturbation_epochs", "amplify"),
             required=("perturbation_epochs", "amplify"))
  _epochs(c, "figures.perturbation_epochs", f.get("perturbation_epochs"), last, measured)
  c.number("figures.amplify", f.get("amplify"), lo=0, lo_open=True)
  if c.problems:
    raise ConfigError(c.problems)


def _check_study(c, cfg, models, variants, sizes, span) -> int | None:
  """Checks `study`; returns the number of adversarial epochs T (None if it cannot be known)."""
  required = ("adversarial", "epochs", "epsilon", "step_size", "num_steps", "test_images",
              "train_images", "seed", "batch_size", "paper_unit")
  s = c.keys("study", cfg, required + ("eval_images", "partial_epoch_steps"),
             required=required)
  if not s:
    return None
  last = None
  if c.choice("study.adversarial", s.get("adversarial"), variants) and models is not None:
    name = s["adversarial"]
    v = models[name]
    every, steps = v.get("snapshot_every"), v.get("num_steps")
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
      c.fail(f"models.{name}.snapshot_every", f"must be the steps of one epoch (an int >= 1): "
             f"the study measures the adversarially trained model at every epoch, got {every!r}")
    elif isinstance(steps, int) and steps % every:
      c.fail(f"models.{name}.num_steps", f"must be a whole number of epochs of "
             f"snapshot_every = {every} steps, got {steps}")
    elif isinstance(steps, int):
      last = steps // every
    if isinstance(every, int) and not isinstance(every, bool) and every >= 1:
      _check_epoch_length(c, name, every, v.get("batch_size"), s.get("partial_epoch_steps"),
                          sizes.get("train"))
    if not v.get("init_from"):
      c.fail(f"models.{name}.init_from", "must name the naturally trained variant that "
             "adversarial training starts from (epoch 0 is that model)")
    if not v.get("adversarial"):
      c.fail(f"models.{name}.adversarial", "must be True: the study follows adversarial "
             "training")
  c.number("study.epsilon", s.get("epsilon"), lo=0, lo_open=True, hi=span)
  c.number("study.step_size", s.get("step_size"), lo=0, lo_open=True, hi=span)
  c.count("study.num_steps", s.get("num_steps"))
  c.count("study.test_images", s.get("test_images"), sizes.get("test"), "the test split")
  c.count("study.train_images", s.get("train_images"), sizes.get("train"), "the train split")
  if s.get("eval_images") is not None:
    if c.count("study.eval_images", s.get("eval_images"), sizes.get("test"), "the test split"):
      c.count("study.test_images", s.get("test_images"), s["eval_images"],
              "study.eval_images (the test draw is a subset of the eval draw)")
  c.number("study.seed", s.get("seed"), lo=0, integer=True)
  c.number("study.paper_unit", s.get("paper_unit"), lo=0, lo_open=True, hi=span)
  c.count("study.batch_size", s.get("batch_size"))
  if s.get("epochs") is not None:
    _epochs(c, "study.epochs", s.get("epochs"), last, None)
    ep = s.get("epochs")
    if isinstance(ep, (tuple, list)) and 0 not in ep:
      c.fail("study.epochs", f"must include epoch 0 (the model before adversarial training), "
             f"got {tuple(ep)}")
  return last


def _check_epoch_length(c, name, every, batch, partial, train_size) -> None:
  """snapshot_every must be the trainer's epoch on the train split
  (epochs.steps_per_epoch(train_size, batch)), or equal study.partial_epoch_steps, a declared
  shorter "epoch"."""
  if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1 or not train_size:
    return
  if batch > train_size:
    c.fail(f"models.{name}.batch_size", f"{batch} exceeds the train split ({train_size})")
    return
  epoch = epochs_lib.steps_per_epoch(train_size, batch)
  if partial is None:
    if every != epoch:
      c.fail(f"models.{name}.snapshot_every", f"is {every} steps, but one epoch of the train "
             f"split is {epoch} steps ({train_size} // batch_size {batch}); set it to {epoch}, "
             f"or declare a shorter epoch with study.partial_epoch_steps")
    return
  if isinstance(partial, bool) or not isinstance(partial, int) or not 1 <= partial < epoch:
    c.fail("study.partial_epoch_steps", f"must be an int in [1, {epoch}) (a part of the train "
           f"split's epoch of {epoch} steps) or None, got {partial!r}")
  elif every != partial:
    c.fail(f"models.{name}.snapshot_every", f"is {every} steps, but study.partial_epoch_steps "
           f"declares an epoch of {partial} steps")


def _measured(study, last):
  if study is None or last is None:
    return None
  ep = study.get("epochs")
  if ep is None:
    return set(range(last + 1))
  if not isinstance(ep, (tuple, list)) or not all(isinstance(e, int) for e in ep):
    return None
  return {last if e == -1 else e for e in ep}


def _epochs(c, path, value, last, measured, *, optional=False) -> None:
  """A tuple of epochs (ints, -1 for the last), within 0..T and among the measured ones."""
  if value is None and optional:
    return
  if (not isinstance(value, (tuple, list)) or not value
      or any(isinstance(e, bool) or not isinstance(e, int) or e < -1 for e in value)):
    c.fail(path, f"must be a non-empty tuple of epochs (ints >= 0, -1 for the last), got "
           f"{value!r}")
    return
  if last is not None:
    bad = [e for e in value if e > last]
    if bad:
      c.fail(path, f"names epochs {bad} beyond the last one ({last})")
      return
  if measured is not None:
    missing = sorted({last if e == -1 else e for e in value} - measured)
    if missing:
      c.fail(path, f"names epochs {missing} that study.epochs does not measure")


def _check_sharedness(c, cfg, sizes, last, measured) -> None:
  keys = ("perturbations", "train_inputs", "future_epochs", "ratio_epochs", "ratio_inputs",
          "ratio_perturbations")
  s = c.keys("sharedness", cfg, keys, required=keys)
  if not s:
    return
  c.count("sharedness.perturbations", s.get("perturbations"), sizes.get("test"),
          "the test split")
  c.count("sharedness.train_inputs", s.get("train_inputs"), sizes.get("train"),
          "the train split")
  _epochs(c, "sharedness.future_epochs", s.get("future_epochs"), last, measured, optional=True)
  _epochs(c, "sharedness.ratio_epochs", s.get("ratio_epochs"), last, None)
  if c.count("sharedness.ratio_inputs", s.get("ratio_inputs"), sizes.get("test"),
             "the test split"):
    c.count("sharedness.ratio_perturbations", s.get("ratio_perturbations"),
            s["ratio_inputs"] - 1, "sharedness.ratio_inputs - 1 (some inputs must remain to "
            "transfer to)")


def _check_universal(c, cfg, sizes, span, last, measured) -> None:
  keys = ("epsilon", "step_size", "batch_size", "batches_per_step", "iterations",
          "fixed_epochs", "sources", "seed")
  u = c.keys("universal", cfg, keys, required=keys)
  if not u:
    return
  c.number("universal.epsilon", u.get("epsilon"), lo=0, lo_open=True, hi=span)
  c.number("universal.step_size", u.get("step_size"), lo=0, lo_open=True, hi=span)
  smallest = min((v for v in (sizes.get("train"), sizes.get("test")) if v), default=None)
  c.count("universal.batch_size", u.get("batch_size"), smallest, "the smaller split")
  c.count("universal.batches_per_step", u.get("batches_per_step"))
  c.count("universal.iterations", u.get("iterations"))
  _epochs(c, "universal.fixed_epochs", u.get("fixed_epochs"), last, measured)
  src = u.get("sources")
  if (not isinstance(src, (tuple, list)) or "train" not in src
      or any(v not in ("train", "test") for v in src) or len(set(src)) != len(src)):
    c.fail("universal.sources", f"must be ('train',) or ('train', 'test') (the data the "
           f"perturbations are made on; the fixed epochs use train), got {src!r}")
  c.number("universal.seed", u.get("seed"), lo=0, integer=True)


def _check_destruction(c, cfg, span, last, measured) -> None:
  keys = ("epochs", "attacks", "seed", "deepfool") + transforms.KINDS
  d = c.keys("destruction", cfg, keys, required=keys)
  if not d:
    return
  _epochs(c, "destruction.epochs", d.get("epochs"), last, measured)
  c.names("destruction.attacks", d.get("attacks"), ATTACKS, what="attack")
  c.number("destruction.seed", d.get("seed"), lo=0, integer=True)
  for kind in transforms.KINDS:
    lv = d.get(kind)
    if (not isinstance(lv, (tuple, list)) or not lv
        or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in lv)):
      c.fail(f"destruction.{kind}", f"must be a non-empty tuple of levels, got {lv!r}")
    elif kind in ("contrast", "blur", "noise") and any(v <= 0 for v in lv):
      c.fail(f"destruction.{kind}", f"levels must be > 0, got {tuple(lv)}")
    elif kind == "brightness" and span is not None and any(abs(v) > span for v in lv):
      c.fail(f"destruction.{kind}", f"levels must be within the data's range {span}, got "
             f"{tuple(lv)}")
  df = c.keys("destruction.deepfool", d.get("deepfool"), ("norm", "overshoot",
                                                          "max_iterations", "candidates"),
              required=("norm", "overshoot", "max_iterations"))
  if df.get("candidates") is not None:
    c.number("destruction.deepfool.candidates", df["candidates"], lo=2, integer=True)
  c.choice("destruction.deepfool.norm", df.get("norm"), ("l2", "linf"))
  c.number("destruction.deepfool.overshoot", df.get("overshoot"), lo=0)
  c.count("destruction.deepfool.max_iterations", df.get("max_iterations"))


def _check_detect(c, cfg, last, measured, sizes, study) -> None:
  keys = ("fixed_epochs", "features", "steps", "batch_size", "learning_rate", "seed")
  d = c.keys("detect", cfg, keys + ("train_images",), required=keys)
  if not d:
    return
  if d.get("train_images") is not None:
    if c.count("detect.train_images", d.get("train_images"), sizes.get("train"),
               "the train split"):
      n = study.get("train_images") if study is not None else None
      if isinstance(n, int) and n > d["train_images"]:
        c.fail("detect.train_images", f"must be >= study.train_images ({n}): the training "
               f"draw is a subset of the detectors' draw, got {d['train_images']}")
  _epochs(c, "detect.fixed_epochs", d.get("fixed_epochs"), last, measured)
  f = d.get("features")
  if (not isinstance(f, (tuple, list)) or len(f) != 3
      or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in f)):
    c.fail("detect.features", f"must be three convolution widths (ints >= 1; Metzen et al.'s "
           f"(96, 192, 192)), got {f!r}")
  c.count("detect.steps", d.get("steps"))
  c.count("detect.batch_size", d.get("batch_size"))
  c.number("detect.learning_rate", d.get("learning_rate"), lo=0, lo_open=True)
  c.number("detect.seed", d.get("seed"), lo=0, integer=True)
