"""Stage "figures": the paper's Figures 1-16 from the stored results (matplotlib PNGs under
DIR/figures/). Figure numbers are the paper's; Figures 14-15 (FGSM, DeepFool) are drawn in the
layout of Figure 5 when those attacks are measured; Figure 16 (Appendix G) is FGSM's
detectability (respective and fixed detectors) above DeepFool's (respective only). The curves
of rates (Figures 3, 6, 8, 12, 16) carry their 95% Wilson intervals as shaded bands."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from advbound.studies import plots
from advbound.analysis import transforms  # noqa: E402
from advbound.studies.training_dynamics import detection, profiles, sharedness  # noqa: E402
from advbound.studies.training_dynamics import epochs as epochs_lib  # noqa: E402
from advbound.studies.training_dynamics import universal as universal_lib  # noqa: E402


def _path(workdir, name):
  return os.path.join(workdir, "figures", name)


def _save(fig, workdir, name):
  fig.tight_layout()
  plots.save(fig, _path(workdir, name))


def _band(ax, epochs, cells, line):
  """Shades the 95% intervals of `cells` (stats.proportion cells, one per epoch)."""
  low = [np.nan if c["low"] is None else c["low"] for c in cells]
  high = [np.nan if c["high"] is None else c["high"] for c in cells]
  ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.15, lw=0)


def _over_epochs(workdir, name, epochs, series, *, ylabel, ylim=(0, 1), line=None, ax=None):
  """One curve per (label, cells, style) of `series` against the epochs of adversarial
  training (Figures 3, 6, 8, 12, 16), each a list of stats.proportion cells drawn with its
  interval band; `line`: a dotted reference level. With `ax`, draws there and saves nothing."""
  own = ax is None
  if own:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
  for label, cells, style in series:
    xs = epochs
    (drawn,) = ax.plot(xs, [np.nan if c["rate"] is None else c["rate"] for c in cells], style,
                       ms=3, lw=1, label=label)
    _band(ax, xs, cells, drawn)
  if line is not None:
    ax.axhline(line, color="k", lw=0.6, ls=":")
  ax.set_ylim(*ylim)
  ax.set_xlabel("epoch of adversarial training")
  ax.set_ylabel(ylabel)
  ax.legend(fontsize=7)
  if own:
    _save(fig, workdir, name)


def _image(xi, unit: float, amplify: float):
  """A perturbation [H, W, C] shown as grey + amplify * xi in paper units / 255, in [0, 1] (as
  the paper shows its 0-255 perturbations amplified by 10)."""
  v = 0.5 + amplify * np.asarray(xi) / (255.0 * unit)
  v = np.clip(v, 0, 1)
  return v[..., 0] if v.shape[-1] == 1 else v


def _perturbation_row(workdir, name, items, unit, amplify, title):
  fig, axes = plt.subplots(1, len(items), figsize=(1.9 * len(items), 2.3), squeeze=False)
  for ax, (caption, xi) in zip(axes[0], items):
    ax.imshow(_image(xi, unit, amplify), cmap="gray", vmin=0, vmax=1)
    ax.set_title(caption, fontsize=8)
    ax.axis("off")
  fig.suptitle(title, fontsize=9)
  plots.save(fig, _path(workdir, name))


def run(config, workdir: str, *, results: dict) -> list[str]:
  written = []
  unit = float(config.study.paper_unit)
  ep = results["profiles"]["epochs"]
  prof = profiles.load(workdir)

  # Figure 1: three profiles: the most robust, the most stable and the most oscillating input
  mm, mx = prof["maxmin"], prof["minmax"]
  picks = [("robust (max MinMax)", int(np.argmax(mx))),
           ("stable (min MaxMin)", int(np.argmin(mm))),
           ("oscillating (max MaxMin - MinMax)", int(np.argmax(mm - mx)))]
  fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
  fig.subplots_adjust(wspace=0.45, right=0.85)
  for ax, (name, i) in zip(axes, picks):
    im = ax.imshow(prof["P"][i], cmap="gray", vmin=0, vmax=1, origin="upper",
                   extent=(ep[0] - .5, ep[-1] + .5, ep[-1] + .5, ep[0] - .5))
    ax.set_title(f"{name}\nMaxMin {mm[i]:.2f}, MinMax {mx[i]:.2f}", fontsize=8)
    ax.set_xlabel("model epoch t2")
    ax.set_ylabel("perturbation epoch t1")
  fig.colorbar(im, ax=axes, shrink=0.8, label="p(true class)")
  plots.save(fig, _path(workdir, "figure1.png"))
  written.append("figure1.png")

  # Figure 10: MaxMin vs MinMax
  fig, ax = plt.subplots(figsize=(4, 4))
  ax.scatter(mm, mx, s=6, alpha=0.6)
  ax.plot([0, 1], [0, 1], "k:", lw=0.8)
  ax.set_xlabel("MaxMin")
  ax.set_ylabel("MinMax")
  ax.set_title(f"{len(mm)} test inputs", fontsize=9)
  _save(fig, workdir, "figure10.png")
  written.append("figure10.png")

  # Figure 2: sharedness vs stability, log-log
  sh = sharedness.load(workdir)
  cur, fut = sh["current_train"], sh["future_test"]
  keep = (cur > 0) & (fut > 0)
  corr = results["sharedness"]["figure2"]["pearson_loglog"]
  fig, ax = plt.subplots(figsize=(4.5, 4))
  ax.scatter(cur[keep], fut[keep], s=6, alpha=0.6)
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("sharedness: cost change, other inputs")
  ax.set_ylabel("stability: cost change, later models")
  r = corr["r"]
  ax.set_title(f"Pearson r (log-log) = {'-' if r is None else f'{r:.3f}'}, n = {corr['n']}",
               fontsize=9)
  _save(fig, workdir, "figure2.png")
  written.append("figure2.png")

  # Figure 11: sharedness ratio per epoch
  ratio = results["sharedness"]["ratio"]["epochs"]
  fig, ax = plt.subplots(figsize=(5, 3.2))
  data = [100 * sh[f"ratio_{k}"][np.isfinite(sh[f"ratio_{k}"])] for k in ratio]
  ax.boxplot(data, showmeans=True)
  ax.set_xticks(range(1, len(data) + 1), [f"epoch {k}" for k in ratio])
  ax.set_ylabel("% of other test inputs fooled")
  _save(fig, workdir, "figure11.png")
  written.append("figure11.png")

  # Figures 3 and 12: accuracy under universal perturbations
  uni = results["universal"]
  ur = uni["rates"]
  _over_epochs(workdir, "figure3.png", uni["epochs"], [
      ("no perturbation", ur["clean"], "k--"),
      ("respective epoch", ur["train"], "o-")] + [
      (f"epoch {f}'s perturbation", ur[f"fixed_{epochs_lib.label(config, f)}"],
       "-") for f in uni["fixed_epochs"]], ylabel="test accuracy")
  written.append("figure3.png")
  if "test" in uni["accuracy"]:
    _over_epochs(workdir, "figure12.png", uni["epochs"], [
        (f"made on {s} data", ur[s], "o-") for s in uni["sources"]],
                 ylabel="test accuracy")
    written.append("figure12.png")

  # Figures 4 and 13: universal perturbations, amplified
  show = [e for e in epochs_lib.resolve(config, config.figures.perturbation_epochs) if e in ep]
  amp = float(config.figures.amplify)
  for source, name in (("train", "figure4.png"), ("test", "figure13.png")):
    if source not in uni["sources"]:
      continue
    items = [(f"epoch {e}", universal_lib.load(workdir, e)[f"xi_{source}"]) for e in show]
    _perturbation_row(workdir, name, items, unit, amp,
                      f"universal perturbations made on {source} data (x{amp:g})")
    written.append(name)

  # Figures 5, 14, 15: destruction rates
  des = results["destruction"]
  for attack, name in (("bi", "figure5.png"), ("fgsm", "figure14.png"),
                       ("deepfool", "figure15.png")):
    if attack not in config.destruction.attacks:
      continue
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    for ax, kind in zip(axes, transforms.KINDS):
      levels = np.asarray(des["levels"][kind])
      shown = levels / des["paper_unit"] if kind in ("brightness", "noise") else levels
      for label, row in des["epochs"].items():
        cells = [c["interval"] for c in row[attack]["rates"][kind]]
        rates = [np.nan if c["rate"] is None else c["rate"] for c in cells]
        (drawn,) = ax.plot(shown, rates, "o-", ms=3, label=f"epoch {label}")
        _band(ax, shown, cells, drawn)
      ax.set_title(kind, fontsize=9)
      ax.set_xlabel("level" + (" (paper units)" if kind in ("brightness", "noise") else ""))
      ax.set_ylim(0, 1)
    axes[0].set_ylabel("destruction rate")
    axes[-1].legend(fontsize=7)
    fig.suptitle(f"{attack} examples", fontsize=9)
    fig.subplots_adjust(bottom=0.2, wspace=0.3)
    plots.save(fig, _path(workdir, name))
    written.append(name)

  # Figure 6: detectability
  det = results["detection"]
  _over_epochs(workdir, "figure6.png", det["epochs"], [
      ("respective epoch", det["respective_rates"], "o-")] + [
      (f"detector of epoch {f}", cells, "-") for f, cells in det["fixed_rates"].items()],
               ylabel="detectability", ylim=(0.4, 1.0), line=0.9)
  written.append("figure6.png")

  # Figure 16: detectability of FGSM (top) and DeepFool (bottom, respective epoch only)
  fig, axes = plt.subplots(2, 1, figsize=(5.5, 6.4), sharex=True)
  fg = det["fgsm"]
  _over_epochs(workdir, None, det["epochs"], [
      ("respective epoch", fg["respective_rates"], "o-")] + [
      (f"detector of epoch {f}", cells, "-") for f, cells in fg["fixed_rates"].items()],
               ylabel="detectability (FGSM)", ylim=(0.4, 1.0), line=0.9, ax=axes[0])
  dfp = det["deepfool"]
  if dfp["epochs"]:
    _over_epochs(workdir, None, dfp["epochs"], [
        ("respective epoch", dfp["respective_rates"], "o-")],
                 ylabel="detectability (DeepFool)", ylim=(0.4, 1.0), line=0.9, ax=axes[1])
  else:
    axes[1].set_title("DeepFool not measured", fontsize=8)
  _save(fig, workdir, "figure16.png")
  written.append("figure16.png")

  # Figure 7: detector-maximising perturbations
  items = [(f"epoch {f}: p={det['maximiser_probability'][epochs_lib.label(config, f)]:.2f}",
            detection.load_maximiser(workdir, f)) for f in det["fixed_epochs"]]
  _perturbation_row(workdir, "figure7.png", items, unit, amp,
                    f"perturbations maximising the detectors (x{amp:g})")
  written.append("figure7.png")

  # Figures 8 and 9: learning and transfer curves
  cur = results["profiles"]["curves"]["rates"]
  _over_epochs(workdir, "figure8.png", ep, [
      (lab, cur[k], "o-") for k, lab in (("test_accuracy", "test, clean"),
                                        ("fgsm_accuracy", "test, FGSM"),
                                        ("bi_accuracy", "test, BI"),
                                        ("train_bi_accuracy", "train, BI"))],
               ylabel="accuracy")
  written.append("figure8.png")
  tr = results["profiles"]["transfer"]["rates"]
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
  for ax, split in zip(axes, ("train", "test")):
    for k, cells in tr[split].items():
      (drawn,) = ax.plot(ep, [c["rate"] for c in cells], "o-" if k == "respective" else "-",
                         ms=3, label="respective epoch" if k == "respective"
                         else f"source epoch {k}")
      _band(ax, ep, cells, drawn)
    ax.set_title(f"{split} data", fontsize=9)
    ax.set_xlabel("target epoch")
  axes[0].set_ylabel("BI error rate")
  axes[1].legend(fontsize=7)
  _save(fig, workdir, "figure9.png")
  written.append("figure9.png")
  return written
