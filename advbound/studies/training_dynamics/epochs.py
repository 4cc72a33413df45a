"""The epochs of adversarial training and the study's fixed draws of inputs.

Epoch e (0 <= e <= T) is the adversarially trained variant after e * S steps, S =
`models.<adversarial>.snapshot_every` (one epoch of its training data); epoch 0 is the naturally
trained model it starts from (`init_from`). Settings name epochs as integers, -1 for the last.
"""

from __future__ import annotations

import os

import numpy as np

from advbound import models, train


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
      model = train.load_snapshot(train.variant_model(self.config, self.variant),
                                  self.config.models[self.variant],
                                  self.folder, epoch * self.steps)
      self._cache = (epoch, models.as_logits_fn(model))
    return self._cache[1]


def draw(n: int, k: int, seed: int, stream: int) -> np.ndarray:
  """k distinct indices of range(n), ascending, from the seeded stream (int64 [k])."""
  if k > n:
    raise ValueError(f"cannot draw {k} of {n} inputs")
  return np.sort(np.random.default_rng([seed, stream]).choice(n, k, replace=False))


# the seeded streams of the draws
TEST, TRAIN, SHARED_TEST, SHARED_TRAIN, RATIO = range(5)


def inputs(config, data: dict) -> dict:
  """The study's fixed inputs: {"test": (x, y), "train": (x, y)}, study.test_images and
  study.train_images seeded draws (a class-sorted split is sampled evenly in expectation)."""
  s = config.study
  test, tr = data["test"], data["train"]
  ti = draw(len(test), int(s.test_images), int(s.seed), TEST)
  ri = draw(len(tr), int(s.train_images), int(s.seed), TRAIN)
  return {"test": (test.images[ti], test.labels[ti]), "train": (tr.images[ri], tr.labels[ri]),
          "test_index": ti, "train_index": ri}
