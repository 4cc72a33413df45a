"""Stage "profiles": temporal stability profiles (Section 3.1, Figures 1 and 10) and BI's
white-box and transfer error rates over training (Figure 9) on the test draw (the paper's 256
inputs), from the BI example of each test input made at every measured epoch t1, evaluated
under the model of every measured epoch t2; and the learning curves (Appendix A, Figure 8) on
the eval draw (the whole test split at the paper's settings; training BI accuracy on the
training draw). Every rate is also given as a `stats.proportion` cell (successes, n, 95% Wilson
interval) under "rates".

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

from advbound import stats
from advbound.analysis import evaluate, stability
from advbound.runtime import io, probe
from advbound.studies.training_dynamics import epochs as epochs_lib, examples


def run(config, workdir: str, *, data: dict, models: epochs_lib.Models) -> dict:
  fixed = epochs_lib.inputs(config, data)
  (xt, yt), (xr, yr), (xe, ye) = fixed["test"], fixed["train"], fixed["eval"]
  ep = epochs_lib.measured(config)
  t = len(ep)
  batch = int(config.study.batch_size)
  stored = {e: examples.load(workdir, e, ("bi_test", "bi_train")) for e in ep}
  prob = np.empty((len(yt), t, t), np.float32)
  correct_test = np.empty((len(yt), t, t), bool)
  correct_train = np.empty((len(yr), t, t), bool)
  names = ("test_accuracy", "fgsm_accuracy", "bi_accuracy", "train_accuracy",
           "train_bi_accuracy")
  rates = {k: [] for k in names}

  def column(e2):
    """Model e2 on every epoch's stored examples (its column of the profile) and its own
    rates. The columns, and the cells of a column, cost alike: --estimate runs a few of each
    and projects the rest (a skipped one repeats a computed one)."""
    fn = models(e2)

    def cell(i):
      logits = evaluate.logits(fn, stored[ep[i]]["bi_test"], batch_size=batch)
      p = np.asarray(jax.nn.softmax(logits, axis=-1))
      return (p[np.arange(len(yt)), yt], np.argmax(logits, -1) == yt,
              evaluate.predict(fn, stored[ep[i]]["bi_train"], batch_size=batch) == yr)

    cells = probe.each(cell, t, "profile cells")
    own = examples.load(workdir, e2, ("bi_eval", "fgsm_eval"))
    right = lambda x, y: stats.of(evaluate.predict(fn, x, batch_size=batch) == y)
    mine = dict(test_accuracy=right(xe, ye), fgsm_accuracy=right(own["fgsm_eval"], ye),
                bi_accuracy=right(own["bi_eval"], ye), train_accuracy=right(xr, yr))
    return [np.stack(c, axis=1) for c in zip(*cells)], mine

  columns = probe.each(lambda j: column(ep[j]), t, "profile columns")  # one model at a time
  for j, ((p_col, test_col, train_col), mine) in enumerate(columns):
    prob[:, :, j], correct_test[:, :, j], correct_train[:, :, j] = p_col, test_col, train_col
    for k, v in mine.items():
      rates[k].append(v)
    rates["train_bi_accuracy"].append(stats.of(correct_train[:, j, j]))
  curves = {k: [c["rate"] for c in v] for k, v in rates.items()}
  curves["rates"] = rates
  curves["inputs"] = dict(test=int(len(ye)), train=int(len(yr)))
  maxmin = np.asarray(stability.maxmin(prob))
  minmax = np.asarray(stability.minmax(prob))
  out = os.path.join(workdir, "profiles", "profiles.npz")
  with io.atomic_path(out) as tmp:
    np.savez(tmp, epochs=np.asarray(ep, np.int32), P=prob, maxmin=maxmin, minmax=minmax,
             correct_test=correct_test, correct_train=correct_train)
  sources = [e for e in epochs_lib.resolve(config, config.profiles.transfer_sources)]
  transfer, transfer_rates = {}, {}
  for split, correct in (("test", correct_test), ("train", correct_train)):
    cells = {"respective": [stats.of(~correct[:, k, k]) for k in range(t)]}
    for s in sources:
      cells[epochs_lib.label(config, s)] = [stats.of(~correct[:, ep.index(s), k])
                                            for k in range(t)]
    transfer_rates[split] = cells
    transfer[split] = {k: [c["rate"] for c in v] for k, v in cells.items()}
  transfer["rates"] = transfer_rates
  thr = float(config.profiles.threshold)
  kinds = dict(
      # MaxMin small: one perturbation fools every model (a stable perturbation)
      stable=maxmin < thr,
      # MinMax large: one model resists every perturbation of the input
      robust=minmax >= thr,
      # MaxMin large, MinMax small: robust to each perturbation at some time, never to all
      oscillating=(maxmin >= thr) & (minmax < thr),
      near_diagonal=maxmin - minmax < 0.2)
  seed = int(config.study.seed)
  return dict(
      epochs=ep, curves=curves, transfer=transfer,
      maxmin_minmax=dict(
          inputs=int(len(yt)), threshold=thr,
          maxmin_mean=float(maxmin.mean()), minmax_mean=float(minmax.mean()),
          maxmin_mean_interval=stats.bootstrap(maxmin, seed=seed),
          minmax_mean_interval=stats.bootstrap(minmax, seed=seed),
          **{k: float(np.mean(v)) for k, v in kinds.items()},
          rates={k: stats.of(v) for k, v in kinds.items()}))


def load(workdir: str) -> dict:
  with np.load(os.path.join(workdir, "profiles", "profiles.npz")) as f:
    return {k: f[k] for k in f.files}
