"""Cao & Gong's Tables 4-6 and the data of Figures 6-8, from the stored examples and labels.

Success is judged by the classifier under evaluation: a point classifier's own label of the
examples made on it (white-box), or the region classifier's label of the examples made on the
point classifier it is built on. Targeted: the label is the target (900 pairs for 100 images).
Untargeted (U-X from the 9 T-X examples of an image, as their Section 6.3.3 describes; and
DeepFool): the label differs from the true one, keeping per image the successful example of
smallest noise. Combined attacks keep, per pair (T-CA) or per image (U-CA), the successful
candidate of smallest noise among their components. Noise: L0 in changed values (changed pixels
for colour images), L2 and L-inf on the [0, 1] scale of the papers (data units / range).
"""

from __future__ import annotations

import numpy as np

from advbound.attacks import cao_gong, compose
from advbound.studies.region_defense import attacks as attacks_lib
from advbound.studies.region_defense import protocol, region_scores

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
    """(label [M], noise [M]) of artifact `stem`, or None if it was not computed."""
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
    if self.region:
      # an example exists only where the attack succeeded on the point classifier it was
      # made on (elsewhere "failure is returned"); it is then judged by the region classifier
      made = label == target if target is not None else label != y
      label = np.where(made, region_scores.load(self.workdir, stem), y)
    return label, d


def _targeted(ex, stem, chosen):
  got = ex.get(stem)
  if got is None:
    return None
  label, d = got
  return protocol.rates(label == chosen["targets"], d)


def _per_image(ex, stems, chosen):
  """U- scores over the 9 pairs of each image of the given targeted stems (and DeepFool rows):
  (success [N], noise [N]) or None if a stem is missing."""
  n, k1 = len(chosen["indices"]), len(chosen["rows"]) // max(len(chosen["indices"]), 1)
  oks, ds = [], []
  for stem in stems:
    got = ex.get(stem)
    if got is None:
      return None
    label, d = got
    if stem == "DeepFool":
      oks.append((label != chosen["labels"])[None])
      ds.append(d[None])
    else:
      y = chosen["labels"][chosen["rows"]]
      oks.append((label != y).reshape(n, k1).T)
      ds.append(d.reshape(n, k1).T)
  return protocol.best_of(np.concatenate(ds), np.concatenate(oks))


def _combined_targeted(ex, stems, chosen):
  oks, ds = [], []
  for stem in stems:
    got = ex.get(stem)
    if got is None:
      return None
    oks.append(got[0] == chosen["targets"])
    ds.append(got[1])
  return protocol.rates(*protocol.best_of(np.stack(ds), np.stack(oks)))


def compute(config, workdir: str, *, test, attacked: dict, region_result: dict) -> dict:
  """{"table4", "table5", "table6", "figure6", "figure7", "figure8"}: each cell
  {success_rate, noise, successes, attempts}, None where its examples were not computed."""
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
    t5[row] = {}
    for a in TARGETED:
      got = _per_image(ex, [a], chosen)
      t5[row]["U-" + a[2:]] = None if got is None else protocol.rates(*got)
    got = _per_image(ex, ["DeepFool"], chosen)
    t5[row]["DeepFool"] = None if got is None else protocol.rates(*got)
    kappa_stems = ["T-CW-L2"] + [s for s, v in info.items() if v["attack"] == "T-CW-L2"
                                 and v["kappa"]]
    t6[row] = {}
    for ca, parts in COMBINED.items():
      stems = kappa_stems if ca == "CA-L2" else [f"T-{p}" for p in parts]
      t6[row]["T-" + ca] = _combined_targeted(ex, stems, chosen)
      got = _per_image(ex, stems + (["DeepFool"] if ca == "CA-L2" else []), chosen)
      t6[row]["U-" + ca] = None if got is None else protocol.rates(*got)
    if len(kappa_stems) > 1:
      kappas = sorted(float(info[s]["kappa"]) for s in kappa_stems)
      by_kappa = {float(info[s]["kappa"]): s for s in kappa_stems}
      f6[row] = {f"{k:g}": _targeted(ex, by_kappa[k], chosen) for k in kappas}
      f7[row] = {f"{k:g}": protocol.rates(*_per_image(ex, [by_kappa[k]], chosen))
                 for k in kappas}
  f8 = {}
  pixels = test.images.shape[-1] > 1
  for attack, alphas in region_result["adapted"].items():
    labels = region_scores.load(workdir, f"adapted_{attack}")
    x = attacks_lib.inputs(chosen, test, attack)[0]
    arrays = attacks_lib.load(workdir, point, attack)
    adv = arrays["adversarial"]
    norm = cao_gong.norm(attack)
    scale = 1.0 if norm == "l0" else span
    made = arrays["label"] == chosen["targets"]
    labels = np.where(made[None], labels, chosen["labels"][chosen["rows"]][None])
    f8[attack + "-A"] = {}
    for i, a in enumerate(alphas):
      amplified = np.asarray(compose.amplify(x, adv, a, bounds=test.bounds))
      d = protocol.noise(x, amplified, norm, pixels=pixels) / scale
      f8[attack + "-A"][f"{a:g}"] = protocol.rates(labels[i] == chosen["targets"], d)
  return {"table4": t4, "table5": t5, "table6": t6, "figure6": f6, "figure7": f7,
          "figure8": f8}
