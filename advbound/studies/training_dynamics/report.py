"""report.md and results.json of the training-dynamics study (stage "report").

results.json (stable keys; epochs are integers, "last" names the final one in per-epoch maps;
rates are fractions in [0, 1]; every rate also comes as a `stats.proportion` cell {rate,
successes, n, low, high, confidence, method} (95% Wilson), under the "rates" / "*_rates" /
"interval" keys named below):

  dataset, model, epochs (T), measured_epochs, test_images, train_images, eval_images,
  detect_train_images, epoch_steps {snapshot_every, train_split, batch_size, partial}, note
  bi                       {epsilon, step_size, num_steps} on the data's scale, paper_unit
                           (the data's stand-in for 1 on the paper's 0-255 CIFAR-10 scale),
                           epsilon_paper_units, labels {attack, training_attack, training_loss}
  learning                 Figure 8 on the eval draw: {epochs, test_accuracy, fgsm_accuracy,
                           bi_accuracy, train_accuracy, train_bi_accuracy: [rate], rates: {same
                           keys: [cell]}, inputs: {test, train}}
  transfer                 Figure 9 on the test draw: {train|test: {respective | source epoch
                           label: [error]}, rates: {train|test: {...: [cell]}}}
  stability                Figures 1, 10: {inputs, threshold, maxmin_mean, minmax_mean,
                           maxmin_mean_interval, minmax_mean_interval (bootstrap), stable,
                           robust, oscillating, near_diagonal, rates: {same: cell}}
  sharedness_vs_stability  Figure 2: {perturbations, train_inputs, future_epochs,
                           pearson_loglog: {r, p, n, dropped, interval (bootstrap over pairs)}}
  sharedness_ratio         Appendix C: {perturbations, others, epochs: {label: {epoch, mean,
                           mean_interval (bootstrap), min, median, max, shared, shared_rate,
                           others_correct}}}
  universal                Figures 3, 12 on the eval draw: {epochs, sources, fixed_epochs,
                           clean_accuracy, accuracy: {train|test|fixed_<label>: [accuracy]},
                           rates: {clean|...: [cell]}, inputs, linf}
  destruction              Figures 5, 14, 15 on the eval draw: {levels: {kind: [level]},
                           paper_unit, epochs: {label: {epoch, <attack>: {effective, inputs,
                           effective_rate, rates: {kind: [{rate, destroyed, effective,
                           interval}]}}}}}
  detection                Figures 6, 7 (BI): {epochs, fixed_epochs, train_inputs, test_inputs,
                           respective: [accuracy], respective_rates: [cell + accuracy,
                           true_negative_rate, true_positive_rate], fixed: {label: [accuracy]},
                           fixed_rates, maximiser_probability: {label: p},
                           maximiser_interval: {label: bootstrap}}; Figure 16: fgsm {the same
                           four keys}, deepfool {epochs, respective, respective_rates}
  claims                   [{claim, test, paper, paper_mark ("inside" / "outside" our
                           interval, "-"), ours (text), value, low, high, kind, verdict}]:
                           verdict is stats.judge's "holds" / "contradicted" / "inconclusive at
                           this sample size", or "-" where the paper states a number but no
                           direction (a comparison only)
  paper, seconds, settings, versions
"""

from __future__ import annotations

import os

import numpy as np

from advbound import stats
from advbound.runtime import io, stages
from advbound.studies import variants as variants_lib
from advbound.studies.training_dynamics import epochs as epochs_lib, paper, settings, sharedness
from advbound.training import settings as shared

COMPARE = "-"  # a comparison of numbers, no direction to judge


def _pct(v) -> str:
  return "-" if v is None else f"{100 * v:.1f}%"


def _pct_est(cell) -> str:
  """A bootstrap cell of a fraction in percent: '1.1% [0.8, 1.5] (n=60)'."""
  if cell is None or cell.get("estimate") is None:
    return "-"
  if cell["low"] is None:
    return f"{100 * cell['estimate']:.2f}% (n={cell['n']})"
  return (f"{100 * cell['estimate']:.2f}% [{100 * cell['low']:.2f}, {100 * cell['high']:.2f}] "
          f"(n={cell['n']})")


