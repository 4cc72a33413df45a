"""report.md and results.json of the training-dynamics study (stage "report").

results.json (stable keys; epochs are integers, "last" names the final one in per-epoch maps;
rates are fractions in [0, 1]):

  dataset, model, epochs (T), measured_epochs, test_images, train_images
  bi                       {epsilon, step_size, num_steps} on the data's scale, paper_unit
                           (the data's stand-in for 1 on the paper's 0-255 CIFAR-10 scale) and
                           epsilon_paper_units
  learning                 Figure 8: {epochs, test_accuracy, fgsm_accuracy, bi_accuracy,
                           train_accuracy, train_bi_accuracy} (one value per measured epoch)
  transfer                 Figure 9: {train|test: {respective | source epoch label: [error]}}
  stability                Figures 1, 10: {inputs, threshold, maxmin_mean, minmax_mean, stable,
                           robust, oscillating, near_diagonal}
  sharedness_vs_stability  Figure 2: {perturbations, train_inputs, future_epochs,
                           pearson_loglog: {r, p, n, dropped}, ...}
  sharedness_ratio         Appendix C: {perturbations, others, epochs: {label: {epoch, mean,
                           min, median, max, shared, others_correct}}}
  universal                Figures 3, 12: {epochs, sources, fixed_epochs, clean_accuracy,
                           accuracy: {train|test|fixed_<label>: [accuracy]}, linf}
  destruction              Figures 5, 14, 15: {levels: {kind: [level]}, paper_unit,
                           epochs: {label: {epoch, <attack>: {effective, rates: {kind:
                           [{rate, destroyed, effective}]}}}}}
  detection                Figures 6, 7: {epochs, fixed_epochs, respective: [accuracy],
                           respective_rates, fixed: {label: [accuracy]},
                           maximiser_probability: {label: p}}
  claims                   [{claim, paper, ours, kind ("rate": a fraction, "value": a number
                           such as Pearson's r), holds (true/false/null)}]: the paper's stated
                           numbers beside ours
  paper, seconds, settings, versions
"""

from __future__ import annotations

import os

import numpy as np

from advbound import io, stages
from advbound.studies.training_dynamics import epochs as epochs_lib
from advbound.studies.training_dynamics import paper


def _pct(v) -> str:
  return "-" if v is None else f"{100 * v:.1f}%"


def _mean_rate(cells):
  r = [c["rate"] for c in cells if c["rate"] is not None]
  return float(np.mean(r)) if r else None


