"""Stage "examples": at every measured epoch, the adversarial examples the other stages measure,
made against that epoch's model with the TRUE labels (the paper's definition of BI and FGSM,
Section 2: the gradient of J(theta, x + xi, y_true); the predicted labels are used only inside
adversarial training, see configs/common.py's training_dynamics_models):

  bi_eval   float32 [E, ...]  BI (PGD without random start: epsilon, step, iterations of
                              `study`) of the eval draw (Figures 3, 5, 6, 8; the whole test
                              split at the paper's settings)
  fgsm_eval float32 [E, ...]  FGSM at the same epsilon (Figure 8's FGSM curve, Figure 16)
  bi_test   float32 [N, ...]  the rows of bi_eval of the test draw (the paper's 256 inputs of
                              Figures 1, 9, 10)
  bi_train  float32 [M, ...]  BI of the study's M training inputs (Figure 9's training data)
  deepfool_eval float32 [E, ...]  DeepFool (destruction.deepfool settings), only at the epochs
                              of the destruction stage (Figures 15, 16)

in DIR/examples/epoch_<e>.npz, one file per epoch (resumable: finished epochs are kept). The
detectors' training examples (the detect draw, up to the whole training split) are made by the
detection stage and not stored. At the paper's settings (10,000 CIFAR-10 test images) one
epoch's file is about 250 MB.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from absl import logging

from advbound.attacks.deepfool import deepfool
from advbound.attacks.fgsm import fgsm
from advbound.attacks.pgd import pgd
from advbound.runtime import io, probe
from advbound.studies.training_dynamics import epochs as epochs_lib, settings

FIELDS = ("bi_eval", "fgsm_eval", "bi_test", "bi_train")


def path(workdir: str, epoch: int) -> str:
  return os.path.join(workdir, "examples", f"epoch_{epoch:04d}.npz")


def _in_chunks(attack, x, y, batch: int, name: str) -> np.ndarray:
  """attack(x_chunk, y_chunk) over x [N, ...] in chunks of `batch` rows, concatenated as float32
  [N, ...] (--estimate runs a few chunks and projects the rest)."""
  pieces = probe.each(
      lambda c: np.asarray(attack(x[c * batch:(c + 1) * batch], y[c * batch:(c + 1) * batch])),
      -(-len(x) // batch), name, last_differs=len(x) % batch != 0)
  return np.concatenate(pieces).astype(np.float32)


def bi(fn, x, y, study, bounds, batch: int) -> np.ndarray:
  """BI examples of x [N, ...] (labels y [N], the true ones in this study) in chunks of
  `batch`."""
  return _in_chunks(lambda xc, yc: pgd(
      fn, jax.random.key(0), xc, yc, epsilon=float(study.epsilon),
      step_size=float(study.step_size), num_steps=int(study.num_steps), bounds=bounds,
      random_start=False), x, y, batch, "BI chunks")


def fgsm_examples(fn, x, y, study, bounds, batch: int) -> np.ndarray:
  """FGSM examples of x [N, ...] (true labels y [N]) at study.epsilon, in chunks."""
  return _in_chunks(lambda xc, yc: fgsm(fn, xc, yc, epsilon=float(study.epsilon),
                                        bounds=bounds), x, y, batch, "FGSM chunks")


def deepfool_examples(fn, x, y, deepfool_cfg, bounds, batch: int) -> np.ndarray:
  """DeepFool examples of x [N, ...] (true labels y [N]) with the destruction.deepfool
  section `deepfool_cfg`."""
  df = settings.DeepFool.of(deepfool_cfg)
  return np.asarray(deepfool(
      fn, x, y, bounds=bounds, norm=df.norm, overshoot=float(df.overshoot),
      max_iterations=int(df.max_iterations), candidates=df.candidates,
      batch_size=batch).adversarial, np.float32)


def run(config, workdir: str, *, data: dict, stamps: dict, models: epochs_lib.Models) -> dict:
  study = config.study
  fixed = epochs_lib.inputs(config, data)
  bounds = data["test"].bounds
  deepfool_epochs = set(epochs_lib.resolve(config, config.destruction.epochs))
  batch = int(study.batch_size)
  draws = {k: len(fixed[f"{k}_index"]) for k in ("eval", "test", "train")}
  out = {}

  def stamp_of(epoch: int) -> str:
    return json.dumps(dict(model=stamps[study.adversarial], epoch=epoch, study=study.to_dict(),
                           draws=draws,
                           deepfool=(config.destruction.deepfool.to_dict()
                                     if epoch in deepfool_epochs else None)),
                      sort_keys=True, default=str)

  def write(epoch: int, got: dict) -> None:
    with io.atomic_path(path(workdir, epoch)) as tmp:
      np.savez(tmp, settings=np.asarray(stamp_of(epoch)), **got)

  def examples_of(epoch: int) -> dict:
    got = io.read_npz_if_current(path(workdir, epoch), stamp_of(epoch))
    if got is None:
      fn = models(epoch)
      (xe, ye), (xr, yr) = fixed["eval"], fixed["train"]
      bi_eval = bi(fn, xe, ye, study, bounds, batch)
      got = dict(bi_eval=bi_eval, fgsm_eval=fgsm_examples(fn, xe, ye, study, bounds, batch),
                 bi_test=bi_eval[fixed["test_in_eval"]],
                 bi_train=bi(fn, xr, yr, study, bounds, batch))
      if epoch in deepfool_epochs:
        got["deepfool_eval"] = deepfool_examples(fn, xe, ye, config.destruction.deepfool,
                                                 bounds, batch)
      write(epoch, got)
      logging.info("examples: epoch %d done", epoch)
    return got

  # the epochs with DeepFool cost more than the others: two loops, so that --estimate projects
  # each from its own kind (a probe skips epochs and stores the warm epoch's examples for them)
  epochs = epochs_lib.measured(config)
  for with_df in (False, True):
    group = [e for e in epochs if (e in deepfool_epochs) == with_df]
    done = probe.each(lambda c: (examples_of(group[c]), c), len(group),
                      "epochs with DeepFool" if with_df else "epochs")
    for c, (epoch, (got, source)) in enumerate(zip(group, done)):
      if source != c:
        write(epoch, got)
      out[str(epoch)] = {k: int(v.shape[0]) for k, v in got.items()}
  return {"epochs": epochs, "counts": {str(e): out[str(e)] for e in epochs}}


def load(workdir: str, epoch: int, fields=None) -> dict:
  """The stored examples of `epoch`: `fields` (default: all of them) -> float32 [N, ...]."""
  with np.load(path(workdir, epoch)) as f:
    return {k: f[k] for k in (fields or [k for k in f.files if k != "settings"])}
