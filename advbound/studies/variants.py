"""The model variants of a study's config, shared by the studies: which to run, what each is
(`variant_model`, `model_stamp`), training them with their upstream variants (distillation
teacher, DeepFool augmentation source, init_from) and He et al.'s train-and-evaluate step that
writes `models/<variant>/metrics.json`.

Built on `advbound.training` (never the reverse): a variant trains under
`workdir/models/<variant>/` through `advbound.training.loop.train`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import numpy as np
from absl import logging
from flax import nnx

from advbound import data as data_lib, models
from advbound.analysis import evaluate
from advbound.data import Dataset
from advbound.runtime import io
from advbound.models import sources
from advbound.training import guard as guard_lib, loop, settings
from advbound.training.settings import Data, Eval, Train


def variant_names(config, variants=None) -> list[str]:
  """The model variants of `config.models` to run, natural first; `variants` selects some of
  them (ValueError naming any the config lacks)."""
  names = sorted(config.models, key=lambda v: (v != "natural", v))
  if not variants:
    return names
  unknown = [v for v in variants if v not in config.models]
  if unknown:
    raise ValueError(f"unknown model variant(s) {unknown}; the config has {names}")
  return [v for v in names if v in variants]


def variant_model(config, variant: str):
  """The architecture of model variant `variant`: its own `models.<variant>.model` section if it
  has one (e.g. a fast natural recipe on ResNet-9 beside a robust PreAct ResNet-18), else the
  config's `model`."""
  own = config.models[variant].get("model")
  return own if own else config.model


def model_stamp(config, variant: str) -> dict:
  """What determines a trained variant (data, architecture, training settings, and its
  teacher's when it is distilled), for the stamps of artifacts computed from the model: a
  retrained model invalidates them. An imported variant's: its source and the size and SHA-256
  of the files it reads (a changed weights file invalidates them)."""
  if is_imported(config, variant):
    spec = config.models[variant].source
    return {"source": loop.plain_dict(spec), "files": sources.digest(spec)}
  out = {"data": loop.plain_dict(config.data),
         "model": loop.plain_dict(variant_model(config, variant)),
         "train": {k: v for k, v in loop.plain_dict(config.models[variant]).items()
                   if k not in loop.COSMETIC}}
  for key in _UPSTREAM:
    other = config.models[variant].get(key)
    if other:
      out[key] = model_stamp(config, other)
  return out


# settings naming another variant a variant is made from
_UPSTREAM = ("distill_from", "augment_from", "init_from")


def imported_files(config) -> dict[str, dict[str, str]]:
  """{variant: {file: size and SHA-256}} of the files the imported variants read (a train
  stage's `inputs`: a changed weights file under the same name reruns it); {} when none."""
  if "models" not in config:
    return {}
  return {v: sources.digest(config.models[v].source) for v in config.models
          if is_imported(config, v)}


def is_imported(config, variant: str) -> bool:
  """Whether model variant `variant` is imported (`models.<variant>.source`), not trained."""
  return settings.is_imported(config.models[variant])


_IMPORTED: dict[str, models.Imported] = {}


def imported_model(config, variant: str, data: Dataset) -> models.Imported:
  """The imported model of variant `variant` taking `data`'s units (loaded once per process
  and source version; `advbound.models.sources.load`)."""
  spec = config.models[variant].source
  key = json.dumps([model_stamp(config, variant), data.bounds, data.images.shape[1:]],
                   sort_keys=True, default=str)
  if key not in _IMPORTED:
    t0 = time.time()
    _IMPORTED[key] = sources.load(spec, image_shape=data.images.shape[1:], bounds=data.bounds)
    logging.info("%s: imported %s in %.1f s", variant, _IMPORTED[key].describe(),
                 time.time() - t0)
  return _IMPORTED[key]


