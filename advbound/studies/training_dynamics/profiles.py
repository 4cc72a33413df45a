"""Stage "profiles": temporal stability profiles (Section 3.1, Figures 1 and 10), the learning
curves (Appendix A, Figure 8) and BI's white-box and transfer error rates over training (Figure
9), all from the stored examples: the BI example of each test input made at every measured
epoch t1, evaluated under the model of every measured epoch t2.

DIR/profiles/profiles.npz holds
  epochs int32 [T]               the measured epochs
  P float32 [N, T, T]            P[n, t1, t2] = p(y_n | BI example of epoch t1; model t2)
  maxmin, minmax float32 [N]     per test input
  correct_test bool [N, T, T], correct_train bool [M, T, T]  BI example of t1 classified
                                 correctly by model t2 (test and training inputs)
"""

from __future__ import annotations

import os

import jax
import numpy as np

from advbound import evaluate, io, stability
from advbound.studies.training_dynamics import epochs as epochs_lib
from advbound.studies.training_dynamics import examples


def run(config, workdir: str, *, data: dict, models: epochs_lib.Models) -> dict:
  fixed = epochs_lib.inputs(config, data)
  (xt, yt), (xr, yr) = fixed["test"], fixed["train"]
  ep = epochs_lib.measured(config)
  t = len(ep)
  batch = int(config.study.batch_size)
  stored = {e: examples.load(workdir, e, ("bi_test", "bi_train", "fgsm_test")) for e in ep}
  prob = np.empty((len(yt), t, t), np.float32)
  correct_test = np.empty((len(yt), t, t), bool)
  correct_train = np.empty((len(yr), t, t), bool)
  curves = {k: [] for k in ("test_accuracy", "fgsm_accuracy", "bi_accuracy", "train_accuracy",
                            "train_bi_accuracy")}
  for j, e2 in enumerate(ep):  # one model at a time
    fn = models(e2)
    for i, e1 in enumerate(ep):
      logits = evaluate.logits(fn, stored[e1]["bi_test"], batch_size=batch)
      p = np.asarray(jax.nn.softmax(logits, axis=-1))
      prob[:, i, j] = p[np.arange(len(yt)), yt]
      correct_test[:, i, j] = np.argmax(logits, -1) == yt
      correct_train[:, i, j] = evaluate.predict(fn, stored[e1]["bi_train"],
                                                batch_size=batch) == yr
    curves["test_accuracy"].append(evaluate.accuracy(fn, xt, yt, batch_size=batch))
    curves["train_accuracy"].append(evaluate.accuracy(fn, xr, yr, batch_size=batch))
    curves["fgsm_accuracy"].append(evaluate.accuracy(fn, stored[e2]["fgsm_test"], yt,
                                                     batch_size=batch))
    curves["bi_accuracy"].append(float(correct_test[:, j, j].mean()))
    curves["train_bi_accuracy"].append(float(correct_train[:, j, j].mean()))
  maxmin = np.asarray(stability.maxmin(prob))
  minmax = np.asarray(stability.minmax(prob))
  out = os.path.join(workdir, "profiles", "profiles.npz")
  with io.atomic_path(out) as tmp:
    np.savez(tmp, epochs=np.asarray(ep, np.int32), P=prob, maxmin=maxmin, minmax=minmax,
             correct_test=correct_test, correct_train=correct_train)
  sources = [e for e in epochs_lib.resolve(config, config.profiles.transfer_sources)]
  transfer = {}
  for split, correct in (("test", correct_test), ("train", correct_train)):
    transfer[split] = {"respective": [float(1 - correct[:, k, k].mean()) for k in range(t)]}
    for s in sources:
      transfer[split][epochs_lib.label(config, s)] = [
          float(1 - v) for v in correct[:, ep.index(s), :].mean(axis=0)]
  thr = float(config.profiles.threshold)
  return dict(
      epochs=ep, curves=curves, transfer=transfer,
      maxmin_minmax=dict(
          inputs=int(len(yt)), threshold=thr,
          maxmin_mean=float(maxmin.mean()), minmax_mean=float(minmax.mean()),
          # MaxMin small: one perturbation fools every model (a stable perturbation)
          stable=float(np.mean(maxmin < thr)),
          # MinMax large: one model resists every perturbation of the input
          robust=float(np.mean(minmax >= thr)),
          # MaxMin large, MinMax small: robust to each perturbation at some time, never to all
          oscillating=float(np.mean((maxmin >= thr) & (minmax < thr))),
          near_diagonal=float(np.mean(maxmin - minmax < 0.2))))


def load(workdir: str) -> dict:
  with np.load(os.path.join(workdir, "profiles", "profiles.npz")) as f:
    return {k: f[k] for k in f.files}
