"""The config sections every study shares, declared once (`advbound.config.schema`): the data
(`Data`), the architecture (`Model`), each model variant's training run (`Train`, with its
PGD `TrainAttack` and overfitting `Guard`) and the test-set evaluation (`Eval`).

`check_trained(c, top, sizes)` checks data, model and models of a study's config into the
`Checker` `c` and returns what the data turned out to be; each study's settings module checks
its own sections with it. Consumers read optional settings through `<Section>.of(cfg)` (the
declared defaults filled), never restating a default.

The data context (`ctx`) the sections are checked against: name, image_shape, num_classes,
span (the pixel range, high - low), pixels (values per image), and the split sizes train,
validation and test (each absent when the data section failed).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import numbers
import os
from typing import Any, Mapping

import jax
import numpy as np
from flax import nnx

from advbound import data as data_lib, models as models_lib
from advbound.config import schema
from advbound.config.schema import setting

__all__ = ["AutoAttackEval", "Data", "Eval", "Guard", "ImportedVariant", "Model", "Pgd", "Source", "Train",
           "TrainAttack", "check_trained", "data_ctx", "is_imported"]

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Data(schema.Section):
  """The data set (advbound.data). Checked against the data: the npz files are found and the
  split sizes read (labels only), so that counts elsewhere can be bounded by them."""
  name: str = setting(check=schema.Choice(tuple(data_lib.INFO)),
                      doc="the data set (advbound.data.INFO)")
  source: str = setting(check=schema.Choice(data_lib.SOURCES),
                        doc="where it is read from: tfds, embedded (MNIST only) or npz files")
  path: str = setting("", check=schema.Str(optional=True),
                      doc="npz only: a file or glob, may contain '{split}'")
  seed: int = setting(check=schema.Int(lo=0),
                      doc="PRNG seed of the split of one npz pool into train/validation/test")
  data_dir: str | None = setting(None, check=schema.Str(optional=True),
                                 doc="the tfds data directory (None: $TFDS_DATA_DIR or tfds')")
  validation_size: int | None = setting(
      None, check=schema.Int(lo=1, optional=True),
      doc="examples held out of the train split as the validation split (tfds, or npz with "
      "'{split}'; None: data.VALIDATION_SIZE, 5,000 for MNIST and CIFAR-10, 50 for ImageNet)")

  @classmethod
  def validate(cls, c, path, values, ctx):
    """Source and path agree, the data can be found, no split is empty. ctx["sizes"]: the split
    sizes if known (else read by data.split_sizes); ctx["found"], a dict, receives name,
    image_shape, num_classes, span and sizes."""
    found = ctx.get("found")
    found = found if isinstance(found, dict) else {}
    name, source = values.get("name"), values.get("source")
    if not (isinstance(name, str) and name in data_lib.INFO
            and isinstance(source, str) and source in data_lib.SOURCES):
      return
    where = values.get("path") or ""
    where = where if isinstance(where, str) else ""  # a bad path is reported by its check
    if source == "npz" and not where:
      c.fail(f"{path}.path", "source 'npz' needs a path (a file or glob, may contain '{split}')")
      return
    if source != "npz" and where:
      c.fail(f"{path}.path", f"{where!r} is given but data.source is {source!r}; paths are for "
             "'npz' (set --config.data.source=npz, or clear the path)")
    if source == "embedded" and name != "mnist":
      c.fail(f"{path}.source", f"the embedded source holds MNIST only, not {name!r}")
      return
    held_out = values.get("validation_size")
    if held_out is not None and (source == "embedded" or (source == "npz"
                                                          and "{split}" not in where)):
      c.fail(f"{path}.validation_size", f"{held_out!r} is given, but {source} data without "
             "'{split}' in data.path is one pool split 70/10/20 into train/validation/test; the "
             "hold-out size applies to tfds data and to npz paths with '{split}'")
    info = data_lib.INFO[name]
    found.update(name=name, image_shape=info.image_shape, num_classes=info.num_classes,
                 span=info.bounds[1] - info.bounds[0], bounds=info.bounds)
    sizes = ctx.get("sizes")
    if sizes is None:
      try:
        sizes = data_lib.split_sizes(
            name, source=source, path=where or None,
            validation_size=held_out if isinstance(held_out, int) else None)
      except (OSError, ValueError) as e:
        c.fail(f"{path}.path", str(e))
        return
    for split in SPLITS:
      if sizes.get(split, 0) < 1:
        c.fail(path, f"the {split} split of {name!r} ({source}) would be empty (sizes {sizes})")
    found["sizes"] = sizes


def _constructor_keys(cfg, ctx) -> tuple[str, ...]:
  """The keyword arguments of the named architecture's constructor (every key of `cfg` when the
  name is not an architecture: its keys cannot be judged)."""
  del ctx
  name = cfg.get("name") if hasattr(cfg, "get") else None
  if not (isinstance(name, str) and name in models_lib.REGISTRY):
    return tuple(cfg.keys())
  params = inspect.signature(models_lib.REGISTRY[name].__init__).parameters
  return tuple(p for p in params if p not in ("self", "rngs"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Model(schema.Section):
  """An architecture: its name and its constructor's keyword arguments (e.g. depth, width) as
  further keys. Checked against the data by an abstract forward pass (shapes only, no weights):
  it must take the data's images and output one logit per class."""
  name: str = setting(check=schema.Choice(tuple(models_lib.REGISTRY)),
                      doc="the architecture (advbound.models.REGISTRY); other keys are its "
                      "constructor's keyword arguments")

  extra_keys = staticmethod(_constructor_keys)

  @classmethod
  def validate(cls, c, path, values, ctx):
    name = values.get("name")
    if (not (isinstance(name, str) and name in models_lib.REGISTRY) or c.failed_under(path)
        or "image_shape" not in ctx):
      return
    kwargs = {k: schema.to_dict(v) for k, v in values.items() if k != "name"}
    image_shape, data_name = tuple(ctx["image_shape"]), ctx.get("name")
    try:  # abstract: builds shapes only, no weights, no compute
      def forward():
        model = models_lib.build(name, rngs=nnx.Rngs(0), **kwargs)
        model.eval()
        return model(jax.numpy.zeros((1,) + image_shape, jax.numpy.float32))
      out = jax.eval_shape(forward)
    except Exception as e:  # pylint: disable=broad-except
      c.fail(path, f"{name} with {kwargs} does not build or does not take {data_name} images "
             f"{image_shape}: {type(e).__name__}: {e}")
      return
    if tuple(out.shape) != (1, ctx.get("num_classes")):
      c.fail(path, f"{name} with {kwargs} outputs {tuple(out.shape[1:])} logits per image; "
             f"{data_name} has {ctx.get('num_classes')} classes")