def claims(config, r: dict) -> list[dict]:
  """The paper's stated numbers beside ours, each with whether it holds on our run."""
  out = []

  def add(claim, theirs, ours, holds, kind="rate"):
    out.append(dict(claim=claim, paper=theirs, ours=ours, kind=kind,
                    holds=None if holds is None else bool(holds)))

  ep = r["measured_epochs"]
  lc = r["learning"]
  add("natural model: clean test accuracy (epoch 0)", paper.NATURAL["test_accuracy"],
      lc["test_accuracy"][0], None)
  add("natural model: BI accuracy (epoch 0)", paper.NATURAL["bi_accuracy"],
      lc["bi_accuracy"][0], None)
  for k in ("test_accuracy", "fgsm_accuracy", "bi_accuracy", "train_bi_accuracy"):
    add(f"after adversarial training: {k.replace('_', ' ')} (last epoch)", paper.LEARNING[k],
        lc[k][-1], None)
  add("adversarial training overfits: train BI accuracy - test BI accuracy at the last epoch",
      paper.LEARNING["train_bi_accuracy"] - paper.LEARNING["bi_accuracy"],
      lc["train_bi_accuracy"][-1] - lc["bi_accuracy"][-1],
      lc["train_bi_accuracy"][-1] - lc["bi_accuracy"][-1] > 0.05)
  corr = r["sharedness_vs_stability"]["pearson_loglog"]
  add("sharedness vs stability: Pearson r (log-log) is negative", paper.PEARSON_R, corr["r"],
      None if corr["r"] is None else corr["r"] < 0, kind="value")
  uni = r["universal"]["accuracy"]
  later = [i for i, e in enumerate(ep) if e >= paper.UNIVERSAL["after_epoch"]]
  worst = min(min(v[i] for i in later) for v in uni.values()) if later else None
  # the claim: adversarial training removes the universal perturbation that fools epoch 0
  add("universal perturbation (train data), accuracy at epoch 0 (holds: below every accuracy "
      f"under universal perturbations from epoch {paper.UNIVERSAL['after_epoch']} on)",
      paper.UNIVERSAL["epoch0_accuracy"], uni["train"][0],
      None if worst is None else uni["train"][0] < worst)
  if later:
    add(f"universal perturbations (respective and fixed epochs), lowest accuracy from epoch "
        f"{paper.UNIVERSAL['after_epoch']} on", paper.UNIVERSAL["later_accuracy_at_least"],
        worst, worst >= paper.UNIVERSAL["later_accuracy_at_least"])
  ratio = r["sharedness_ratio"]["epochs"]
  labels = list(ratio)
  paper_labels = list(paper.SHAREDNESS_MEAN)  # ours matched in order, the last to the last
  for i, ours_label in enumerate(labels):
    paper_label = ("last" if ours_label == "last"
                   else paper_labels[i] if i < len(paper_labels) - 1 else None)
    if paper_label is not None:
      add(f"sharedness ratio, mean, our epoch {ours_label} (paper's {paper_label})",
          paper.SHAREDNESS_MEAN[paper_label], ratio[ours_label]["mean"], None)
  if len(labels) >= 2:
    means = [ratio[k]["mean"] for k in labels]
    add("sharedness falls from epoch 0 to the first epoch and stays lower",
        "6.3% -> 1.1%", means, means[1] < means[0] and max(means[1:]) < means[0])
    add("sharedness ratio at epoch 0, least shared perturbation", paper.SHAREDNESS_EPOCH0_MIN,
        ratio[labels[0]]["min"], None)
    add("sharedness ratio at the last epoch, most shared perturbation (paper: below)",
        paper.SHAREDNESS_LAST_MAX_BELOW, ratio[labels[-1]]["max"],
        ratio[labels[-1]]["max"] < paper.SHAREDNESS_LAST_MAX_BELOW)
  det = r["detection"]
  add("detectability, detector of the respective epoch, lowest over epochs",
      paper.DETECTABILITY_ABOVE, min(det["respective"]),
      min(det["respective"]) > paper.DETECTABILITY_ABOVE)
  for label, curve in det["fixed"].items():
    if label == "0":
      continue
    add(f"detectability, detector of epoch {label} on every epoch, lowest",
        paper.DETECTABILITY_ABOVE, min(curve), min(curve) > paper.DETECTABILITY_ABOVE)
  if "0" in det["fixed"] and len(ep) > 1:
    add("detector of epoch 0 on later epochs, lowest (paper: not reliable)", "not reliable",
        min(det["fixed"]["0"][1:]), None)
  late = {k: v for k, v in det["maximiser_probability"].items() if k != "0"}
  if late:
    add("detector-maximising perturbation, mean p(adversarial), epochs >= 1, highest",
        paper.DETECTOR_MAXIMISER_PROBABILITY_AT_MOST, max(late.values()),
        max(late.values()) <= paper.DETECTOR_MAXIMISER_PROBABILITY_AT_MOST)
  tr = r["transfer"]["test"]
  for src in ("5", "15"):
    if src in tr:
      i = ep.index(int(src))
      rest = tr[src][i + 1:]
      if rest:
        add(f"BI examples of epoch {src} on later models (test), lowest error",
            paper.TRANSFER_LATER_ERROR_AT_LEAST, min(rest),
            min(rest) >= paper.TRANSFER_LATER_ERROR_AT_LEAST)
  des = r["destruction"]["epochs"]
  if len(des) >= 2:
    first, last = list(des)[0], list(des)[-1]
    for kind in ("brightness", "contrast", "blur"):
      a, b = (_mean_rate(des[k]["bi"]["rates"][kind]) for k in (first, last))
      add(f"BI destruction rate under {kind} rises with adversarial training (mean over "
          f"levels, epoch {first} -> {last})", "rises", [a, b],
          None if a is None or b is None else b > a)
    lv = np.asarray(r["destruction"]["levels"]["noise"]) / r["destruction"]["paper_unit"]
    cells = {k: des[k]["bi"]["rates"]["noise"] for k in (first, last)}
    weak = [i for i, s in enumerate(lv) if s < paper.NOISE_SIGMA_WEAK]
    strong = [i for i, s in enumerate(lv) if s > paper.NOISE_SIGMA_STRONG]
    for name, idx, sign in (("weak (sigma < 5)", weak, -1), ("strong (sigma > 7)", strong, 1)):
      if idx:
        a, b = (_mean_rate([cells[k][i] for i in idx]) for k in (first, last))
        add(f"noise, {name}: epoch {first}'s destruction rate "
            f"{'below' if sign < 0 else 'above'} epoch {last}'s", "yes", [a, b],
            None if a is None or b is None else (a < b if sign < 0 else a > b))
  return out