def train_variant(config, variant: str, data: Dataset, workdir: str, *,
                  _students: tuple[str, ...] = ()) -> nnx.Module | models.Imported:
  """Trains (or loads) model variant `variant` under `workdir/models/<variant>`; an imported
  variant (`models.<variant>.source`) is loaded instead (`imported_model`) and evaluated once
  (`evaluate_imported`: models/<variant>/metrics.json).

  Three settings make a variant depend on another one, which is trained or loaded first:
  - `distill_from: <variant>` (defensive distillation, Papernot et al.): the variant learns from
    that teacher's soft labels softmax(Z_teacher(x) / T) on the training images, T = its
    `temperature`.
  - `augment_from: <variant>` (adversarial training as Cao & Gong's baseline, after Goodfellow
    et al.): DeepFool examples (L2, overshoot 0.02, 50 iterations) of every training image
    against that variant's model are made once (resumable, stored in
    `models/<variant>/deepfool_train.npz`) and the variant trains on the clean images and
    these examples together (2N examples, true labels, shuffled together). `augment_examples:
    M` makes examples of the first M training images only (N + M examples; a cheaper run).
  - `init_from: <variant>`: training starts from that variant's trained weights and batch
    statistics (a fresh optimizer), e.g. adversarial training after natural training.
  The checkpoint records the upstream settings, so a changed teacher or source retrains.
  """
  if is_imported(config, variant):
    model = imported_model(config, variant, data)
    evaluate_imported(config, variant, model, workdir)
    return model
  vcfg = config.models[variant]
  soft, upstream, init = None, {}, None
  for key in _UPSTREAM:
    other = vcfg.get(key)
    if not other:
      continue
    if other not in config.models:
      raise ValueError(f"models.{variant}.{key}: unknown variant {other!r}")
    if other == variant or other in _students:
      raise ValueError(f"models.{variant}.{key}: {other!r} makes a cycle of variants")
    source = train_variant(config, other, data, workdir, _students=_students + (variant,))
    fn = models.as_logits_fn(source)
    upstream[key] = model_stamp(config, other)
    if key == "init_from":
      init = source
    elif key == "distill_from":
      z = evaluate.logits(fn, data.images)
      soft = np.asarray(jax.nn.softmax(z / float(Train.of(vcfg).temperature), axis=-1))
    else:
      upstream["augment_attack"] = dict(_AUGMENT_DEEPFOOL)
      count = Train.of(vcfg).augment_examples
      if count is not None:
        upstream["augment_examples"] = int(count)
      data = _with_deepfool_examples(fn, data, os.path.join(workdir, "models", variant),
                                     json.dumps(upstream, sort_keys=True, default=str),
                                     count=count)
  return loop.train(data, variant_model(config, variant), vcfg,
                    os.path.join(workdir, "models", variant),
                    soft_labels=soft, upstream=upstream or None, init=init)


_AUGMENT_DEEPFOOL = {"norm": "l2", "overshoot": 0.02, "max_iterations": 50}


def _with_deepfool_examples(fn, data: Dataset, folder: str, stamp: str, *,
                            count: int | None = None) -> Dataset:
  """data plus one DeepFool example (same label) of each of its first `count` images (None:
  all), computed once in resumable parts."""
  from advbound.attacks import deepfool  # pylint: disable=g-import-not-at-top
  n = len(data) if count is None else min(int(count), len(data))
  path = os.path.join(folder, "deepfool_train.npz")
  cached = io.read_npz_if_current(path, stamp, fields=("x",))
  if cached is None:
    def compute(lo, hi):
      r = deepfool(fn, data.images[lo:hi], data.labels[lo:hi], bounds=data.bounds,
                   batch_size=hi - lo, **_AUGMENT_DEEPFOOL)
      return {"x": np.asarray(r.adversarial, np.float32), "success": np.asarray(r.success)}
    cached = io.compute_npz_in_parts(path, stamp, n, 500, compute)
    logging.info("DeepFool training examples: %d of %d successful",
                 int(np.sum(cached["success"])), n)
  return dataclasses.replace(data, images=np.concatenate([data.images, cached["x"]]),
                             labels=np.concatenate([data.labels, data.labels[:n]]))


def load_splits(data_cfg, splits) -> list[Dataset]:
  """The requested splits of the data set that `data_cfg` (name, source, path, seed) selects."""
  settings = Data.of(data_cfg)
  out = [data_lib.load(data_cfg.name, source=data_cfg.source, split=split,
                       path=data_cfg.path or None, seed=data_cfg.seed,
                       data_dir=settings.data_dir, validation_size=settings.validation_size)
         for split in splits]
  logging.info("data %s (%s): %s, bounds %s", data_cfg.name, data_cfg.source,
               ", ".join(f"{len(d)} {d.split}" for d in out), out[0].bounds)
  return out


