"""Cao & Gong's Tables 4-6 and the data of Figures 6-8, from the stored examples and labels.

Success is judged by the classifier under evaluation: a point classifier's own label of the
examples made on it (white-box), or the region classifier's label of the examples made on the
point classifier it is built on. Targeted: the label is the target (900 pairs for 100 images).
Untargeted (U-X from the 9 T-X examples of an image, as their Section 6.3.3 describes; and
DeepFool): the label differs from the true one, keeping per image the successful example of
smallest noise. Combined attacks keep, per pair (T-CA) or per image (U-CA), the successful
candidate of smallest noise among their components. Noise: L0 in changed values (changed pixels
for colour images), L2 and L-inf on the [0, 1] scale of the papers (data units / range).

Denominators: every row counts every evaluated pair (targeted) or image (untargeted), as the
paper's rates over 900 pairs / 100 images do. Under the paper's draw (`evaluation.draw =
"standard"`) a baseline classifier may misclassify a drawn benign image: it is scored on it like
on any other (the attack runs from the image as it is, and its example is judged by the
classifier's label), and the report gives each classifier's correct count on the drawn images.
The region row is scored at each of the region classifier's noise draws (`region.score_draws`)
and pooled, with the spread over the draws (`protocol.rates`).
"""

from __future__ import annotations

import numpy as np

from advbound.attacks import cao_gong, compose
from advbound.studies.region_defense import attacks as attacks_lib, protocol, region_scores

# results.json row key of each point classifier, and the region classifier's
ROWS = {"natural": "point", "adversarial": "adversarial_training",
        "distillation": "distillation"}
REGION = "region"
TARGETED = ("T-JSMA", "T-CW-L0", "T-FGSM", "T-IGSM", "T-CW-Linf", "T-CW-L2")
COMBINED = {"CA-L0": ("JSMA", "CW-L0"), "CA-Linf": ("FGSM", "IGSM", "CW-Linf"),
            "CA-L2": ("CW-L2",)}


class _Examples:
  """Labels and noise of the examples made on one point classifier, as one evaluated classifier
  (that point classifier itself, or with `region` the region classifier built on it) sees them.
  Read lazily; the point labels and noise of an artifact are read and measured once per
  `store` (shared by the point and the region rows)."""

  def __init__(self, workdir, made_on, test, chosen, stems, *, region: bool, store: dict):
    self.workdir, self.made_on, self.test, self.chosen = workdir, made_on, test, chosen
    self.stems = stems  # stem -> (attack, kappa)
    self.region, self.store = region, store

  def get(self, stem):
    """(label int [D, M], noise float [M]) of artifact `stem` (D = 1 for a point row, the
    region classifier's noise draws for the region row), or None if it was not computed."""
    if stem not in self.stems:
      return None
    attack = self.stems[stem][0]
    x, y, target = attacks_lib.inputs(self.chosen, self.test, attack)
    key = (self.made_on, stem)
    if key not in self.store:
      arrays = attacks_lib.load(self.workdir, self.made_on, stem)
      norm = cao_gong.norm(attack)
      d = protocol.noise(x, arrays["adversarial"], norm, pixels=self.test.images.shape[-1] > 1)
      if norm != "l0":
        d = d / float(self.test.bounds[1] - self.test.bounds[0])
      self.store[key] = (arrays["label"], d)
    label, d = self.store[key]
    if not self.region:
      return label[None], d
    # an example exists only where the attack succeeded on the point classifier it was
    # made on (elsewhere "failure is returned"); it is then judged by the region classifier
    made = label == target if target is not None else label != y
    return np.where(made[None], region_scores.load(self.workdir, stem), y[None]), d


def _cell(ok, d, region: bool, seed: int = 0):
  """protocol.rates of ok bool [D, M] and noise [D, M] or [M]: over the draws for the region
  row, of the single evaluation ([0]) for a point row."""
  ok = np.asarray(ok, bool)
  d = np.broadcast_to(np.asarray(d, np.float64), ok.shape)
  return protocol.rates(ok, d, seed=seed) if region else protocol.rates(ok[0], d[0], seed=seed)


def _targeted(ex, stem, chosen):
  got = ex.get(stem)
  if got is None:
    return None
  label, d = got
  return _cell(label == chosen["targets"][None], d, ex.region)