def _fmt_diff(d: dict) -> str:
  return stats.format_difference(d, "pts")


def _all(verdicts: list[str]) -> str:
  """One verdict for a claim that must hold for every cell: holds if every cell holds,
  contradicted if any cell is contradicted, inconclusive otherwise (or with no cells)."""
  if not verdicts:
    return stats.INCONCLUSIVE
  if any(v == stats.CONTRADICTED for v in verdicts):
    return stats.CONTRADICTED
  return stats.HOLDS if all(v == stats.HOLDS for v in verdicts) else stats.INCONCLUSIVE


def _tally(verdicts: list[str]) -> str:
  return (f"{verdicts.count(stats.HOLDS)} hold, {verdicts.count(stats.CONTRADICTED)} "
          f"contradicted, {verdicts.count(stats.INCONCLUSIVE)} inconclusive")


def _level_trend(cells_a, cells_b, *, rises: bool) -> tuple[str, str]:
  """Per level, Newcombe's interval of rate(b) - rate(a) judged against 0 (above if `rises`);
  one verdict for all levels (every level must agree; one level against contradicts only if
  every level is against: levels reuse the same examples, so they are not independent
  evidence). Returns (verdict, text)."""
  verdicts, texts = [], []
  for a, b in zip(cells_a, cells_b):
    ia, ib = a["interval"], b["interval"]
    if not ia["n"] or not ib["n"]:
      verdicts.append(stats.INCONCLUSIVE)
      continue
    d = stats.difference_of(ib, ia)
    verdicts.append(stats.judge(d["low"], d["high"], **({"above": 0.0} if rises
                                                        else {"below": 0.0})))
    texts.append(_fmt_diff(d))
  if verdicts and all(v == stats.CONTRADICTED for v in verdicts):
    verdict = stats.CONTRADICTED
  elif verdicts and all(v == stats.HOLDS for v in verdicts):
    verdict = stats.HOLDS
  else:
    verdict = stats.INCONCLUSIVE
  return verdict, f"per level {'; '.join(texts) or '-'} ({_tally(verdicts)})"


