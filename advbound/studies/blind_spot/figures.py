"""The blind-spot study's figures (matplotlib): Figures 1-3 (success rate and histogram per
distance bin), Figure 4 (transformed inputs and their adversarial examples), Figure 5
(distance histograms, original vs transformed) and the per-class t-SNE maps behind Table 1."""

from __future__ import annotations

import glob
import os

import numpy as np

from advbound.studies import plots
from advbound.analysis import scale_shift
from advbound.studies.plots import plt  # the Agg backend, chosen there
from advbound.studies.blind_spot import paper


def success_by_distance(bins: dict, *, epsilon: float):
  """Figures 1-3: per extractor (a column), the attack's success rate per distance bin (top,
  with its 95% Wilson interval) and the histogram of the test images' distances (bottom).

  Args: bins: {extractor: protocol.binned(...)}; epsilon: for the title.
  """
  fig, axes = plt.subplots(2, len(bins), figsize=(3.6 * len(bins), 4.2), squeeze=False,
                           sharex="col")
  for j, (name, b) in enumerate(bins.items()):
    edges = np.asarray(b["edges"])
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    rate = np.array([np.nan if r is None else 100 * r for r in b["success_rate"]])
    cells = b.get("cells") or [None] * len(rate)  # 95% Wilson intervals as error bars
    low = np.array([np.nan if not c or c["n"] == 0 else 100 * c["low"] for c in cells])
    high = np.array([np.nan if not c or c["n"] == 0 else 100 * c["high"] for c in cells])
    axes[0, j].bar(centres, rate, width=width * 0.9, color="tab:blue")
    axes[0, j].errorbar(centres, rate, yerr=np.stack([rate - low, high - rate]), fmt="none",
                        ecolor="black", elinewidth=0.8, capsize=2)
    axes[0, j].set_ylim(0, 100)
    axes[0, j].set_title(f"{name} extractor", fontsize=8)
    axes[1, j].bar(centres, b["counts"], width=width * 0.9, color="tab:red")
    axes[1, j].set_xlabel("mean distance to 5 nearest training embeddings", fontsize=7)
  axes[0, 0].set_ylabel(f"success rate (%), eps {epsilon:g}", fontsize=7)
  axes[1, 0].set_ylabel("test images", fontsize=7)
  fig.tight_layout()
  return fig


def distance_histograms(series: dict, *, label: str, bins: int):
  """Figure 5: per extractor, the histogram of the test images' distances, original and
  transformed. series: {extractor: (original [T], transformed [T])}."""
  fig, axes = plt.subplots(1, len(series), figsize=(3.6 * len(series), 2.8), squeeze=False)
  for ax, (name, (a, b)) in zip(axes[0], series.items()):
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=bins)
    ax.hist(a, edges, alpha=0.6, label="original", color="tab:blue")
    ax.hist(b, edges, alpha=0.6, label=label, color="tab:orange")
    ax.set_title(f"{name} extractor", fontsize=8)
    ax.set_xlabel("mean distance to 5 nearest training embeddings", fontsize=7)
    ax.legend(fontsize=7)
  fig.tight_layout()
  return fig


def examples(attacked: dict, grid, test, count: int, *, epsilon: float):
  """Figure 4: for `count` test images attacked at every (alpha, beta), the transformed input
  (odd rows) and the adversarial example found from it (even rows), with its L-inf distortion
  (green within alpha * epsilon, red beyond or none). Shown are the images that show the
  blind-spot effect best, as the paper's example does: not broken within epsilon untransformed,
  then broken within alpha * epsilon at the most pairs (ties: the lowest index)."""
  keys = [paper.pair_key(a, b) for a, b in grid]
  row = {k: {int(i): r for r, i in enumerate(attacked[k]["index"])} for k in keys}  # test -> row
  common = set(row[keys[0]]).intersection(*(row[k] for k in keys[1:]))

  def within(i, k, a):
    return bool(attacked[k]["best"][row[k][i]] <= a * epsilon)

  def rank(i):
    broken = sum(within(i, k, a) for (a, _), k in zip(grid[1:], keys[1:]))
    return (within(i, keys[0], grid[0][0]), -broken, i)

  chosen = sorted(common, key=rank)[:count] or sorted(
      attacked[keys[0]]["index"].tolist())[:count]
  images, notes, good, titles = [], [], [], []
  for i in chosen:
    top, bottom, top_n, bottom_n, ok = [], [], [], [], []
    for (a, b), k in zip(grid, keys):
      art = attacked[k]
      top.append(np.asarray(scale_shift.scale_shift(test.images[i:i + 1], a, b,
                                                    bounds=test.bounds))[0])
      top_n.append(f"label {int(test.labels[i])}")
      r = row[k].get(i)
      if r is not None and np.isfinite(art["best"][r]):
        d = float(art["best"][r])
        bottom.append(art["adversarial"][r])
        bottom_n.append(f"dist={d:.3f}")
        ok.append(d <= a * epsilon)
      else:
        bottom.append(None)
        bottom_n.append("")
        ok.append(False)
    images += [top, bottom]
    notes += [top_n, bottom_n]
    good += [[True] * len(top), ok]
    titles += [f"test {i}", "adversarial"]
  cols = [f"a={a:g}, b={b:g}" for a, b in grid]
  return plots.example_grid(images, notes, bounds=test.bounds, row_titles=titles,
                            col_titles=cols, good=good)


def tsne(workdir: str):
  """The per-class t-SNE maps of the divergence stage: training points blue, test orange."""
  files = sorted(glob.glob(os.path.join(workdir, "divergence", "class_*.npz")),
                 key=lambda p: int(os.path.basename(p)[6:-4]))
  cols = 5
  rows = max(1, -(-len(files) // cols))
  fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for ax, path in zip(axes.ravel(), files):
    with np.load(path) as f:
      ax.scatter(f["train"][:, 0], f["train"][:, 1], s=2, color="tab:blue", label="train")
      ax.scatter(f["test"][:, 0], f["test"][:, 1], s=2, color="tab:orange", label="test")
    ax.set_title(f"class {os.path.basename(path)[6:-4]}", fontsize=7)
  axes[0, 0].legend(fontsize=6, markerscale=3)
  fig.tight_layout()
  return fig