@dataclasses.dataclass(frozen=True)
class OwnModel(schema.Check):
  """A model variant's own architecture: a `Model` section, or None / empty (the config's)."""

  def __call__(self, c, path, value, ctx):
    if not value:
      return True
    before = len(c.problems)
    Model.check(c, path, value, ctx)
    return len(c.problems) == before

  def describe(self):
    return "section Model or None"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pgd(schema.Section):
  """An L-inf PGD attack (Madry et al.) on the data's scale."""
  epsilon: float = setting(check=schema.Real(lo=0, hi="span"),
                           doc="the L-inf budget, on the data's scale (at most its range)")
  step_size: float = setting(check=schema.Real(lo=0, hi="span"),
                             doc="the size of one signed-gradient step")
  num_steps: int = setting(check=schema.Int(lo=0), doc="the number of steps")
  random_start: bool = setting(check=schema.Flag(),
                               doc="start from a uniform draw in the epsilon ball")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainAttack(Pgd):
  """The PGD of adversarial training (`adversarial`), made with the current weights."""
  epsilon_warmup_fraction: float = setting(
      0.0, check=schema.Real(lo=0, hi=1, hi_open=True),
      doc="ramp epsilon linearly up from 0 over this fraction of the run (0: no ramp)")
  labels: str = setting("true", check=schema.Choice(("true", "predicted")),
                        doc="attack the true labels, or the model's predictions (no label "
                        "leaking, Kurakin et al.)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Guard(schema.Section):
  """The catastrophic-overfitting guard (advbound.training.guard; Wong et al., 2020)."""
  every: int = setting(check=schema.Count(), doc="check every this many steps (and at the end)")
  examples: int = setting(check=schema.Count(at_most="train"),
                          doc="the seeded draw of training images each check attacks")
  pgd: Pgd = setting(check=schema.Sub(Pgd), doc="the PGD of the checks")
  max_drop: float = setting(check=schema.Real(lo=0, hi=1),
                            doc="stop when PGD accuracy falls this far below the best check")
  seed: int = setting(0, check=schema.Int(lo=0), doc="PRNG seed of the draw and the PGD starts")


SCHEDULES = ("constant", "piecewise", "cosine", "onecycle", "cyclic")
UPSTREAM = ("distill_from", "augment_from", "init_from")


def _architecture(models_cfg, variant: str):
  """A variant's own `model` section as a dict, or "the config's model" when it has none."""
  own = models_cfg[variant].get("model") if hasattr(models_cfg[variant], "get") else None
  return schema.to_dict(own) if own else "the config's model"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Train(schema.Section):
  """One model variant's training run (models.<variant>). ctx["models"]: the models section
  (for the variants named by distill_from, augment_from, init_from); ctx["entry"]: this one."""
  seed: int = setting(check=schema.Int(lo=0), doc="PRNG seed of the weights, batches and PGD")
  num_steps: int = setting(check=schema.Count(), doc="training steps")
  batch_size: int = setting(check=schema.Count(at_most="train"), doc="images per step")
  optimizer: str = setting(check=schema.Choice(("adam", "sgd")), doc="adam or sgd")
  learning_rate: float = setting(check=schema.Real(lo=0, lo_open=True),
                                 doc="the peak learning rate")
  momentum: float = setting(check=schema.Real(lo=0, hi=1, hi_open=True),
                            doc="sgd's momentum (sgd only)")
  nesterov: bool = setting(check=schema.Flag(), doc="sgd with Nesterov momentum (sgd only)")
  weight_decay: float = setting(check=schema.Real(lo=0),
                                doc="L2 term added to the gradient (0: none)")
  schedule: str = setting(check=schema.Choice(SCHEDULES), doc="the learning-rate schedule")
  schedule_boundaries: tuple = setting(
      check=schema.Anything(),
      doc="piecewise: increasing fractions of num_steps in (0, 1) where the rate changes")
  schedule_factors: tuple = setting(
      check=schema.Anything(),
      doc="piecewise: learning-rate multipliers (> 0) from each boundary on")
  warmup_fraction: float = setting(check=schema.Real(lo=0, hi=1, hi_open=True),
                                   doc="cosine / onecycle: fraction of the run warming up")
  augment: str = setting(check=schema.Choice(("none", "crop_flip")),
                         doc="data augmentation: none, or random crop and flip")
  adversarial: bool = setting(check=schema.Flag(), doc="train on PGD examples of `attack`")
  attack: TrainAttack = setting(check=schema.Sub(TrainAttack),
                                doc="the PGD of adversarial training (adversarial only)")
  log_every: int = setting(check=schema.Count(), doc="log the loss every this many steps")
  checkpoint_every: int = setting(check=schema.Count(),
                                  doc="save a resumable checkpoint every this many steps")
  temperature: float = setting(1.0, check=schema.Real(lo=0, lo_open=True),
                               doc="softmax temperature of training (defensive distillation; "
                               "deployed at 1)")
  distill_from: str | None = setting(None, check=schema.Str(optional=True),
                                     doc="learn from this variant's soft labels at temperature "
                                     "(Papernot et al.)")
  augment_from: str | None = setting(None, check=schema.Str(optional=True),
                                     doc="add DeepFool examples of this variant to the training "
                                     "data (Cao & Gong's baseline)")
  augment_examples: int | None = setting(None, check=schema.Count(optional=True),
                                         doc="augment_from: examples of the first this many "
                                         "training images (None: all)")
  snapshot_every: int | None = setting(None, check=schema.Count(optional=True),
                                       doc="keep a weights snapshot every this many steps "
                                       "(None: none)")
  init_from: str | None = setting(None, check=schema.Str(optional=True),
                                  doc="start from this variant's trained weights (same "
                                  "architecture)")
  compute_dtype: str = setting("float32", check=schema.Choice(models_lib.COMPUTE_DTYPES),
                               doc="dtype the model computes in while training (float32 "
                               "parameters)")
  label_smoothing: float = setting(0.0, check=schema.Real(lo=0, hi=1, hi_open=True),
                                   doc="smoothing of the one-hot targets (0: none)")
  cutout: int = setting(0, check=schema.Int(lo=0),
                        doc="side of the square cut out of each augmented image (0: none)")
  guard: Guard | None = setting(None, check=schema.Sub(Guard, optional=True),
                                doc="the catastrophic-overfitting guard (None: none)")
  model: dict | None = setting(None, check=OwnModel(),
                               doc="this variant's own architecture (None: the config's model)")

  @classmethod
  def validate(cls, c, path, values, ctx):
    bounds, factors = values.get("schedule_boundaries"), values.get("schedule_factors")
    if not (isinstance(bounds, (tuple, list)) and all(
        isinstance(b, numbers.Real) and 0 < b < 1 for b in bounds) and list(bounds) == sorted(
            bounds)):
      c.fail(f"{path}.schedule_boundaries", f"must be increasing fractions in (0, 1), got "
             f"{bounds!r}")
    elif not (isinstance(factors, (tuple, list)) and len(factors) == len(bounds) and all(
        isinstance(f, numbers.Real) and f > 0 for f in factors)):
      c.fail(f"{path}.schedule_factors", f"must be {len(bounds)} numbers > 0 (one per "
             f"boundary), got {factors!r}")
    models_cfg, v = ctx.get("models"), ctx.get("entry")
    if not hasattr(models_cfg, "keys") or v not in models_cfg.keys():
      return
    names = tuple(models_cfg.keys())
    init = values.get("init_from")
    if isinstance(init, str) and init in names and _architecture(
        models_cfg, v) != _architecture(models_cfg, init):
      c.fail(f"{path}.init_from", f"{init!r} has another architecture "
             f"({_architecture(models_cfg, init)}, not {_architecture(models_cfg, v)}): a run "
             "can start only from weights of its own architecture")
    for key in UPSTREAM:
      other = values.get(key)  # not a string: reported by its check
      if isinstance(other, str) and (other not in names or other == v):
        c.fail(f"{path}.{key}", f"must name another model variant "
               f"({sorted(k for k in names if k != v)}), got {other!r}")
    if isinstance(init, str) and init in names and is_imported(models_cfg[init]):
      c.fail(f"{path}.init_from", f"{init!r} is an imported model (models.{init}.source): a "
             "run can start only from weights of our own architectures")
    if (not values.get("model") and ctx.get("model_missing")):
      c.fail(path, "trains on the config's model, but the config has no `model` section (set "
             f"model, or models.{v}.model, or give models.{v} a source)")


SOURCE_KINDS = ("torch", "keras", "flax", "robustbench")
ROBUSTBENCH_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet"}


def _file_check(c, path, where, what) -> None:
  if where and not os.path.exists(os.path.expanduser(where)):
    c.fail(path, f"{what} {where!r} does not exist")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Source(schema.Section):
  """Where an imported model comes from (advbound.models.sources.load) and what it takes: its
  input range and normalisation. Checked against the data without loading the model: the
  files exist, the factory's module can be found, and the model's input range equals the
  data's bounds unless `rescale` maps one onto the other."""
  kind: str = setting(check=schema.Choice(SOURCE_KINDS),
                      doc="torch, keras, flax (a Flax NNX module or one of our workdirs) or "
                      "robustbench")
  path: str = setting("", check=schema.Str(optional=True),
                      doc="torch: a torch.export .pt2 file; keras: a .keras file; flax: a "
                      "study workdir holding models/<variant>")
  factory: str = setting("", check=schema.Str(optional=True),
                         doc="'package.module:callable' building the network (torch "
                         "nn.Module, keras.Model or nnx.Module), instead of a path")
  kwargs: dict | None = setting(None, check=schema.Anything(),
                                doc="the factory's keyword arguments")
  weights: str = setting("", check=schema.Str(optional=True),
                         doc="a weights file loaded into the factory's network (torch: a "
                         "state_dict; keras: .weights.h5)")
  variant: str = setting("natural", check=schema.Str(),
                         doc="flax with a workdir path: the variant under models/")
  name: str = setting("", check=schema.Str(optional=True), doc="robustbench: the model's name")
  dataset: str = setting("", check=schema.Str(optional=True),
                         doc="robustbench: cifar10, cifar100 or imagenet")
  threat_model: str = setting("Linf", check=schema.Choice(("Linf", "L2", "corruptions",
                                                          "corruptions_3d")),
                              doc="robustbench: the threat model of the leaderboard")
  model_dir: str = setting("models", check=schema.Str(),
                           doc="robustbench: the local models folder (.pt2 exports, checkpoints)")
  input_shape: tuple | None = setting(
      None, check=schema.Anything(),
      doc="torch: the module's per-example input shape (None: the data's, in `layout`)")
  layout: str = setting("NCHW", check=schema.Choice(("NCHW", "NHWC")),
                        doc="torch: the layout the module takes")
  input_range: tuple | None = setting(
      None, check=schema.Anything(),
      doc="the model's own pixel range (None: [0, 1]; flax workdirs: their data's bounds)")
  mean: tuple | None = setting(None, check=schema.Anything(),
                               doc="per-channel normalisation before the network (None: none)")
  std: tuple | None = setting(None, check=schema.Anything(), doc="with mean")
  rescale: bool = setting(False, check=schema.Flag(),
                          doc="map the data's bounds linearly onto input_range (the study's "
                          "units stay the data's)")
  embedding: str | None = setting(None, check=schema.Str(optional=True),
                                  doc="the layer whose input is the embedding (blind-spot study)")

  @classmethod
  def validate(cls, c, path, values, ctx):
    kind = values.get("kind")
    if kind not in SOURCE_KINDS:
      return
    where, factory = values.get("path") or "", values.get("factory") or ""
    if kind == "robustbench":
      for key in ("name", "dataset"):
        if not values.get(key):
          c.fail(f"{path}.{key}", "required by kind 'robustbench'")
      dataset = values.get("dataset")
      if dataset and dataset not in ROBUSTBENCH_DATASETS:
        c.fail(f"{path}.dataset", f"must be one of {sorted(ROBUSTBENCH_DATASETS)}, got "
               f"{dataset!r}")
      elif dataset and ctx.get("name") and ctx["name"] != dataset:
        c.fail(f"{path}.dataset", f"the model is for {dataset!r} but data.name is "
               f"{ctx['name']!r}")
    elif bool(where) == bool(factory):
      c.fail(path, f"kind {kind!r} needs exactly one of path and factory")
    if isinstance(where, str):
      _file_check(c, f"{path}.path", where, "path")
    if isinstance(values.get("weights"), str):
      _file_check(c, f"{path}.weights", values.get("weights"), "weights file")
    if kind == "keras":  # Keras picks its backend when first imported: ours is JAX
      os.environ.setdefault("KERAS_BACKEND", "jax")
    if isinstance(factory, str) and factory:
      module, _, attr = factory.partition(":")
      if not module or not attr:
        c.fail(f"{path}.factory", f"must be 'package.module:callable', got {factory!r}")
      else:
        try:
          found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
          found = None
        if found is None:
          c.fail(f"{path}.factory", f"module {module!r} cannot be found (is it installed, or "
                 "on PYTHONPATH?)")
    for key in ("input_range", "mean", "std"):
      value = values.get(key)
      if value is not None and not (isinstance(value, (tuple, list)) and all(
          isinstance(v, numbers.Real) for v in value)):
        c.fail(f"{path}.{key}", f"must be a list of numbers or None, got {value!r}")
    if (values.get("mean") is None) != (values.get("std") is None):
      c.fail(path, "give both mean and std, or neither")
    shape = values.get("input_shape")
    if shape is not None and not (isinstance(shape, (tuple, list)) and len(shape) == 3 and all(
        isinstance(v, numbers.Integral) and v > 0 for v in shape)):
      c.fail(f"{path}.input_shape", f"must be 3 positive sizes or None, got {shape!r}")
    bounds = ctx.get("bounds")
    given = values.get("input_range")
    if kind == "flax" and where and given is None:
      return  # a workdir's model takes its own data's units; checked when loaded
    model_range = tuple(float(v) for v in given) if given is not None else (0.0, 1.0)
    if len(model_range) != 2 or not model_range[0] < model_range[1]:
      c.fail(f"{path}.input_range", f"must be (lo, hi) with lo < hi, got {given!r}")
    elif (bounds is not None and tuple(map(float, bounds)) != model_range
          and values.get("rescale") is not True):
      c.fail(f"{path}.input_range", f"the model takes inputs in [{model_range[0]:g}, "
             f"{model_range[1]:g}] but {ctx.get('name')} data is in [{bounds[0]:g}, "
             f"{bounds[1]:g}]: set {path}.rescale=True to map the data's range onto the "
             "model's (attacks, radii and distances stay in the data's units), or "
             f"{path}.input_range to the range the model really takes")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImportedVariant(schema.Section):
  """A model variant imported instead of trained (models.<variant> with a `source`): the model,
  and the evaluation the report gives beside it (clean and PGD accuracy on the study's test
  data)."""
  source: Source = setting(check=schema.Sub(Source), doc="where the model comes from")
  eval: Any = setting(check=schema.Anything(),
                      doc="its clean and PGD accuracy on the test split (an `eval` section)")

  @classmethod
  def validate(cls, c, path, values, ctx):
    if values.get("eval") is not None:
      Eval.check(c, f"{path}.eval", values["eval"], ctx)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AutoAttackEval(schema.Section):
  """AutoAttack's robust accuracy (advbound.attacks.autoattack; Croce & Hein) on the first
  `examples` test images, with the reference's settings of `version`."""
  version: str = setting("standard", check=schema.Choice(("standard", "plus")),
                         doc="standard (APGD-CE, APGD-T, FAB-T, Square) or plus")
  norm: str = setting("linf", check=schema.Choice(("linf", "l2")), doc="the threat model")
  epsilon: float = setting(check=schema.Real(lo=0, lo_open=True, hi="span"),
                           doc="the budget, on the data's scale")
  examples: int = setting(check=schema.Count(at_most="test"),
                          doc="attack the first this many test images")
  batch_size: int | None = setting(None, check=schema.Count(optional=True),
                                   doc="images per compiled call (None: the eval's batch_size)")
  seed: int = setting(0, check=schema.Int(lo=0), doc="PRNG seed of the attacks")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Eval(schema.Section):
  """The test-set evaluation of each trained variant: clean accuracy on every test image, PGD
  accuracy on the first pgd_examples."""
  seed: int = setting(check=schema.Int(lo=0), doc="PRNG seed of the PGD starts")
  batch_size: int = setting(check=schema.Count(), doc="images per batch")
  pgd_examples: int = setting(check=schema.Count(at_most="test"),
                              doc="PGD on the first this many test images")
  pgd: Pgd = setting(check=schema.Sub(Pgd), doc="the evaluation's PGD")
  compute_dtype: str = setting("float32", check=schema.Choice(models_lib.COMPUTE_DTYPES),
                               doc="dtype the model computes in while evaluated")
  autoattack: AutoAttackEval | None = setting(
      None, check=schema.Sub(AutoAttackEval, optional=True),
      doc="AutoAttack's robust accuracy beside PGD's (None: not run)")


def is_imported(entry) -> bool:
  """Whether a models.<variant> entry imports its model (has a `source`) instead of training."""
  return hasattr(entry, "keys") and "source" in entry.keys()


@dataclasses.dataclass(frozen=True)
class Variants(schema.Each):
  """The models section: each entry a `Train` run, or an `ImportedVariant` (it has a `source`)."""

  def pick(self, entry) -> type:
    return ImportedVariant if is_imported(entry) else Train

  def describe(self):
    return "named model variants, each a section Train, or ImportedVariant (with a source)"


MODELS = Variants(Train, what="model variant")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Trained(schema.Section):
  """The top-level sections every study's config holds, checked together by `check_trained`;
  each study's top-level `Config` derives from it and adds its own sections."""
  data: Any = setting(doc="the data set (`data` above)")
  model: Any = setting(None, doc="the architecture (`model` above); None when every variant "
                       "has its own or is imported")
  models: Any = setting(doc="the model variants, each a `models.<variant>` section (above)")


def data_ctx(info: Mapping[str, Any], sizes: Mapping[str, int]) -> dict[str, Any]:
  """The data context the sections are checked against: `info` (name, image_shape,
  num_classes, span), pixels, and the split sizes."""
  ctx = {**info, **sizes}
  if "image_shape" in info:
    ctx["pixels"] = int(np.prod(info["image_shape"]))
  return ctx


def check_trained(c: schema.Checker, top: dict, sizes, variants=None) -> tuple[dict, dict, tuple]:
  """Checks the sections every study shares (data, model, models) of the config's top-level
  sections `top` (as written). `sizes`: the split sizes if known (None: read from the data);
  `variants`: the variants a run is restricted to (--only), each must exist. Returns (data
  info: name, image_shape, num_classes, span; split sizes; the model variants' names)."""
  info: dict[str, Any] = {}
  if top.get("data") is not None:
    Data.check(c, "data", top["data"], {"sizes": sizes, "found": info})
  sizes = info.pop("sizes", None) or {}
  ctx = data_ctx(info, sizes)
  if top.get("model") is not None:
    Model.check(c, "model", top["model"], ctx)
  models = top.get("models")
  if models is not None:
    MODELS(c, "models", models, {**ctx, "models": models,
                                 "model_missing": top.get("model") is None})
    names = list(models.keys()) if hasattr(models, "keys") else []
    for v in (variants or ()) if names else ():
      if v not in names:
        c.fail("--only", f"unknown model variant {v!r}; the config has {sorted(names)}")
  return info, sizes, tuple(models.keys()) if hasattr(models, "keys") else ()