def train_and_evaluate(config, workdir: str, *,
                       variants: tuple[str, ...] | None = None) -> dict[str, dict[str, float]]:
  """Trains every model variant of `config.models` and evaluates it on the test split.

  Each variant trains under `workdir/models/<variant>/` (resuming if interrupted); its test
  accuracy, clean and under `config.eval.pgd`, is written atomically to
  `workdir/models/<variant>/metrics.json` and returned as {variant: metrics}. `variants`
  restricts the run to some of the variants (default: all, natural first).
  """
  names = variant_names(config, variants)
  train_data, test_data = load_splits(config.data, ("train", "test"))
  results = {}
  for variant in names:
    if is_imported(config, variant):
      model = imported_model(config, variant, test_data)
      results[variant] = evaluate_imported(config, variant, model, workdir, test_data=test_data)
      continue
    vcfg = config.models[variant]
    vdir = os.path.join(workdir, "models", variant)
    t0 = time.time()
    model = train_variant(config, variant, train_data, workdir)
    train_seconds = time.time() - t0
    ecfg = config.eval
    eval_dtype = Eval.of(ecfg).compute_dtype
    logits_fn = models.as_logits_fn(model, eval_dtype)
    n_pgd = min(ecfg.pgd_examples, len(test_data)) if ecfg.pgd_examples else len(test_data)
    t0 = time.time()
    correct = evaluate.predict(logits_fn, test_data.images, batch_size=ecfg.batch_size,
                               desc="accuracy") == test_data.labels
    metrics = {
        **_accuracies(logits_fn, test_data, ecfg, correct),
        "train_steps": vcfg.num_steps,
        "train_seconds_this_run": train_seconds,
        "eval_compute_dtype": eval_dtype,
    }
    metrics["eval_seconds"] = time.time() - t0
    record = guard_lib.read_record(vdir)
    if record is not None:
      metrics["guard"] = {k: record[k] for k in ("stopped_at", "kept_step",
                                                 "best_pgd_accuracy")}
      metrics["guard"]["checks"] = len(record["history"])
    io.write_json(os.path.join(vdir, "metrics.json"), metrics)
    logging.info("%s: test accuracy %.4f (%d images); on the first %d: clean %.4f, PGD %.4f "
                 "(eps %g, %d steps of %g)", variant, metrics["test_accuracy"], len(test_data),
                 n_pgd, metrics["subset_accuracy"], metrics["pgd_accuracy"], ecfg.pgd.epsilon,
                 ecfg.pgd.num_steps, ecfg.pgd.step_size)
    results[variant] = metrics
  return results


def _accuracies(logits_fn, test_data: Dataset, ecfg, correct=None) -> dict:
  """Clean accuracy on every test image and PGD accuracy (`ecfg.pgd`) on the first
  `ecfg.pgd_examples`, with the clean accuracy on those same images."""
  n_pgd = min(ecfg.pgd_examples, len(test_data)) if ecfg.pgd_examples else len(test_data)
  if correct is None:
    correct = evaluate.predict(logits_fn, test_data.images, batch_size=ecfg.batch_size,
                               desc="accuracy") == test_data.labels
  return {
      "test_accuracy": float(correct.mean()),
      "test_examples": len(test_data),
      "test_correct": int(correct.sum()),
      "pgd_accuracy": evaluate.pgd_accuracy(
          logits_fn, jax.random.key(ecfg.seed), test_data.images[:n_pgd],
          test_data.labels[:n_pgd], bounds=test_data.bounds, epsilon=ecfg.pgd.epsilon,
          step_size=ecfg.pgd.step_size, num_steps=ecfg.pgd.num_steps,
          random_start=ecfg.pgd.random_start, batch_size=ecfg.batch_size),
      "pgd_examples": n_pgd,
      # clean accuracy on the same first pgd_examples images, for a like-for-like comparison
      "subset_accuracy": float(correct[:n_pgd].mean()),
      "pgd": loop.plain_dict(ecfg.pgd),
      **_autoattack(logits_fn, test_data, ecfg),
  }


def _autoattack(logits_fn, test_data: Dataset, ecfg) -> dict:
  """{"autoattack": summary} of AutoAttack on the first `eval.autoattack.examples` test images
  ({} when the eval has no autoattack section), with PGD's accuracy on the same images."""
  acfg = Eval.of(ecfg).autoattack
  if acfg is None:
    return {}
  from advbound.attacks.autoattack import autoattack  # pylint: disable=g-import-not-at-top
  n = min(int(acfg.examples), len(test_data))
  x, y = test_data.images[:n], test_data.labels[:n]
  t0 = time.time()
  result = autoattack(logits_fn, jax.random.key(acfg.seed), x, y, norm=acfg.norm,
                                 epsilon=acfg.epsilon, bounds=test_data.bounds,
                                 version=acfg.version,
                                 batch_size=acfg.batch_size or ecfg.batch_size)
  return {"autoattack": {**result.summary(), "seconds": time.time() - t0,
                         "settings": loop.plain_dict(ecfg.autoattack)}}