def write(config, workdir: str, results: dict, timings: dict) -> dict:
  s = config.study
  unit = float(s.paper_unit)
  r = dict(
      dataset=config.data.name, model=config.model.to_dict(), epochs=epochs_lib.count(config),
      measured_epochs=results["profiles"]["epochs"], test_images=int(s.test_images),
      train_images=int(s.train_images),
      bi=dict(epsilon=float(s.epsilon), step_size=float(s.step_size),
              num_steps=int(s.num_steps), epsilon_paper_units=float(s.epsilon) / unit,
              paper_unit=unit),
      learning=dict(epochs=results["profiles"]["epochs"], **results["profiles"]["curves"]),
      transfer=results["profiles"]["transfer"],
      stability=results["profiles"]["maxmin_minmax"],
      sharedness_vs_stability=results["sharedness"]["figure2"],
      sharedness_ratio=results["sharedness"]["ratio"],
      universal=results["universal"], destruction=results["destruction"],
      detection=results["detection"])
  r["claims"] = claims(config, r)
  r["paper"] = dict(natural=paper.NATURAL, learning=paper.LEARNING, pearson_r=paper.PEARSON_R,
                    universal=paper.UNIVERSAL, sharedness_mean=paper.SHAREDNESS_MEAN,
                    detectability_above=paper.DETECTABILITY_ABOVE)
  r["seconds"] = {k: v for k, v in timings.items() if k != "report"}
  r["settings"] = config.to_dict()
  r["versions"] = stages.versions()
  io.write_json(os.path.join(workdir, "results.json"), r)
  stages.write_report(workdir, _markdown(config, r), timings=timings, versions=r["versions"],
                      settings=r["settings"])
  return r


def _fmt(v, kind: str = "rate") -> str:
  """A claim's value: rates as percentages, other numbers (Pearson's r) with three decimals."""
  if v is None:
    return "-"
  if isinstance(v, str):
    return v
  if isinstance(v, (list, tuple)):
    return " -> ".join(_fmt(x, kind) for x in v)
  if isinstance(v, float):
    return _pct(v) if kind == "rate" else f"{v:.3f}"
  return f"{v}"