def claims(config, r: dict, ratios: dict) -> list[dict]:
  """The paper's stated numbers beside ours, each with its test and stats.judge's verdict.

  ratios: {epoch label: float [P]} the finite sharedness ratios of each ratio epoch."""
  out = []

  def add(claim, test, theirs, ours, verdict, *, value=None, low=None, high=None,
          kind="rate"):
    mark = (stats.paper_mark(theirs, low, high)
            if isinstance(theirs, (int, float)) and not isinstance(theirs, bool) else "-")
    out.append(dict(claim=claim, test=test, paper=theirs, paper_mark=mark, ours=ours,
                    value=value, low=low, high=high, kind=kind, verdict=verdict))

  def add_rate(claim, theirs, cell):
    add(claim, "comparison only (the paper states a number, no direction)", theirs,
        stats.format_rate(cell), COMPARE, value=cell["rate"], low=cell["low"],
        high=cell["high"])

  ep = r["measured_epochs"]
  lc = r["learning"]["rates"]
  add_rate("natural model: clean test accuracy (epoch 0)", paper.NATURAL["test_accuracy"],
           lc["test_accuracy"][0])
  add_rate("natural model: BI accuracy (epoch 0)", paper.NATURAL["bi_accuracy"],
           lc["bi_accuracy"][0])
  for k in ("test_accuracy", "fgsm_accuracy", "bi_accuracy", "train_bi_accuracy"):
    add_rate(f"after adversarial training: {k.replace('_', ' ')} (last epoch)",
             paper.LEARNING[k], lc[k][-1])
  d = stats.difference_of(lc["train_bi_accuracy"][-1], lc["bi_accuracy"][-1])
  add("adversarial training overfits: train BI accuracy above test BI accuracy at the last "
      "epoch", "Newcombe interval of train - test BI accuracy above 0",
      paper.LEARNING["train_bi_accuracy"] - paper.LEARNING["bi_accuracy"], _fmt_diff(d),
      stats.judge(d["low"], d["high"], above=0.0), value=d["difference"], low=d["low"],
      high=d["high"], kind="difference")
  corr = r["sharedness_vs_stability"]["pearson_loglog"]
  ci = corr.get("interval") or {}
  add("sharedness vs stability: Pearson r (log-log) is negative",
      "bootstrap interval of r (pairs resampled) below 0", paper.PEARSON_R,
      stats.format_estimate(ci) if ci.get("estimate") is not None else "-",
      stats.judge(ci.get("low"), ci.get("high"), below=0.0), value=corr["r"],
      low=ci.get("low"), high=ci.get("high"), kind="value")
  u = r["universal"]["rates"]
  sources = [k for k in u if k != "clean"]
  later = [i for i, e in enumerate(ep) if e >= paper.UNIVERSAL["after_epoch"]]
  add_rate("universal perturbation (train data), accuracy at epoch 0",
           paper.UNIVERSAL["epoch0_accuracy"], u["train"][0])
  if later:
    worst_key, worst_i = min(((k, i) for k in sources for i in later),
                             key=lambda ki: u[ki[0]][ki[1]]["rate"])
    worst = u[worst_key][worst_i]
    d = stats.difference_of(worst, u["train"][0])
    add(f"adversarial training raises accuracy under universal perturbations: every accuracy "
        f"from epoch {paper.UNIVERSAL['after_epoch']} on above epoch 0's",
        "Newcombe interval of (lowest later cell - epoch 0's train-made cell) above 0",
        "12% -> >= 80%", _fmt_diff(d), stats.judge(d["low"], d["high"], above=0.0),
        value=d["difference"], low=d["low"], high=d["high"], kind="difference")
    verdicts = [stats.judge(u[k][i]["low"], u[k][i]["high"],
                            above=paper.UNIVERSAL["later_accuracy_at_least"])
                for k in sources for i in later]
    add(f"universal perturbations (respective and fixed epochs): accuracy >= 80% from epoch "
        f"{paper.UNIVERSAL['after_epoch']} on",
        f"every cell's Wilson interval above 80% ({len(verdicts)} cells: {_tally(verdicts)})",
        paper.UNIVERSAL["later_accuracy_at_least"],
        f"lowest {stats.format_rate(worst)} ({worst_key}, epoch {ep[worst_i]})",
        _all(verdicts), value=worst["rate"], low=worst["low"], high=worst["high"])
  ratio = r["sharedness_ratio"]["epochs"]
  labels = list(ratio)
  paper_labels = list(paper.SHAREDNESS_MEAN)  # ours matched in order, the last to the last
  for i, ours_label in enumerate(labels):
    paper_label = ("last" if ours_label == "last"
                   else paper_labels[i] if i < len(paper_labels) - 1 else None)
    if paper_label is not None:
      c = ratio[ours_label]["mean_interval"]
      add(f"sharedness ratio, mean, our epoch {ours_label} (paper's {paper_label})",
          "comparison only (bootstrap interval of the mean over perturbations)",
          paper.SHAREDNESS_MEAN[paper_label], _pct_est(c), COMPARE, value=c["estimate"],
          low=c["low"], high=c["high"])
  if len(labels) >= 2:
    sh = ratios
    for later_label in (labels[1], labels[-1]) if len(labels) > 2 else (labels[1],):
      c = stats.bootstrap((sh[labels[0]], sh[later_label]),
                          lambda a, b: float(np.mean(a) - np.mean(b)),
                          seed=int(config.study.seed))
      add(f"sharedness falls from epoch {labels[0]} to epoch {later_label}",
          "bootstrap interval of the difference of mean ratios above 0",
          "6.3% -> 1.1% -> 0.5%", _pct_est(c),
          stats.judge(c["low"], c["high"], above=0.0), value=c["estimate"], low=c["low"],
          high=c["high"], kind="difference")
    add("sharedness ratio at epoch 0, least shared perturbation",
        "comparison only (a sample minimum, no interval)", paper.SHAREDNESS_EPOCH0_MIN,
        _pct(ratio[labels[0]]["min"]), COMPARE, value=ratio[labels[0]]["min"])
    top = ratio[labels[-1]]["max"]
    n_last = len(sh[labels[-1]])
    add("sharedness ratio at the last epoch: every perturbation below 1%",
        f"sample maximum over our {n_last} perturbations: one at or above 1% contradicts; "
        "none holds for this sample only", paper.SHAREDNESS_LAST_MAX_BELOW,
        f"max {_pct(top)}",
        stats.CONTRADICTED if top >= paper.SHAREDNESS_LAST_MAX_BELOW else stats.HOLDS,
        value=top)
  det = r["detection"]

  def above_90(cells, claim, skip_first=False):
    cells = cells[1:] if skip_first else cells
    verdicts = [stats.judge(c["low"], c["high"], above=paper.DETECTABILITY_ABOVE)
                for c in cells]
    worst = min(cells, key=lambda c: c["rate"])
    add(claim, f"every epoch's Wilson interval above 90% ({len(cells)} cells: "
        f"{_tally(verdicts)})", paper.DETECTABILITY_ABOVE,
        f"lowest {stats.format_rate(worst)}", _all(verdicts), value=worst["rate"],
        low=worst["low"], high=worst["high"])

  above_90(det["respective_rates"], "detectability (BI), detector of the respective epoch, "
           "above 90% at every epoch")
  for label, cells in det["fixed_rates"].items():
    if label != "0":
      above_90(cells, f"detectability (BI), detector of epoch {label}, above 90% on every "
               "epoch")
  if "0" in det["fixed_rates"] and len(ep) > 1:
    later_cells = det["fixed_rates"]["0"][1:]
    worst = min(later_cells, key=lambda c: c["rate"])
    add("detector of epoch 0 does not reliably detect later epochs' BI examples (some later "
        "epoch below 90%)", "the lowest later cell's Wilson interval below 90%",
        "not reliable", f"lowest {stats.format_rate(worst)}",
        stats.judge(worst["low"], worst["high"], below=paper.DETECTABILITY_ABOVE),
        value=worst["rate"], low=worst["low"], high=worst["high"])
  late = {k: v for k, v in det["maximiser_interval"].items() if k != "0"}
  if late:
    verdicts = [stats.judge(c["low"], c["high"],
                            below=paper.DETECTOR_MAXIMISER_PROBABILITY_AT_MOST)
                for c in late.values()]
    k_top = max(late, key=lambda k: late[k]["estimate"])
    add("detector-maximising perturbation: mean p(adversarial) <= 12% for epochs >= 1",
        f"bootstrap interval of the mean over test inputs below 12% for every fixed epoch >= 1"
        f" ({_tally(verdicts)})", paper.DETECTOR_MAXIMISER_PROBABILITY_AT_MOST,
        f"highest (epoch {k_top}) {_pct_est(late[k_top])}", _all(verdicts),
        value=late[k_top]["estimate"], low=late[k_top]["low"], high=late[k_top]["high"])
  # Figure 16: FGSM easier, DeepFool harder to detect than BI (respective epochs)
  bi_cells = dict(zip(det["epochs"], det["respective_rates"]))
  f_cells = dict(zip(det["epochs"], det["fgsm"]["respective_rates"]))
  for name, other, sign in (("FGSM easier", f_cells, 1),
                            ("DeepFool harder", dict(zip(det["deepfool"]["epochs"],
                                                         det["deepfool"]["respective_rates"])),
                             -1)):
    if not other:
      continue
    verdicts, diffs = [], []
    for e, c in other.items():
      dd = stats.difference_of(c, bi_cells[e])
      diffs.append(dd)
      verdicts.append(stats.judge(dd["low"], dd["high"],
                                  **({"above": 0.0} if sign > 0 else {"below": 0.0})))
    mean_d = float(np.mean([x["difference"] for x in diffs]))
    add(f"Figure 16: {name} to detect than BI (respective epochs)",
        f"Newcombe interval of detectability ({name.split()[0]} - BI) per epoch "
        f"{'above' if sign > 0 else 'below'} 0, every epoch ({_tally(verdicts)})",
        "yes (Metzen et al.)", f"mean difference {100 * mean_d:+.1f} pts over {len(diffs)} "
        "epochs", _all(verdicts), value=mean_d, kind="difference")
  tr = r["transfer"]["rates"]["test"]
  for src in ("5", "15"):
    if src in tr:
      i = ep.index(int(src))
      rest = tr[src][i + 1:]
      if rest:
        verdicts = [stats.judge(c["low"], c["high"], above=paper.TRANSFER_LATER_ERROR_AT_LEAST)
                    for c in rest]
        worst = min(rest, key=lambda c: c["rate"])
        add(f"BI examples of epoch {src} stay effective on later models (test error >= 20%)",
            f"every later cell's Wilson interval above 20% ({_tally(verdicts)})",
            paper.TRANSFER_LATER_ERROR_AT_LEAST, f"lowest {stats.format_rate(worst)}",
            _all(verdicts), value=worst["rate"], low=worst["low"], high=worst["high"])
  des = r["destruction"]["epochs"]
  if len(des) >= 2:
    first, last = list(des)[0], list(des)[-1]
    for kind in ("brightness", "contrast", "blur"):
      verdict, text = _level_trend(des[first]["bi"]["rates"][kind],
                                   des[last]["bi"]["rates"][kind], rises=True)
      add(f"BI destruction rate under {kind} rises with adversarial training (epoch {first} "
          f"-> {last})", "Newcombe interval of (last - first) per level: holds if above 0 at "
          "every level, contradicted if below 0 at every level, inconclusive if the levels "
          "disagree or any is inconclusive (levels share their examples)",
          "rises", text, verdict, kind="difference")
    lv = np.asarray(r["destruction"]["levels"]["noise"]) / r["destruction"]["paper_unit"]
    cells = {k: des[k]["bi"]["rates"]["noise"] for k in (first, last)}
    weak = [i for i, s in enumerate(lv) if s < paper.NOISE_SIGMA_WEAK]
    strong = [i for i, s in enumerate(lv) if s > paper.NOISE_SIGMA_STRONG]
    for name, idx, rises in (("weak (sigma < 5)", weak, True),
                             ("strong (sigma > 7)", strong, False)):
      if idx:
        verdict, text = _level_trend([cells[first][i] for i in idx],
                                     [cells[last][i] for i in idx], rises=rises)
        add(f"noise, {name}: epoch {first}'s destruction rate "
            f"{'below' if rises else 'above'} epoch {last}'s",
            f"Newcombe interval of (last - first) per level: holds if "
            f"{'above' if rises else 'below'} 0 at every level, contradicted if "
            f"{'below' if rises else 'above'} 0 at every level, inconclusive otherwise", "yes",
            text, verdict, kind="difference")
  return out