def evaluate_imported(config, variant: str, model: models.Imported, workdir: str, *,
                      test_data: Dataset | None = None) -> dict:
  """The imported variant's clean and PGD test accuracy (`models.<variant>.eval`), computed
  once per model and evaluation settings into `models/<variant>/metrics.json` (atomic), with
  its source; returns it."""
  ecfg = config.models[variant].eval
  path = os.path.join(workdir, "models", variant, "metrics.json")
  stamp = json.dumps({"model": model_stamp(config, variant), "eval": loop.plain_dict(ecfg),
                      "data": loop.plain_dict(config.data)}, sort_keys=True, default=str)
  if os.path.exists(path):
    old = io.read_json(path)
    if old.get("stamp") == stamp:
      return old
  if test_data is None:
    (test_data,) = load_splits(config.data, ("test",))
  t0 = time.time()
  logits_fn = models.as_logits_fn(model, Eval.of(ecfg).compute_dtype)
  metrics = {"source": model.describe(), "imported": True, **_accuracies(logits_fn, test_data,
                                                                          ecfg),
             "eval_seconds": time.time() - t0, "stamp": stamp}
  io.write_json(path, metrics)
  logging.info("%s (%s): test accuracy %.4f (%d images); on the first %d: clean %.4f, PGD %.4f",
               variant, model.source, metrics["test_accuracy"], len(test_data),
               metrics["pgd_examples"], metrics["subset_accuracy"], metrics["pgd_accuracy"])
  return metrics


def describe(config, variant: str) -> str:
  """The variant's architecture name, or its imported model's source."""
  if is_imported(config, variant):
    spec = config.models[variant].source
    return f"imported ({spec.kind}: {spec.get('path') or spec.get('factory') or spec.get('name')})"
  return variant_model(config, variant).name


def imported_metrics(config, workdir: str) -> dict[str, dict]:
  """{variant: models/<variant>/metrics.json} of the imported variants (evaluated ones)."""
  out = {}
  for v in variant_names(config):
    path = os.path.join(workdir, "models", v, "metrics.json")
    if is_imported(config, v) and os.path.exists(path):
      out[v] = {k: x for k, x in io.read_json(path).items() if k != "stamp"}
  return out


def autoattack_cell(metrics: dict) -> str:
  """'41.0% [31.9, 50.8] (41/100), standard L-inf eps 8' for a variant's metrics with an
  AutoAttack summary ('-' without), with the flags that fired."""
  from advbound import stats  # pylint: disable=g-import-not-at-top
  a = metrics.get("autoattack")
  if not a:
    return "-"
  cell = stats.format_rate(stats.proportion(a["robust"], a["n"]))
  norm = {"linf": "L-inf", "l2": "L2"}[a["norm"]]
  flags = f"; checks: {' '.join(a['flags'])}" if a["flags"] else ""
  return f"{cell}, {a['version']} {norm} eps {a['epsilon']:g}{flags}"


def source_lines(config, workdir: str) -> list[str]:
  """Markdown lines naming each imported variant's source with its clean and PGD test accuracy
  (rates with their 95% Wilson intervals and counts); none when no variant is imported."""
  from advbound import stats  # pylint: disable=g-import-not-at-top
  names = [v for v in variant_names(config) if is_imported(config, v)]
  if not names:
    return []
  lines = ["## Imported models", "",
           "| variant | source | clean accuracy (test) | PGD accuracy | PGD | AutoAttack "
           "accuracy |", "|---|---|---|---|---|---|"]
  for v in names:
    path = os.path.join(workdir, "models", v, "metrics.json")
    if not os.path.exists(path):
      lines.append(f"| {v} | {config.models[v].source.kind} | not evaluated | | |")
      continue
    m = io.read_json(path)
    clean = stats.proportion(int(round(m["test_accuracy"] * m["test_examples"])), m["test_examples"])
    pgd = stats.proportion(int(round(m["pgd_accuracy"] * m["pgd_examples"])), m["pgd_examples"])
    p = m["pgd"]
    lines.append(f"| {v} | {m['source']} | {stats.format_rate(clean)} | "
                 f"{stats.format_rate(pgd)} | eps {p['epsilon']:g}, {p['num_steps']} steps of "
                 f"{p['step_size']:g} | {autoattack_cell(m)} |")
  return lines + [""]
