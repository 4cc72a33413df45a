"""Stage "examples": at every measured epoch, the adversarial examples the other stages measure,
made against that epoch's model with the true labels:

  bi_test   float32 [N, ...]  BI (PGD without random start: epsilon, step, iterations of
                              `study`) of the study's N test inputs
  fgsm_test float32 [N, ...]  FGSM at the same epsilon (Appendix A's learning curve)
  bi_train  float32 [M, ...]  BI of the study's M training inputs (detectors, Figure 9)
  deepfool_test float32 [N, ...]  DeepFool (destruction.deepfool settings), only at the epochs
                              of the destruction stage

in DIR/examples/epoch_<e>.npz, one file per epoch (resumable: finished epochs are kept).
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from absl import logging

from advbound import io
from advbound.attacks.deepfool import deepfool
from advbound.attacks.fgsm import fgsm
from advbound.attacks.pgd import pgd
from advbound.studies.training_dynamics import epochs as epochs_lib

FIELDS = ("bi_test", "fgsm_test", "bi_train")


def path(workdir: str, epoch: int) -> str:
  return os.path.join(workdir, "examples", f"epoch_{epoch:04d}.npz")


def bi(fn, x, y, study, bounds, batch: int) -> np.ndarray:
  """BI examples of x [N, ...] (true labels y [N]) in chunks of `batch`."""
  out = [np.asarray(pgd(fn, jax.random.key(0), x[i:i + batch], y[i:i + batch],
                        epsilon=float(study.epsilon), step_size=float(study.step_size),
                        num_steps=int(study.num_steps), bounds=bounds, random_start=False))
         for i in range(0, len(x), batch)]
  return np.concatenate(out).astype(np.float32)


def run(config, workdir: str, *, data: dict, stamps: dict, models: epochs_lib.Models) -> dict:
  study = config.study
  fixed = epochs_lib.inputs(config, data)
  bounds = data["test"].bounds
  deepfool_epochs = set(epochs_lib.resolve(config, config.destruction.epochs))
  batch = int(study.batch_size)
  out = {}
  for epoch in epochs_lib.measured(config):
    want_df = epoch in deepfool_epochs
    stamp = json.dumps(dict(model=stamps[study.adversarial], epoch=epoch, study=study.to_dict(),
                            deepfool=config.destruction.deepfool.to_dict() if want_df else None),
                       sort_keys=True, default=str)
    p = path(workdir, epoch)
    got = io.read_npz_if_current(p, stamp)
    if got is None:
      fn = models(epoch)
      (xt, yt), (xr, yr) = fixed["test"], fixed["train"]
      got = dict(bi_test=bi(fn, xt, yt, study, bounds, batch),
                 fgsm_test=np.concatenate([np.asarray(fgsm(
                     fn, xt[i:i + batch], yt[i:i + batch], epsilon=float(study.epsilon),
                     bounds=bounds)) for i in range(0, len(xt), batch)]).astype(np.float32),
                 bi_train=bi(fn, xr, yr, study, bounds, batch))
      if want_df:
        d = config.destruction.deepfool
        got["deepfool_test"] = np.asarray(deepfool(
            fn, xt, yt, bounds=bounds, norm=d.norm, overshoot=float(d.overshoot),
            max_iterations=int(d.max_iterations), candidates=d.get("candidates"),
            batch_size=batch).adversarial, np.float32)
      with io.atomic_path(p) as tmp:
        np.savez(tmp, settings=np.asarray(stamp), **got)
      logging.info("examples: epoch %d done", epoch)
    out[str(epoch)] = {k: int(v.shape[0]) for k, v in got.items()}
  return {"epochs": epochs_lib.measured(config), "counts": out}


def load(workdir: str, epoch: int, fields=None) -> dict:
  """The stored examples of `epoch`: `fields` (default: all of them) -> float32 [N, ...]."""
  with np.load(path(workdir, epoch)) as f:
    return {k: f[k] for k in (fields or [k for k in f.files if k != "settings"])}