def write(config, workdir: str, results: dict, timings: dict) -> dict:
  s = config.study
  unit = float(s.paper_unit)
  adv = config.models[s.adversarial]
  det = results["detection"]
  r = dict(
      dataset=config.data.name,
      model=variants_lib.variant_model(config, s.adversarial).to_dict(),
      imported=variants_lib.imported_metrics(config, workdir),
      epochs=epochs_lib.count(config),
      measured_epochs=results["profiles"]["epochs"], test_images=int(s.test_images),
      train_images=int(s.train_images), eval_images=det["test_inputs"],
      detect_train_images=det["train_inputs"],
      epoch_steps=dict(snapshot_every=int(adv.snapshot_every), batch_size=int(adv.batch_size),
                       partial=settings.Study.of(s).partial_epoch_steps is not None),
      note=settings.Config.of(config).note,
      bi=dict(epsilon=float(s.epsilon), step_size=float(s.step_size),
              num_steps=int(s.num_steps), epsilon_paper_units=float(s.epsilon) / unit,
              paper_unit=unit,
              labels=dict(attack="true",
                          training_attack=str(shared.TrainAttack.of(adv.attack).labels),
                          training_loss="true")),
      learning=dict(epochs=results["profiles"]["epochs"], **results["profiles"]["curves"]),
      transfer=results["profiles"]["transfer"],
      stability=results["profiles"]["maxmin_minmax"],
      sharedness_vs_stability=results["sharedness"]["figure2"],
      sharedness_ratio=results["sharedness"]["ratio"],
      universal=results["universal"], destruction=results["destruction"],
      detection=det)
  arrays = sharedness.load(workdir)
  ratios = {k: arrays[f"ratio_{k}"][np.isfinite(arrays[f"ratio_{k}"])]
            for k in r["sharedness_ratio"]["epochs"]}
  r["claims"] = claims(config, r, ratios)
  r["paper"] = dict(natural=paper.NATURAL, learning=paper.LEARNING, pearson_r=paper.PEARSON_R,
                    universal=paper.UNIVERSAL, sharedness_mean=paper.SHAREDNESS_MEAN,
                    detectability_above=paper.DETECTABILITY_ABOVE)
  r["seconds"] = {k: v for k, v in timings.items() if k != "report"}
  r["settings"] = config.to_dict()
  r["versions"] = stages.versions()
  io.write_json(os.path.join(workdir, "results.json"), r)
  stages.write_report(workdir, _markdown(config, r, workdir), timings=timings,
                      versions=r["versions"],
                      settings=r["settings"])
  return r