def _markdown(config, r: dict) -> list[str]:
  ep = r["measured_epochs"]
  md = [f"# Training dynamics: universality, robustness and detectability ({r['dataset']})", "",
        f"Model `{r['model']['name']}`, {r['epochs']} epochs of adversarial training with BI "
        f"(epsilon {r['bi']['epsilon']:g}, {r['bi']['epsilon_paper_units']:.3g} paper units, "
        f"step {r['bi']['step_size']:g}, {r['bi']['num_steps']} iterations, predicted labels) "
        f"after natural training; measured at epochs {ep}; {r['test_images']} test and "
        f"{r['train_images']} training inputs (seeded draws).", ""]
  if config.get("note"):
    md += [f"**Note.** {config.note}", ""]
  md += ["## The paper's stated numbers beside ours", "",
         "The paper's numbers are for CIFAR-10, a pre-activation ResNet-18, 200 natural and 250 "
         "adversarial epochs. 'holds' is judged on our run; '-' where the paper states a value "
         "but no direction to check.", "",
         "| claim | paper | ours | holds |", "|---|---|---|---|"]
  for c in r["claims"]:
    holds = "-" if c["holds"] is None else ("yes" if c["holds"] else "no")
    md.append(f"| {c['claim']} | {_fmt(c['paper'], c['kind'])} | {_fmt(c['ours'], c['kind'])} "
              f"| {holds} |")
  lc = r["learning"]
  md += ["", "## Learning and transfer curves (Figures 8-9)", "",
         "![Figure 8](figures/figure8.png)", "", "![Figure 9](figures/figure9.png)", "",
         "| epoch | clean | FGSM | BI | train clean | train BI |", "|---|---|---|---|---|---|"]
  for i, e in enumerate(ep):
    md.append(f"| {e} | {_pct(lc['test_accuracy'][i])} | {_pct(lc['fgsm_accuracy'][i])} | "
              f"{_pct(lc['bi_accuracy'][i])} | {_pct(lc['train_accuracy'][i])} | "
              f"{_pct(lc['train_bi_accuracy'][i])} |")
  st = r["stability"]
  md += ["", "## Temporal stability profiles (Figures 1, 10)", "",
         "![Figure 1](figures/figure1.png)", "", "![Figure 10](figures/figure10.png)", "",
         f"Over {st['inputs']} test inputs: mean MaxMin {st['maxmin_mean']:.3f}, mean MinMax "
         f"{st['minmax_mean']:.3f}; a stable perturbation (MaxMin < {st['threshold']:g}) exists "
         f"for {_pct(st['stable'])}, one model resists every perturbation (MinMax >= "
         f"{st['threshold']:g}) for {_pct(st['robust'])}, oscillation (MaxMin >= threshold > "
         f"MinMax) for {_pct(st['oscillating'])}; {_pct(st['near_diagonal'])} lie within 0.2 of "
         "the diagonal.", ""]
  f2 = r["sharedness_vs_stability"]
  c = f2["pearson_loglog"]
  pval = "-" if c["p"] is None else f"{c['p']:.2g}"
  md += ["## Sharedness vs stability (Figure 2) and the sharedness ratio (Figure 11)", "",
         "![Figure 2](figures/figure2.png)", "",
         f"{f2['perturbations']} BI perturbations of epoch 0, sharedness over "
         f"{f2['train_inputs']} training inputs, stability over epochs {f2['future_epochs']}: "
         f"r = {_fmt(c['r'], 'value')} (p = {pval}) over "
         f"{c['n']} inputs with both cost changes > 0 ({c['dropped']} dropped); paper -0.293.",
         "", "![Figure 11](figures/figure11.png)", "",
         "| epoch | mean | min | median | max | shared (>= 2%) |", "|---|---|---|---|---|---|"]
  for k, v in r["sharedness_ratio"]["epochs"].items():
    md.append(f"| {k} | {_pct(v['mean'])} | {_pct(v['min'])} | {_pct(v['median'])} | "
              f"{_pct(v['max'])} | {_pct(v['shared'])} |")
  u = r["universal"]
  md += ["", "## Universal perturbations (Figures 3, 4, 12, 13)", "",
         "![Figure 3](figures/figure3.png)", "", "![Figure 4](figures/figure4.png)", ""]
  if "test" in u["sources"]:
    md += ["![Figure 12](figures/figure12.png)", "", "![Figure 13](figures/figure13.png)", ""]
  keys = list(u["accuracy"])
  md += ["| epoch | clean | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
  for i, e in enumerate(u["epochs"]):
    md.append(f"| {e} | {_pct(u['clean_accuracy'][i])} | "
              + " | ".join(_pct(u["accuracy"][k][i]) for k in keys) + " |")
  d = r["destruction"]
  md += ["", "## Destruction rates (Figures 5, 14, 15)", "", "![Figure 5](figures/figure5.png)",
         ""]
  for name, attack in (("Figure 14", "fgsm"), ("Figure 15", "deepfool")):
    if attack in config.destruction.attacks:
      md += [f"![{name}](figures/{'figure14' if attack == 'fgsm' else 'figure15'}.png)", ""]
  md += ["Levels (brightness and noise in paper units): " + "; ".join(
      f"{k} {[round(v / d['paper_unit'], 3) if k in ('brightness', 'noise') else v for v in lv]}"
      for k, lv in d["levels"].items()) + ".", "",
      "| epoch | attack | effective | " + " | ".join(d["levels"]) + " (mean over levels) |",
      "|---|---|---|" + "---|" * len(d["levels"])]
  for label, row in d["epochs"].items():
    for attack in config.destruction.attacks:
      a = row[attack]
      md.append(f"| {label} | {attack} | {a['effective']} | " + " | ".join(
          _pct(_mean_rate(a["rates"][k])) for k in d["levels"]) + " |")
  det = r["detection"]
  md += ["", "## Detectability (Figures 6, 7)", "", "![Figure 6](figures/figure6.png)", "",
         "![Figure 7](figures/figure7.png)", "",
         "| epoch | respective | " + " | ".join(f"detector {k}" for k in det["fixed"]) + " |",
         "|---|---|" + "---|" * len(det["fixed"])]
  for i, e in enumerate(det["epochs"]):
    md.append(f"| {e} | {_pct(det['respective'][i])} | "
              + " | ".join(_pct(v[i]) for v in det["fixed"].values()) + " |")
  md += ["", "Figure 7's perturbations: mean p(adversarial) on clean test inputs " + ", ".join(
      f"epoch {k}: {_pct(v)}" for k, v in det["maximiser_probability"].items()) + ".", ""]
  return md
