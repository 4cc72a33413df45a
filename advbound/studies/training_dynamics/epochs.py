"""The epochs of adversarial training and the study's fixed draws of inputs.

Epoch e (0 <= e <= T) is the adversarially trained variant after e * S steps, S =
`models.<adversarial>.snapshot_every`; epoch 0 is the naturally trained model it starts from
(`init_from`). S is one pass over the training split, `steps_per_epoch(len(train), batch)` (the
trainer's epoch: `training.batch_indices` draws a permutation per n // batch steps and drops the
remainder), unless `study.partial_epoch_steps` declares a shorter "epoch" (quickstarts on large
splits). Settings name epochs as integers, -1 for the last.

Draws of inputs (seeded, nested: a smaller draw is a subset of a larger one of its split):
  eval      study.eval_images test inputs (None: the whole test split): Figures 3, 5, 6, 8, 16
  test      study.test_images of them (the paper's 256): Figures 1, 9, 10
  train     study.train_images training inputs (256): Figure 9's training data
  detect    detect.train_images training inputs (None: the whole training split), a superset
            of `train`: the detectors' training data (Section 3.4)
"""

from __future__ import annotations

import os

import numpy as np

from advbound import models, training
from advbound.studies import variants as variants_lib
from advbound.studies.training_dynamics import settings



def count(config) -> int:
  """T, the number of adversarial-training epochs."""
  a = config.models[config.study.adversarial]
  return int(a.num_steps) // int(a.snapshot_every)


def resolve(config, epochs) -> list[int]:
  """Epoch settings (-1: the last) -> sorted distinct epochs; None: every measured epoch."""
  if epochs is None:
    return measured(config)
  last = count(config)
  return sorted({last if int(e) == -1 else int(e) for e in epochs})


def measured(config) -> list[int]:
  """The epochs the study measures: study.epochs (None: 0..T), -1 resolved."""
  if config.study.epochs is None:
    return list(range(count(config) + 1))
  return resolve(config, config.study.epochs)


def label(config, epoch: int) -> str:
  """"last" for the final epoch, else the number (the paper's text names epochs this way)."""
  return "last" if epoch == count(config) else str(epoch)


class Models:
  """Loads the model of an epoch from the adversarial variant's snapshots (one at a time; the
  last one loaded is kept)."""

  def __init__(self, config, workdir: str):
    self.config, self.variant = config, config.study.adversarial
    self.folder = os.path.join(workdir, "models", self.variant)
    self.steps = int(config.models[self.variant].snapshot_every)
    self._cache: tuple[int, object] | None = None

  def __call__(self, epoch: int):
    """The pure logits_fn of the model after `epoch` epochs of adversarial training."""
    if self._cache is None or self._cache[0] != epoch:
      model = training.load_snapshot(variants_lib.variant_model(self.config, self.variant),
                                     self.config.models[self.variant],
                                     self.folder, epoch * self.steps)
      self._cache = (epoch, models.as_logits_fn(model))
    return self._cache[1]


def draw(n: int, k: int, seed: int, stream: int) -> np.ndarray:
  """k distinct indices of range(n), ascending, from the seeded stream (int64 [k])."""
  if k > n:
    raise ValueError(f"cannot draw {k} of {n} inputs")
  return np.sort(np.random.default_rng([seed, stream]).choice(n, k, replace=False))


def nested(n: int, k: int, seed: int, stream: int) -> np.ndarray:
  """The first k of the stream's seeded permutation of range(n), ascending (int64 [k]): for
  k1 <= k2 the draw of k1 is a subset of the draw of k2."""
  if isinstance(k, bool) or int(k) != k or not 0 <= k <= n:
    raise ValueError(f"cannot draw {k!r} of {n} inputs")
  return np.sort(np.random.default_rng([seed, stream]).permutation(n)[:k])


# the seeded streams of the draws
TEST, TRAIN, SHARED_TEST, SHARED_TRAIN, RATIO = range(5)


def sizes(config, data: dict, *, detect: bool = False) -> dict:
  """The draws' sizes, None settings resolved to the whole split: {"eval", "test", "train"}
  and, with `detect`, "detect" (the detectors' training draw: only the detection stage reads
  the detect section)."""
  s = settings.Study.of(config.study)
  n_test = len(data["test"])
  ev = n_test if s.eval_images is None else int(s.eval_images)
  out = dict(eval=ev, test=int(s.test_images), train=int(s.train_images))
  if detect:
    d = settings.Detect.of(config.detect)
    out["detect"] = len(data["train"]) if d.train_images is None else int(d.train_images)
  return out


def inputs(config, data: dict, *, detect: bool = False) -> dict:
  """The study's fixed inputs, seeded nested draws (a class-sorted split is sampled evenly in
  expectation): {"eval", "test", "train": (x, y)}, with `detect` also "detect", and their
  indices "<draw>_index" into the split; "test_in_eval" [N] (and, with `detect`,
  "train_in_detect" [M]) locate the smaller draws inside the larger ones. Each draw is the
  first k of its stream's permutation, so it does not depend on the sizes of the others."""
  s = config.study
  test, tr = data["test"], data["train"]
  k = sizes(config, data, detect=detect)
  if k["test"] > k["eval"] or (detect and k["train"] > k["detect"]):
    raise ValueError(f"study.test_images ({k['test']}) must be <= the eval draw ({k['eval']})"
                     f" and study.train_images ({k['train']}) <= detect.train_images "
                     f"({k.get('detect')})")
  idx = dict(eval=nested(len(test), k["eval"], int(s.seed), TEST),
             test=nested(len(test), k["test"], int(s.seed), TEST),
             train=nested(len(tr), k["train"], int(s.seed), TRAIN))
  if detect:
    idx["detect"] = nested(len(tr), k["detect"], int(s.seed), TRAIN)
  out = {}
  for name, i in idx.items():
    split = test if name in ("eval", "test") else tr
    out[name] = (split.images[i], split.labels[i])
    out[f"{name}_index"] = i
  out["test_in_eval"] = np.searchsorted(idx["eval"], idx["test"])
  if detect:
    out["train_in_detect"] = np.searchsorted(idx["detect"], idx["train"])
  return out
