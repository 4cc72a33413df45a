"""Stage "universal": Metzen et al.'s universal perturbations (Section 3.2, Appendices D-E,
Figures 3, 4, 12, 13) at every measured epoch, made on the whole training split and on the whole
test split (the model's true labels), and the accuracy of the eval draw (the whole test split
at the paper's settings) under them, each also as a `stats.proportion` cell under "rates":
under the same epoch's perturbation, and under the perturbations of the fixed epochs
`universal.fixed_epochs` (made on training data).

DIR/universal/epoch_<e>.npz holds xi_<source> float32 [*image_shape] per source (train, test);
one file per epoch, resumable.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from absl import logging

from advbound import stats
from advbound.analysis import evaluate
from advbound.attacks.universal import accuracy_under, universal_perturbation
from advbound.runtime import io, probe
from advbound.studies.training_dynamics import epochs as epochs_lib


def path(workdir: str, epoch: int) -> str:
  return os.path.join(workdir, "universal", f"epoch_{epoch:04d}.npz")


def make(config, fn, data_split, epoch: int, source: int):
  u = config.universal
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(int(u.seed)), epoch), source)
  return np.asarray(universal_perturbation(
      fn, key, data_split.images, data_split.labels, epsilon=float(u.epsilon),
      step_size=float(u.step_size), bounds=data_split.bounds, batch_size=int(u.batch_size),
      batches_per_step=int(u.batches_per_step), num_iterations=int(u.iterations)))


def run(config, workdir: str, *, data: dict, stamps: dict, models: epochs_lib.Models) -> dict:
  u, study = config.universal, config.study
  xt, yt = epochs_lib.inputs(config, data)["eval"]
  bounds, batch = data["test"].bounds, int(study.batch_size)
  ep = epochs_lib.measured(config)
  sources = tuple(u.sources)
  xis = {}

  def stamp_of(epoch: int) -> str:
    return json.dumps(dict(model=stamps[study.adversarial], epoch=epoch, universal=u.to_dict()),
                      sort_keys=True, default=str)

  def write(epoch: int, got: dict) -> None:
    with io.atomic_path(path(workdir, epoch)) as tmp:
      np.savez(tmp, settings=np.asarray(stamp_of(epoch)), **got)

  def perturbations(epoch: int) -> dict:
    got = io.read_npz_if_current(path(workdir, epoch), stamp_of(epoch))
    if got is None:
      fn = models(epoch)
      got = {f"xi_{s}": make(config, fn, data[s], epoch, i) for i, s in enumerate(sources)}
      write(epoch, got)
      logging.info("universal: epoch %d done", epoch)
    return got

  # the epochs cost alike (a compiled loop each): --estimate runs a few and projects the rest
  # (a skipped epoch stores a computed epoch's perturbations)
  done = probe.each(lambda c: (perturbations(ep[c]), c), len(ep), "epochs")
  for c, (got, source) in enumerate(done):
    if source != c:
      write(ep[c], got)
    xis[ep[c]] = got
  fixed = epochs_lib.resolve(config, u.fixed_epochs)
  acc = {s: [] for s in sources}
  acc.update({f"fixed_{epochs_lib.label(config, f)}": [] for f in fixed})
  clean = []

  def evaluations(c: int) -> dict:
    fn = models(ep[c])
    row = {"clean": evaluate.accuracy(fn, xt, yt, batch_size=batch)}
    for s in sources:
      row[s] = accuracy_under(fn, xis[ep[c]][f"xi_{s}"], xt, yt, bounds=bounds,
                              batch_size=batch)
    for f in fixed:
      row[f"fixed_{epochs_lib.label(config, f)}"] = accuracy_under(
          fn, xis[f]["xi_train"], xt, yt, bounds=bounds, batch_size=batch)
    return row

  for row in probe.each(evaluations, len(ep), "evaluations"):
    clean.append(row["clean"])
    for k in acc:
      acc[k].append(row[k])
  cell = lambda a: stats.proportion(int(round(a * len(yt))), len(yt))
  return dict(epochs=ep, sources=list(sources), fixed_epochs=fixed, clean_accuracy=clean,
              accuracy=acc, inputs=int(len(yt)),
              rates=dict(clean=[cell(a) for a in clean],
                         **{k: [cell(a) for a in v] for k, v in acc.items()}),
              linf={s: [float(np.abs(xis[e][f"xi_{s}"]).max()) for e in ep] for s in sources})


def load(workdir: str, epoch: int) -> dict:
  with np.load(path(workdir, epoch)) as f:
    return {k: f[k] for k in f.files if k != "settings"}
