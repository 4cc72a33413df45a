"""Stage "sharedness": sharedness against stability (Section 3.1, Figure 2) and the sharedness
ratio (Appendix C, Figure 11).

Figure 2: BI perturbations xi_i (epoch 0's model, true labels) of `sharedness.perturbations`
seeded test inputs;
  J_current,train(xi_i) = mean over `sharedness.train_inputs` seeded training inputs x_j of
                          J(theta_0, x_j + xi_i, y_j) - J(theta_0, x_j, y_j)   (sharedness)
  J_future,test(xi_i)   = mean over the epochs t of `sharedness.future_epochs` of
                          J(theta_t, x_i + xi_i, y_i) - J(theta_t, x_i, y_i)   (stability)
and Pearson's r of their logarithms over the inputs where both are positive (the paper plots
log-log axes; it does not say how it treats values <= 0: we drop them and count them).

Appendix C: at each epoch of `sharedness.ratio_epochs`, BI perturbations of the first
`ratio_perturbations` of `ratio_inputs` seeded test inputs, each transferred to the remaining
inputs: the share of those classified correctly that it makes misclassified.

Uncertainty: Pearson's r gets a percentile bootstrap interval over the kept pairs (resampled
as pairs, seed study.seed); each epoch's mean ratio a bootstrap interval over its
perturbations, its share of shared perturbations (ratio >= 2%) a `stats.proportion` cell.

DIR/sharedness/sharedness.npz holds current_train, future_test float32 [P] and
ratio_<epoch> float32 [R] per ratio epoch.
"""

from __future__ import annotations

import os

import numpy as np
import optax
import jax.numpy as jnp

from advbound import stats
from advbound.analysis import evaluate, stability
from advbound.runtime import io
from advbound.studies.training_dynamics import epochs as epochs_lib, examples


def _losses(fn, x, y, batch):
  return np.asarray(optax.softmax_cross_entropy_with_integer_labels(
      jnp.asarray(evaluate.logits(fn, x, batch_size=batch)), jnp.asarray(y)))


def run(config, workdir: str, *, data: dict, models: epochs_lib.Models) -> dict:
  cfg, study = config.sharedness, config.study
  seed, batch = int(study.seed), int(study.batch_size)
  test, tr = data["test"], data["train"]
  low, high = test.bounds
  pi = epochs_lib.draw(len(test), int(cfg.perturbations), seed, epochs_lib.SHARED_TEST)
  ji = epochs_lib.draw(len(tr), int(cfg.train_inputs), seed, epochs_lib.SHARED_TRAIN)
  x, y = test.images[pi], test.labels[pi]
  xj, yj = tr.images[ji], tr.labels[ji]
  fn0 = models(0)
  xi = examples.bi(fn0, x, y, study, test.bounds, batch) - x          # [P, ...]
  clean_j = _losses(fn0, xj, yj, batch).mean()
  current = np.array([_losses(fn0, np.clip(xj + d, low, high), yj, batch).mean() - clean_j
                      for d in xi], np.float32)
  future_epochs = [e for e in epochs_lib.resolve(config, cfg.future_epochs) if e > 0]
  future = np.zeros(len(x), np.float64)
  for e in future_epochs:
    fn = models(e)
    future += _losses(fn, x + xi, y, batch) - _losses(fn, x, y, batch)
  future = (future / max(1, len(future_epochs))).astype(np.float32)
  corr = stability.loglog_pearson(current, future)
  corr["interval"] = pearson_interval(current, future, seed)

  ratios, arrays = {}, {}
  n_ratio, n_pert = int(cfg.ratio_inputs), int(cfg.ratio_perturbations)
  ri = epochs_lib.draw(len(test), n_ratio, seed, epochs_lib.RATIO)
  xr, yr = test.images[ri], test.labels[ri]
  for e in epochs_lib.resolve(config, cfg.ratio_epochs):
    fn = models(e)
    pert = examples.bi(fn, xr[:n_pert], yr[:n_pert], study, test.bounds, batch) - xr[:n_pert]
    rates = stability.transfer_rates(fn, pert, xr[n_pert:], yr[n_pert:], bounds=test.bounds,
                                     batch_size=batch)
    name = epochs_lib.label(config, e)
    arrays[f"ratio_{name}"] = rates
    finite = rates[np.isfinite(rates)]
    ratios[name] = dict(epoch=e, mean=float(np.nanmean(rates)), min=float(np.nanmin(rates)),
                        median=float(np.nanmedian(rates)), max=float(np.nanmax(rates)),
                        shared=float(np.nanmean(rates >= 0.02)),
                        mean_interval=stats.bootstrap(finite, seed=seed),
                        shared_rate=stats.of(finite >= 0.02),
                        others_correct=int((evaluate.predict(fn, xr[n_pert:], batch_size=batch)
                                            == yr[n_pert:]).sum()))
  with io.atomic_path(os.path.join(workdir, "sharedness", "sharedness.npz")) as tmp:
    np.savez(tmp, current_train=current, future_test=future, **arrays)
  return dict(
      figure2=dict(perturbations=len(x), train_inputs=len(xj), future_epochs=future_epochs,
                   pearson_loglog=corr,
                   current_train_positive=float(np.mean(current > 0)),
                   future_test_positive=float(np.mean(future > 0))),
      ratio=dict(perturbations=n_pert, others=n_ratio - n_pert, epochs=ratios))


def pearson_interval(a, b, seed: int) -> dict:
  """A percentile bootstrap interval (stats.bootstrap) of stability.loglog_pearson's r: the
  pairs it keeps (both > 0, finite) resampled as pairs. "estimate" None where fewer than 3
  pairs are kept."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  keep = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
  u, v = np.log(a[keep]), np.log(b[keep])

  def r_of(idx):
    i = idx.astype(np.int64)
    uu, vv = u[i], v[i]
    if np.ptp(uu) == 0 or np.ptp(vv) == 0:
      return 0.0  # a degenerate resample: no linear association measurable
    return float(np.corrcoef(uu, vv)[0, 1])

  if len(u) < 3:
    return stats.bootstrap(np.zeros(0))
  return stats.bootstrap(np.arange(len(u), dtype=np.float64), r_of, seed=seed)


def load(workdir: str) -> dict:
  with np.load(os.path.join(workdir, "sharedness", "sharedness.npz")) as f:
    return {k: f[k] for k in f.files}