def _markdown(config, r: dict, workdir: str = "") -> list[str]:
  ep = r["measured_epochs"]
  fr = stats.format_rate
  es = r["epoch_steps"]
  labels = r["bi"]["labels"]
  md = [f"# Training dynamics: universality, robustness and detectability ({r['dataset']})", "",
        f"Model `{r['model']['name']}`, {r['epochs']} epochs of adversarial training with BI "
        f"(epsilon {r['bi']['epsilon']:g}, {r['bi']['epsilon_paper_units']:.3g} paper units, "
        f"step {r['bi']['step_size']:g}, {r['bi']['num_steps']} iterations) after natural "
        f"training; an epoch is {es['snapshot_every']} steps of {es['batch_size']}"
        + (" (a declared part of a pass over the training split, study.partial_epoch_steps)"
           if es["partial"] else " (one pass over the training split)")
        + f"; measured at epochs {ep}.", "",
        f"Labels: adversarial training makes its BI examples against the model's "
        f"{labels['training_attack']} labels (the paper's y_pred, against label leaking) and "
        f"takes its loss on the {labels['training_loss']} labels; every measured attack (BI, "
        f"FGSM, DeepFool, universal perturbations) uses the {labels['attack']} labels.", "",
        f"Inputs (seeded, nested draws): Figures 3, 5, 6, 8 and 16 on {r['eval_images']} test "
        f"inputs; Figures 1, 9 and 10 on {r['test_images']} of them and {r['train_images']} "
        f"training inputs (the paper: 256 each, the rest on the whole test split); detectors "
        f"trained on {r['detect_train_images']} training inputs (the paper: the training "
        "data). Every rate is printed as rate [95% Wilson interval] (successes/n); means and "
        "Pearson's r carry a 95% percentile bootstrap interval.", ""]
  if r.get("note"):
    md += [f"**Note.** {r['note']}", ""]
  md += variants_lib.source_lines(config, workdir) if workdir else []
  md += ["## The paper's claims beside ours", "",
         "The paper's numbers are for CIFAR-10, a pre-activation ResNet-18, 200 natural and 250 "
         "adversarial epochs. 'paper vs ours' says whether the paper's number lies inside our "
         "interval. Verdicts (stats.judge): holds / contradicted when the whole interval is on "
         "one side of the claim's threshold, inconclusive at this sample size otherwise; '-' "
         "where the paper states a number but no direction (a comparison only).", "",
         "| claim | test | paper | ours | paper vs ours | verdict |",
         "|---|---|---|---|---|---|"]
  for c in r["claims"]:
    md.append(f"| {c['claim']} | {c['test']} | {_fmt_paper(c)} | {c['ours']} | "
              f"{c['paper_mark']} | {c['verdict']} |")
  lc = r["learning"]["rates"]
  md += ["", "## Learning and transfer curves (Figures 8-9)", "",
         "![Figure 8](figures/figure8.png)", "", "![Figure 9](figures/figure9.png)", "",
         f"Figure 8: test columns on {r['learning']['inputs']['test']} test inputs, train BI on "
         f"{r['learning']['inputs']['train']} training inputs.", "",
         "| epoch | clean | FGSM | BI | train clean | train BI |", "|---|---|---|---|---|---|"]
  for i, e in enumerate(ep):
    md.append(f"| {e} | " + " | ".join(fr(lc[k][i]) for k in (
        "test_accuracy", "fgsm_accuracy", "bi_accuracy", "train_accuracy",
        "train_bi_accuracy")) + " |")
  tr = r["transfer"]["rates"]
  keys = list(tr["test"])
  md += ["", f"Figure 9 (BI error rate, {r['test_images']} test inputs; source epochs as "
         "columns):", "", "| target epoch | " + " | ".join(keys) + " |",
         "|---" * (len(keys) + 1) + "|"]
  for i, e in enumerate(ep):
    md.append(f"| {e} | " + " | ".join(fr(tr["test"][k][i]) for k in keys) + " |")
  st = r["stability"]
  sr = st["rates"]
  md += ["", "## Temporal stability profiles (Figures 1, 10)", "",
         "![Figure 1](figures/figure1.png)", "", "![Figure 10](figures/figure10.png)", "",
         f"Over {st['inputs']} test inputs: mean MaxMin "
         f"{stats.format_estimate(st['maxmin_mean_interval'])}, mean MinMax "
         f"{stats.format_estimate(st['minmax_mean_interval'])}; a stable perturbation (MaxMin "
         f"< {st['threshold']:g}) exists for {fr(sr['stable'])}, one model resists every "
         f"perturbation (MinMax >= {st['threshold']:g}) for {fr(sr['robust'])}, oscillation "
         f"(MaxMin >= threshold > MinMax) for {fr(sr['oscillating'])}; "
         f"{fr(sr['near_diagonal'])} lie within 0.2 of the diagonal.", ""]
  f2 = r["sharedness_vs_stability"]
  c = f2["pearson_loglog"]
  pval = "-" if c["p"] is None else f"{c['p']:.2g}"
  md += ["## Sharedness vs stability (Figure 2) and the sharedness ratio (Figure 11)", "",
         "![Figure 2](figures/figure2.png)", "",
         f"{f2['perturbations']} BI perturbations of epoch 0, sharedness over "
         f"{f2['train_inputs']} training inputs, stability over epochs {f2['future_epochs']}: "
         f"r = {stats.format_estimate(c.get('interval'))} (bootstrap over pairs; t-test p = "
         f"{pval}) over {c['n']} inputs with both cost changes > 0 ({c['dropped']} dropped); "
         "paper -0.293.", "", "![Figure 11](figures/figure11.png)", "",
         f"Each of {r['sharedness_ratio']['perturbations']} perturbations transferred to "
         f"{r['sharedness_ratio']['others']} other test inputs (the ratio counts those the "
         "model classifies correctly).", "",
         "| epoch | mean [bootstrap] | min | median | max | shared (>= 2%) | others correct |",
         "|---|---|---|---|---|---|---|"]
  for k, v in r["sharedness_ratio"]["epochs"].items():
    md.append(f"| {k} | {_pct_est(v['mean_interval'])} | {_pct(v['min'])} | "
              f"{_pct(v['median'])} | {_pct(v['max'])} | {fr(v['shared_rate'])} | "
              f"{v['others_correct']} |")
  u = r["universal"]
  md += ["", "## Universal perturbations (Figures 3, 4, 12, 13)", "",
         f"Test accuracy of {u['inputs']} test inputs under each perturbation.", "",
         "![Figure 3](figures/figure3.png)", "", "![Figure 4](figures/figure4.png)", ""]
  if "test" in u["sources"]:
    md += ["![Figure 12](figures/figure12.png)", "", "![Figure 13](figures/figure13.png)", ""]
  keys = list(u["rates"])
  md += ["| epoch | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
  for i, e in enumerate(u["epochs"]):
    md.append(f"| {e} | " + " | ".join(fr(u["rates"][k][i]) for k in keys) + " |")
  d = r["destruction"]
  md += ["", "## Destruction rates (Figures 5, 14, 15)", "", "![Figure 5](figures/figure5.png)",
         ""]
  for name, attack in (("Figure 14", "fgsm"), ("Figure 15", "deepfool")):
    if attack in config.destruction.attacks:
      md += [f"![{name}](figures/{'figure14' if attack == 'fgsm' else 'figure15'}.png)", ""]
  md += ["Destroyed of effective examples (effective: the clean input is classified correctly "
         "and its example is not), per level; brightness and noise levels in paper units.", "",
         "| epoch | attack | effective | kind | " + " | ".join(
             f"level {i + 1}" for i in range(max(len(v) for v in d["levels"].values())))
         + " |", "|---|---|---|---|" + "---|" * max(len(v) for v in d["levels"].values())]
  width = max(len(v) for v in d["levels"].values())
  for label, row in d["epochs"].items():
    for attack in config.destruction.attacks:
      a = row[attack]
      for kind, lv in d["levels"].items():
        shown = [round(v / d["paper_unit"], 3) if kind in ("brightness", "noise") else v
                 for v in lv]
        cells = [f"{lev:g}: {fr(cell['interval'])}" for lev, cell in zip(shown, a["rates"][kind])]
        cells += [""] * (width - len(cells))
        md.append(f"| {label} | {attack} | {fr(a['effective_rate'])} | {kind} | "
                  + " | ".join(cells) + " |")
  det = r["detection"]
  md += ["", "## Detectability (Figures 6, 7, 16)", "",
         f"Detectors trained on {det['train_inputs']} training inputs and their examples of one "
         f"epoch, tested on {det['test_inputs']} clean test inputs and their examples (correct "
         f"decisions of 2 x {det['test_inputs']}).", "",
         "![Figure 6](figures/figure6.png)", "", "![Figure 7](figures/figure7.png)", "",
         "![Figure 16](figures/figure16.png)", ""]
  for title, part in (("BI (Figure 6)", det), ("FGSM (Figure 16, top)", det["fgsm"])):
    md += [f"{title}:", "",
           "| epoch | respective | " + " | ".join(f"detector {k}" for k in part["fixed_rates"])
           + " |", "|---|---|" + "---|" * len(part["fixed_rates"])]
    for i, e in enumerate(det["epochs"]):
      md.append(f"| {e} | {fr(part['respective_rates'][i])} | "
                + " | ".join(fr(v[i]) for v in part["fixed_rates"].values()) + " |")
    md.append("")
  dfp = det["deepfool"]
  md += ["DeepFool (Figure 16, bottom; the respective epoch only, at the destruction epochs, as "
         "the paper restricts it for cost):", "", "| epoch | respective |", "|---|---|"]
  md += [f"| {e} | {fr(c)} |" for e, c in zip(dfp["epochs"], dfp["respective_rates"])]
  md += ["", "Figure 7's perturbations: mean p(adversarial) on clean test inputs (bootstrap "
         "interval) " + ", ".join(f"epoch {k}: {_pct_est(v)}"
                                  for k, v in det["maximiser_interval"].items()) + ".", ""]
  return md


def _fmt_paper(c: dict) -> str:
  v = c["paper"]
  if v is None:
    return "-"
  if isinstance(v, str):
    return v
  if c["kind"] == "value":
    return f"{v:.3f}"
  if c["kind"] == "difference":
    return f"{100 * v:+.1f} pts"
  return _pct(v)
