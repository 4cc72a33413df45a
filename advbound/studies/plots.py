"""He et al.'s boundary figures (matplotlib, Agg backend), written atomically as PNG.

figure1: one input's distances along every direction, sorted, coloured by adjacent class, with
  the expected distance of a region-classification sample (Figure 1).
figure2: per example type, the minimum and median distance of every input, sorted (Figure 2).
figure3: per example type, the average top-1/2/3 adjacent-class purity (Figure 3).
Distances may be in RMS (the magnitudes k * step) or L-inf (the paper's Figures 6-7).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from advbound.runtime import io  # noqa: E402


def region_sample_distance(radius: float, metric: str) -> float:
  """Expected distance of a uniform sample of the L-inf cube of half-width `radius` from its
  center: RMS radius / sqrt(3) (each coordinate uniform on [-r, r]); L-inf r (to within a
  vanishing gap in high dimension)."""
  return radius / math.sqrt(3.0) if metric == "rms" else radius


def figure1(panels, *, max_distance: float, region_radius: float, metric: str = "rms",
            num_classes: int = 10):
  """Sorted distances of one input per panel, coloured by adjacent class.

  Args:
    panels: list of (title, distance float [M], adjacent int [M]); inf / -1 = no boundary, drawn
      in grey at max_distance.
    max_distance: top of the y axis.
    region_radius: half-width of the region classifier's cube (dashed line).
    metric: "rms" or "linf" (axis label and the region line).
  """
  fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False,
                           sharey=True)
  cmap = plt.get_cmap("tab10")
  line = region_sample_distance(region_radius, metric)
  for ax, (title, distance, adjacent) in zip(axes[0], panels):
    distance, adjacent = np.asarray(distance, float), np.asarray(adjacent)
    order = np.argsort(distance, kind="stable")
    d, a = distance[order], adjacent[order]
    none = ~np.isfinite(d)
    xs = np.arange(len(d))
    colours = np.array([cmap(int(c) % 10) for c in np.where(none, 0, a)])
    colours[none] = (0.75, 0.75, 0.75, 1.0)
    ax.scatter(xs, np.where(none, max_distance, d), c=colours, s=2, linewidths=0)
    ax.axhline(line, color="k", ls="--", lw=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("direction (sorted)", fontsize=8)
  axes[0, 0].set_ylabel(f"distance ({metric.upper()})", fontsize=8)
  handles = [plt.Line2D([], [], ls="", marker="o", color=cmap(c), label=str(c))
             for c in range(num_classes)]
  handles.append(plt.Line2D([], [], ls="", marker="o", color=(0.75,) * 3, label="none"))
  fig.legend(handles=handles, loc="center right", fontsize=7, title="adjacent", title_fontsize=7)
  fig.tight_layout(rect=(0, 0, 0.9, 1))
  return fig


def figure2(series, *, max_distance: float, region_radius: float | None = None,
            metric: str = "rms"):
  """Min and median distance per input, each sorted, one line per example type.

  Args:
    series: dict name -> (min float [N], median float [N]); inf drawn at max_distance.
  """
  fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8), sharey=True)
  for name, (lo, mid) in series.items():
    for ax, values in zip(axes, (lo, mid)):
      v = np.sort(np.minimum(np.asarray(values, float), max_distance))
      ax.plot(np.linspace(0, 1, len(v)) if len(v) > 1 else [0.5], v, label=name, lw=1.2)
  for ax, title in zip(axes, ("minimum", "median")):
    if region_radius is not None:
      ax.axhline(region_sample_distance(region_radius, metric), color="k", ls="--", lw=0.8)
    ax.set_title(f"{title} distance per input", fontsize=9)
    ax.set_xlabel("inputs (sorted fraction)", fontsize=8)
  axes[0].set_ylabel(f"distance ({metric.upper()})", fontsize=8)
  axes[1].legend(fontsize=7)
  fig.tight_layout()
  return fig


def figure3(series):
  """Average top-k purity, k = 1, 2, 3, one line per example type.

  Args:
    series: dict name -> purity float [N, 3].
  """
  fig, ax = plt.subplots(figsize=(3.4, 2.8))
  for name, p in series.items():
    p = np.asarray(p, float)
    ax.plot([1, 2, 3], p.mean(axis=0) if len(p) else [np.nan] * 3, marker="o", label=name)
  ax.set_xticks([1, 2, 3])
  ax.set_ylim(0, 1.02)
  ax.set_xlabel("k (most common adjacent classes)", fontsize=8)
  ax.set_ylabel("average top-k purity", fontsize=8)
  ax.legend(fontsize=7)
  fig.tight_layout()
  return fig


def save(fig, path: str, dpi: int = 110) -> None:
  """Writes `fig` as PNG atomically and closes it."""
  with io.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=dpi, format="png")
  plt.close(fig)


def radius_curve(history, point_accuracy: float, chosen: float):
  """Cao & Gong's Figure 4: validation accuracy of region classification against the radius.

  Args: history: [(radius, accuracy), ...]; point_accuracy: the point classifier's; chosen: r.
  """
  fig, ax = plt.subplots(figsize=(3.6, 2.8))
  r, acc = zip(*history)
  ax.plot(r, acc, marker="o", ms=3, label="region")
  ax.axhline(point_accuracy, color="k", ls="--", lw=0.8, label="point")
  ax.axvline(chosen, color="tab:red", ls=":", lw=0.8, label=f"learned r = {chosen:.3g}")
  ax.set_xlabel("radius r", fontsize=8)
  ax.set_ylabel("validation accuracy", fontsize=8)
  ax.legend(fontsize=7)
  fig.tight_layout()
  return fig


def certified_curves(curves):
  """Certified accuracy against radius, one panel per noise.

  Args: curves: {noise: {"radius": [R], "certified_accuracy": [R], "norm", "scale"}}.
  """
  fig, axes = plt.subplots(1, len(curves), figsize=(3.4 * len(curves), 2.8), squeeze=False)
  for ax, (noise, c) in zip(axes[0], curves.items()):
    ax.plot(c["radius"], c["certified_accuracy"])
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{noise} noise (scale {c['scale']:.3g})", fontsize=9)
    ax.set_xlabel(f"{c['norm'].upper()} radius", fontsize=8)
  axes[0, 0].set_ylabel("certified accuracy", fontsize=8)
  fig.tight_layout()
  return fig


def label_histograms(counts, titles):
  """Cao & Gong's Figure 2: label histograms of the samples around each input.

  Args: counts: int [P, K] votes per input; titles: P panel titles.
  """
  counts = np.asarray(counts)
  cols = 5
  rows = math.ceil(len(counts) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 1.9 * rows), squeeze=False,
                           sharey=True)
  for ax in axes.flat[len(counts):]:
    ax.axis("off")
  for ax, c, t in zip(axes.flat, counts, titles):
    ax.bar(np.arange(len(c)), c / max(c.sum(), 1))
    if len(c) <= 20:  # a tick per class; matplotlib's own ticks on 1,000 (ImageNet) classes
      ax.set_xticks(np.arange(len(c)))
    ax.tick_params(labelsize=6)
    ax.set_title(t, fontsize=8)
  fig.tight_layout()
  return fig


def example_grid(images, notes, *, bounds, row_titles, col_titles, good=None):
  """A grid of images (Cao & Gong's Figures 1, 5 and 9), None cells left blank.

  Args:
    images: [R][C] nested lists of float [H, W, ch] arrays (or None).
    notes: [R][C] short strings printed under each cell (e.g. the region classifier's label).
    bounds: (low, high) of the pixel values; row_titles: R strings; col_titles: C strings.
    good: optional [R][C] bools: notes printed green where True, red where False.
  """
  rows, cols = len(images), len(images[0]) if images else 0
  fig, axes = plt.subplots(rows, cols, figsize=(0.95 * cols + 0.6, 1.05 * rows + 0.4),
                           squeeze=False)
  low, high = bounds
  for i in range(rows):
    for j in range(cols):
      ax = axes[i, j]
      ax.set_xticks([])
      ax.set_yticks([])
      img = images[i][j]
      if img is None:
        ax.axis("off")
        continue
      img = np.clip((np.asarray(img, np.float32) - low) / (high - low), 0, 1)
      ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
      color = "k" if good is None else ("tab:green" if good[i][j] else "tab:red")
      ax.set_xlabel(notes[i][j], fontsize=6, color=color, labelpad=1)
      if i == 0:
        ax.set_title(col_titles[j], fontsize=7)
      if j == 0:
        ax.set_ylabel(row_titles[i], fontsize=7)
  fig.tight_layout(pad=0.3)
  return fig


def rate_curves(series, *, xlabel: str, noise: bool = True):
  """Success rate (and mean noise) against a swept parameter (Cao & Gong's Figures 6-8).

  Args: series: {name: {x (str or float): {"success_rate", "noise"}}}; noise: add its panel.
  """
  fig, axes = plt.subplots(1, 2 if noise else 1, figsize=(7.2 if noise else 3.8, 2.8),
                           squeeze=False)
  for name, points in series.items():
    xs = [float(k) for k in points]
    axes[0, 0].plot(xs, [p["success_rate"] if p else np.nan for p in points.values()],
                    marker="o", ms=3, label=name)
    if noise:
      axes[0, 1].plot(xs, [p["noise"] if p and p["noise"] is not None else np.nan
                           for p in points.values()], marker="o", ms=3, label=name)
  axes[0, 0].set_ylabel("success rate", fontsize=8)
  axes[0, 0].set_ylim(-0.02, 1.02)
  if noise:
    axes[0, 1].set_ylabel("mean noise of successes", fontsize=8)
  for ax in axes[0]:
    ax.set_xlabel(xlabel, fontsize=8)
    ax.legend(fontsize=7)
  fig.tight_layout()
  return fig