def _per_image(ex, stems, chosen):
  """U- scores over the 9 pairs of each image of the given targeted stems (and DeepFool rows):
  (success bool [D, N], noise [D, N]) or None if a stem is missing."""
  n, k1 = len(chosen["indices"]), len(chosen["rows"]) // max(len(chosen["indices"]), 1)
  oks, ds = [], []
  for stem in stems:
    got = ex.get(stem)
    if got is None:
      return None
    label, d = got
    if stem == "DeepFool":
      oks.append((label != chosen["labels"][None])[:, None])  # [D, 1, N]
      ds.append(np.broadcast_to(d, label.shape)[:, None])
    else:
      y = chosen["labels"][chosen["rows"]]
      oks.append((label != y[None]).reshape(-1, n, k1).transpose(0, 2, 1))  # [D, 9, N]
      ds.append(np.broadcast_to(d, label.shape).reshape(-1, n, k1).transpose(0, 2, 1))
  oks, ds = np.concatenate(oks, 1), np.concatenate(ds, 1)
  best = [protocol.best_of(dd, oo) for dd, oo in zip(ds, oks)]
  return np.stack([b[0] for b in best]), np.stack([b[1] for b in best])


def _untargeted(ex, stems, chosen):
  got = _per_image(ex, stems, chosen)
  return None if got is None else _cell(got[0], got[1], ex.region)


def _combined_targeted(ex, stems, chosen):
  oks, ds = [], []
  for stem in stems:
    got = ex.get(stem)
    if got is None:
      return None
    oks.append(got[0] == chosen["targets"][None])
    ds.append(np.broadcast_to(got[1], got[0].shape))
  oks, ds = np.stack(oks, 1), np.stack(ds, 1)  # [D, C, M]
  best = [protocol.best_of(dd, oo) for dd, oo in zip(ds, oks)]
  return _cell(np.stack([b[0] for b in best]), np.stack([b[1] for b in best]), ex.region)


def compute(config, workdir: str, *, test, attacked: dict, region_result: dict) -> dict:
  """{"table4", "table5", "table6", "figure6", "figure7", "figure8"}: each cell a
  `protocol.rates` cell (a `stats.proportion` with the legacy keys success_rate, noise,
  successes, attempts, and noise_ci; region rows and Figure 8 pooled over the region
  classifier's noise draws, with "draws" and "per_query"), None where its examples were not
  computed."""
  chosen = attacks_lib.load_chosen(workdir)
  point = config.study.point
  span = float(test.bounds[1] - test.bounds[0])
  evaluated = {ROWS.get(c, c): (c, attacked["attacks"][c]) for c in config.study.classifiers}
  evaluated[REGION] = (point, attacked["attacks"][point])
  t4, t5, t6, f6, f7, store = {}, {}, {}, {}, {}, {}
  for row, (made_on, info) in evaluated.items():
    ex = _Examples(workdir, made_on, test, chosen,
                   {s: (v["attack"], v["kappa"]) for s, v in info.items()},
                   region=row == REGION, store=store)
    t4[row] = {a: _targeted(ex, a, chosen) for a in TARGETED}
    t5[row] = {"U-" + a[2:]: _untargeted(ex, [a], chosen) for a in TARGETED}
    t5[row]["DeepFool"] = _untargeted(ex, ["DeepFool"], chosen)
    kappa_stems = ["T-CW-L2"] + [s for s, v in info.items() if v["attack"] == "T-CW-L2"
                                 and v["kappa"]]
    t6[row] = {}
    for ca, parts in COMBINED.items():
      stems = kappa_stems if ca == "CA-L2" else [f"T-{p}" for p in parts]
      t6[row]["T-" + ca] = _combined_targeted(ex, stems, chosen)
      t6[row]["U-" + ca] = _untargeted(
          ex, stems + (["DeepFool"] if ca == "CA-L2" else []), chosen)
    if len(kappa_stems) > 1:
      kappas = sorted(float(info[s]["kappa"]) for s in kappa_stems)
      by_kappa = {float(info[s]["kappa"]): s for s in kappa_stems}
      f6[row] = {f"{k:g}": _targeted(ex, by_kappa[k], chosen) for k in kappas}
      f7[row] = {f"{k:g}": _untargeted(ex, [by_kappa[k]], chosen) for k in kappas}
  f8 = {}
  pixels = test.images.shape[-1] > 1
  for attack, alphas in region_result["adapted"].items():
    labels = region_scores.load(workdir, f"adapted_{attack}")  # [A, D, M]
    x = attacks_lib.inputs(chosen, test, attack)[0]
    arrays = attacks_lib.load(workdir, point, attack)
    adv = arrays["adversarial"]
    norm = cao_gong.norm(attack)
    scale = 1.0 if norm == "l0" else span
    made = arrays["label"] == chosen["targets"]
    labels = np.where(made[None, None], labels, chosen["labels"][chosen["rows"]][None, None])
    f8[attack + "-A"] = {}
    for i, a in enumerate(alphas):
      amplified = np.asarray(compose.amplify(x, adv, a, bounds=test.bounds))
      d = protocol.noise(x, amplified, norm, pixels=pixels) / scale
      f8[attack + "-A"][f"{a:g}"] = protocol.rates(labels[i] == chosen["targets"][None],
                                                   d[None])
  return {"table4": t4, "table5": t5, "table6": t6, "figure6": f6, "figure7": f7,
          "figure8": f8}
