"""Cao & Gong's study (advbound.studies.region_defense): the scoring rules against brute force,
the region classifier's noise draws against a model whose votes are known in closed form, the
tables against an independent loop reimplementation (on hand-made artifacts and on a tiny
end-to-end run), the image draw, the config checks, then a resumed run."""

import math
import os
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from advbound import models, training
from advbound.config.schema import ConfigError
from advbound.runtime import io, stages
from advbound.studies import variants as variants_lib
from advbound.studies.region_defense import (attacks, claims, pipeline, protocol, region_scores,
                                             settings, tables)
from configs import region_defense_cifar, region_defense_mnist, region_defense_quickstart
from configs import region_defense_smoke

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_best_of_against_a_loop():
  rng = np.random.default_rng(0)
  noises = rng.uniform(0, 1, (5, 40)).astype(np.float32)
  oks = rng.uniform(size=(5, 40)) < 0.3
  success, best = protocol.best_of(noises, oks)
  for j in range(40):
    good = [noises[i, j] for i in range(5) if oks[i, j]]
    assert success[j] == bool(good)
    assert best[j] == (min(good) if good else np.inf)
  with pytest.raises(ValueError, match="shapes"):
    protocol.best_of(noises, oks[:, :3])


def _wilson(k, n, z=1.959963984540054):
  """Wilson's score interval by its closed form."""
  p = k / n
  mid = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  return mid - half, mid + half


def test_rates_and_noise():
  r = protocol.rates(np.array([True, False, True]), np.array([1.0, 9.0, 3.0]))
  assert {k: r[k] for k in ("success_rate", "noise", "successes", "attempts", "n")} == {
      "success_rate": pytest.approx(2 / 3), "noise": 2.0, "successes": 2, "attempts": 3,
      "n": 3}
  assert (r["low"], r["high"]) == pytest.approx(_wilson(2, 3), abs=1e-9)
  assert r["noise_ci"]["low"] >= 1.0 and r["noise_ci"]["high"] <= 3.0
  assert protocol.rates(np.zeros(2, bool), np.ones(2))["noise"] is None
  x = np.zeros((2, 2, 2, 3), np.float32)
  adv = x.copy()
  adv[0, 0, 0, :] = 1.0  # one pixel, three values
  adv[1, 1, 1, 2] = 0.5
  np.testing.assert_array_equal(protocol.noise(x, adv, "l0"), [3, 1])
  np.testing.assert_array_equal(protocol.noise(x, adv, "l0", pixels=True), [1, 1])
  np.testing.assert_allclose(protocol.noise(x, adv, "l2"), [np.sqrt(3), 0.5])


def test_rates_over_noise_draws_by_hand():
  # 2 draws of 4 examples: 1 then 2 successes
  ok = np.array([[True, False, False, False], [True, True, False, False]])
  d = np.array([0.5, 1.5, 9.0, 9.0])
  r = protocol.rates(ok, d)
  assert (r["successes"], r["attempts"], r["rate"]) == (3, 8, 0.375)
  assert (r["low"], r["high"]) == pytest.approx(_wilson(3, 8), abs=1e-9)
  assert r["noise"] == pytest.approx((0.5 + 0.5 + 1.5) / 3)
  assert r["draws"]["mean"] == 0.375 and r["draws"]["std"] == pytest.approx(
      np.std([0.25, 0.5], ddof=1))
  # one query per example at the mean rate 1.5 / 4: the envelope of 1/4's and 2/4's intervals
  q = r["per_query"]
  assert q["n"] == 4 and q["rate"] == 0.375
  assert (q["low"], q["high"]) == pytest.approx((_wilson(1, 4)[0], _wilson(2, 4)[1]), abs=1e-9)
  assert q["high"] - q["low"] > r["high"] - r["low"]  # wider than the pooled interval


def _threshold_fn(z):
  """Class 1 where the first value exceeds 0.5, class 0 elsewhere: the vote of a uniform sample
  of the cube [x0 - r, x0 + r] (clipped to [0, 1]) is 1 with probability
  |(0.5, min(1, x0 + r)]| / (2r) (clipping moves mass to the bound, which keeps its side)."""
  s = z.reshape(z.shape[0], -1)[:, 0] - 0.5
  return jnp.stack([-s, s], -1)


def _region_cfg(**kw):
  return types.SimpleNamespace(**{"seed": 5, "num_samples": 5, "batch_size": 4096,
                                  "score_draws": 6, **kw})


@pytest.mark.parametrize("x0, p", [(0.55, 0.35 / 0.6), (0.45, 0.25 / 0.6), (0.95, 1.0),
                                   (0.1, 0.0)])
def test_region_draws_agree_with_the_closed_form_vote(x0, p):
  """The majority of m = 5 votes is class 1 with probability P(Binomial(5, p) >= 3); over 300
  examples x 6 independent draws the fraction of class-1 labels must be within 5 binomial
  standard errors. A fixed noise realisation per row position would make every draw equal."""
  cfg = _region_cfg()
  x = np.full((300, 1, 1, 1), x0, np.float32)
  labels = protocol.region_draws(_threshold_fn, x, radius=0.3, bounds=(0.0, 1.0),
                                 region_cfg=cfg, query="T-CW-L2")
  assert labels.shape == (6, 300)
  expected = 1 - scipy.stats.binom.cdf(2, 5, p)
  se = math.sqrt(expected * (1 - expected) / labels.size)
  assert abs(labels.mean() - expected) <= 5 * se + 1e-9
  if 0 < expected < 1:  # fresh noise per draw: the draws are not copies of one another
    assert not all(np.array_equal(labels[0], labels[d]) for d in range(1, 6))
    other = protocol.region_draws(_threshold_fn, x, radius=0.3, bounds=(0.0, 1.0),
                                  region_cfg=cfg, query="T-FGSM")
    assert not np.array_equal(other, labels)  # another query, other noise
  again = protocol.region_draws(_threshold_fn, x, radius=0.3, bounds=(0.0, 1.0), region_cfg=cfg,
                                query="T-CW-L2")
  np.testing.assert_array_equal(again, labels)  # same seed, same numbers
  with pytest.raises(ValueError, match="draw"):
    protocol.query_key(5, "T-CW-L2", -1)


def test_choose_images_verify_skips_rejected_candidates():
  labels = np.arange(50) % 10
  preds = [labels.copy()]
  plain = protocol.choose_images(3, labels, preds, 10)
  odd = protocol.choose_images(3, labels, preds, 10, verify=lambda idx: idx % 2 == 1)
  assert np.all(odd % 2 == 1) and len(set(odd.tolist())) == 10
  # the accepted ones keep the drawn order of the unverified draw's permutation
  order = [i for i in np.random.default_rng(3).permutation(50) if i % 2 == 1][:10]
  np.testing.assert_array_equal(odd, order)
  np.testing.assert_array_equal(plain, np.random.default_rng(3).permutation(50)[:10])
  with pytest.raises(ValueError, match="pass `verify`"):
    protocol.choose_images(3, labels, preds, 30, verify=lambda idx: idx % 2 == 1)


@pytest.mark.parametrize("change, path", [
    (lambda c: setattr(c.evaluation, "attacks", ("T-CW-L3",)), "evaluation.attacks"),
    (lambda c: setattr(c.study, "point", "teacher"), "study.point"),
    (lambda c: setattr(c.study, "classifiers", ("natural", "robust")), "study.classifiers"),
    (lambda c: c.evaluation.overrides.cw_l2.update(dict(max_iteration=5)),
     "evaluation.overrides.cw_l2.max_iteration"),
    (lambda c: setattr(c.evaluation.overrides.igsm, "max_epsilon", 2.0),
     "evaluation.overrides.igsm.max_epsilon"),
    (lambda c: setattr(c.radius, "step", 0.0), "radius.step"),
    (lambda c: setattr(c.evaluation, "num_images", 5000), "evaluation.num_images"),
    (lambda c: setattr(c.adapted, "attacks", ("T-JSMA",)), "adapted.attacks"),
    (lambda c: setattr(c.adaptive, "epsilons", (0.1, 1.5)), "adaptive.epsilons"),
    (lambda c: setattr(c.models.distillation, "distill_from", "student"),
     "models.distillation.distill_from"),
    (lambda c: setattr(c.evaluation, "draw", "every"), "evaluation.draw"),
    (lambda c: setattr(c.region, "score_draws", 0), "region.score_draws"),
])
def test_bad_settings_are_named(change, path):
  config = region_defense_smoke.get_config()
  config.unlock() if hasattr(config, "unlock") else None
  change(config)
  with pytest.raises(ConfigError) as e:
    settings.validate(config)
  assert any(p.startswith(path) for p in e.value.problems), e.value.problems


def test_entry_point_reports_a_bad_flag_without_a_traceback(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "experiments.region_defense",
       "--config=configs/region_defense_smoke.py", f"--workdir={tmp_path}/w",
       "--config.evaluation.num_images=-3"], cwd=ROOT, capture_output=True, text=True,
      timeout=300)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "evaluation.num_images" in out.stderr and "Traceback" not in out.stderr


class _Split:
  """A stand-in test split: images [N, 2, 2, 1] in [0, 1], labels, bounds, K classes."""

  def __init__(self, images, labels, num_classes):
    self.images, self.labels, self.num_classes = images, labels, num_classes
    self.bounds = (0.0, 1.0)

  def __len__(self):
    return len(self.labels)


def _coded_split(n=80, seed=0):
  """Images that carry their label (pixel (0, 0) = label / 10) and a flag per classifier that
  should get them wrong (pixel (0, 1): the adversarially trained one, pixel (1, 0): the
  distilled one)."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, n).astype(np.int32)
  images = np.zeros((n, 2, 2, 1), np.float32)
  images[:, 0, 0, 0] = labels / 10
  images[:, 0, 1, 0] = rng.uniform(size=n) < 0.3
  images[:, 1, 0, 0] = rng.uniform(size=n) < 0.3
  return _Split(images, labels, 10)


def _coded_fn(flag=None):
  def fn(z):
    label = jnp.round(z[:, 0, 0, 0] * 10).astype(jnp.int32)
    if flag is not None:
      label = jnp.where(z[:, flag[0], flag[1], 0] > 0.5, (label + 1) % 10, label)
    return jax.nn.one_hot(label, 10) * 5.0
  return fn


@pytest.mark.parametrize("draw", ["standard", "all_correct"])
def test_the_draw_follows_the_paper_unless_asked(tmp_path, draw):
  """The paper draws among the images the standard model gets right: images only a baseline
  misclassifies stay eligible (the old rule dropped them, biasing every row); "all_correct"
  keeps the stricter rule. Each classifier's correct count is recorded."""
  test = _coded_split()
  fns = {"natural": _coded_fn(), "adversarial": _coded_fn((0, 1)),
         "distillation": _coded_fn((1, 0))}
  config = region_defense_smoke.get_config()
  config.evaluation.update(dict(num_images=20, seed=4, draw=draw))
  chosen = attacks.choose(config, str(tmp_path), fns, test, radius=0.01)
  wrong_adv = test.images[:, 0, 1, 0] > 0.5
  wrong_dist = test.images[:, 1, 0, 0] > 0.5
  idx = chosen["indices"]
  eligible = np.ones(len(test), bool) if draw == "standard" else ~wrong_adv & ~wrong_dist
  expected = np.random.default_rng(4).permutation(np.flatnonzero(eligible))[:20]
  np.testing.assert_array_equal(idx, expected)
  if draw == "standard":
    assert wrong_adv[idx].any() and wrong_dist[idx].any()
  np.testing.assert_array_equal(chosen["correct_adversarial"], ~wrong_adv[idx])
  np.testing.assert_array_equal(chosen["correct_distillation"], ~wrong_dist[idx])
  assert chosen["correct_natural"].all()


def _norms(x, adv, norm):
  delta = (adv - x).reshape(len(x), -1)
  if norm == "l0":
    return (np.abs(delta) > 0).sum(1).astype(float)
  return np.sqrt((delta ** 2).sum(1)) if norm == "l2" else np.abs(delta).max(1)


def _reference(chosen, x_img, stems, point_label, adv, region_label, *, region):
  """Tables 4-6 by plain loops, from the stored labels: {stem or name: (successes, attempts,
  mean noise)} for one classifier row. stems: {stem: (attack, norm)}; point_label / adv:
  {stem: [M] / [M, *S]}; region_label: {stem: [D, M]} (used with region=True)."""
  n, rows, targets, labels = (len(chosen["indices"]), chosen["rows"], chosen["targets"],
                              chosen["labels"])

  def judged(stem, d, p):
    """(ok, noise) of example p of stem at draw d, as the row's classifier sees it."""
    attack, norm = stems[stem]
    untargeted = attack == "DeepFool"
    y = labels[p] if untargeted else labels[rows[p]]
    x = x_img[p] if untargeted else x_img[rows[p]]
    noise = _norms(x[None], adv[stem][p][None], norm)[0]
    lab = point_label[stem][p]
    if region:
      made = lab != y if untargeted else lab == targets[p]
      lab = region_label[stem][d, p] if made else y
    return lab, y, noise

  draws = next(iter(region_label.values())).shape[0] if region else 1
  out = {}

  def put(name, oks, noises):
    out[name] = (sum(oks), len(oks), float(np.mean(noises)) if noises else None)

  for stem, (attack, _) in stems.items():
    if attack == "DeepFool":
      continue
    oks, noises = [], []  # targeted: every pair at every draw
    for d in range(draws):
      for p in range(len(rows)):
        lab, _, noise = judged(stem, d, p)
        oks.append(lab == targets[p])
        noises += [noise] if lab == targets[p] else []
    put(stem, oks, noises)

  def untargeted(parts):
    oks, noises = [], []
    for d in range(draws):
      for i in range(n):
        best = None
        for stem in parts:
          ps = [i] if stems[stem][0] == "DeepFool" else np.flatnonzero(rows == i)
          for p in ps:
            lab, y, noise = judged(stem, d, p)
            if lab != y and (best is None or noise < best):
              best = noise
        oks.append(best is not None)
        noises += [best] if best is not None else []
    return oks, noises

  for stem in stems:
    put("U:" + stem, *untargeted([stem]))
  parts = [s for s in stems if stems[s][0] == "T-CW-L2"]
  oks, noises = [], []
  for d in range(draws):
    for p in range(len(rows)):
      best = None
      for stem in parts:
        lab, _, noise = judged(stem, d, p)
        if lab == targets[p] and (best is None or noise < best):
          best = noise
      oks.append(best is not None)
      noises += [best] if best is not None else []
  put("T-CA-L2", oks, noises)
  put("U-CA-L2", *untargeted(parts + ["DeepFool"]))
  return out


def test_tables_against_a_loop_reimplementation(tmp_path):
  """Hand-made artifacts (random examples, point labels and region labels at 3 noise draws) on
  3 images x 3 targets of a 4-class problem, scored by tables.compute and by plain loops."""
  rng = np.random.default_rng(1)
  k, n, draws = 4, 3, 3
  test = _Split(rng.uniform(size=(6, 2, 2, 1)).astype(np.float32), np.array([0, 1, 2, 3, 1, 2]),
                k)
  chosen = {"indices": np.array([4, 0, 3]), "labels": test.labels[[4, 0, 3]]}
  chosen["rows"], chosen["targets"] = protocol.all_targets(chosen["labels"], k)
  x_img = test.images[chosen["indices"]]
  workdir = str(tmp_path)
  os.makedirs(os.path.join(workdir, "attacks", "natural"))
  os.makedirs(os.path.join(workdir, "region"))
  np.savez(os.path.join(workdir, "attacks", "chosen.npz"), **chosen)
  stems = {"T-JSMA": ("T-JSMA", "l0"), "T-FGSM": ("T-FGSM", "linf"),
           "T-CW-L2": ("T-CW-L2", "l2"), "T-CW-L2_k5": ("T-CW-L2", "l2"),
           "DeepFool": ("DeepFool", "l2")}
  point_label, adv, region_label = {}, {}, {}
  for stem, (attack, _) in stems.items():
    m = n if attack == "DeepFool" else len(chosen["rows"])
    base = x_img if attack == "DeepFool" else x_img[chosen["rows"]]
    change = rng.uniform(size=base.shape) < 0.5
    adv[stem] = np.clip(base + change * rng.normal(0, 0.2, base.shape), 0, 1).astype(np.float32)
    # labels mostly the target (or a wrong class), sometimes the true one
    goal = chosen["labels"] if attack == "DeepFool" else chosen["targets"]
    truth = chosen["labels"] if attack == "DeepFool" else chosen["labels"][chosen["rows"]]
    point_label[stem] = np.where(rng.uniform(size=m) < 0.7,
                                 (truth + 1 + rng.integers(0, k - 1, m)) % k
                                 if attack == "DeepFool" else goal, truth).astype(np.int32)
    region_label[stem] = rng.integers(0, k, (draws, m)).astype(np.int32)
    np.savez(os.path.join(workdir, "attacks", "natural", f"{stem}.npz"), adversarial=adv[stem],
             label=point_label[stem])
    np.savez(os.path.join(workdir, "region", f"{stem}.npz"), label=region_label[stem])
  config = region_defense_smoke.get_config()
  config.study.classifiers = ("natural",)
  info = {s: {"attack": a, "kappa": 5.0 if s.endswith("_k5") else 0.0}
          for s, (a, _) in stems.items()}
  out = tables.compute(config, workdir, test=test, attacked={"attacks": {"natural": info}},
                       region_result={"adapted": {}})
  for row, region in (("point", False), ("region", True)):
    ref = _reference(chosen, x_img, stems, point_label, adv, region_label, region=region)
    cells = {"T-JSMA": out["table4"][row]["T-JSMA"], "T-FGSM": out["table4"][row]["T-FGSM"],
             "T-CW-L2": out["table4"][row]["T-CW-L2"],
             "T-CW-L2_k5": out["figure6"][row]["5"],
             "U:T-JSMA": out["table5"][row]["U-JSMA"], "U:T-FGSM": out["table5"][row]["U-FGSM"],
             "U:T-CW-L2": out["table5"][row]["U-CW-L2"],
             "U:T-CW-L2_k5": out["figure7"][row]["5"],
             "U:DeepFool": out["table5"][row]["DeepFool"],
             "T-CA-L2": out["table6"][row]["T-CA-L2"], "U-CA-L2": out["table6"][row]["U-CA-L2"]}
    for name, cell in cells.items():
      k_ok, m, noise = ref[name]
      assert (cell["successes"], cell["attempts"]) == (k_ok, m), (row, name)
      if noise is None:
        assert cell["noise"] is None, (row, name)
      else:
        assert cell["noise"] == pytest.approx(noise, rel=1e-5), (row, name)
      assert ("draws" in cell) == region and (not region or cell["draws"]["n"] == draws)
    # attacks that were not made are reported as such, not as 0%
    assert out["table4"][row]["T-CW-L0"] is None and out["table6"][row]["T-CA-L0"] is None


def test_paper_scale_configs_follow_the_protocol():
  cifar, mnist = region_defense_cifar.get_config(), region_defense_mnist.get_config()
  assert cifar.radius.validation_images == 5000  # Algorithm 1 on the paper's 5,000 images
  assert cifar.evaluation.pool is None  # images drawn from the whole test set
  for config in (cifar, mnist, region_defense_quickstart.get_config()):
    assert config.evaluation.draw == "standard"  # the paper's draw
    assert config.region.score_draws >= 2  # region rows over independent noise draws
  assert mnist.radius.validation_images is None  # all 5,000 validation digits


def test_claims_on_hand_made_cells():
  """Verdicts of the checked claims on cells whose intervals are known."""
  def cell(k, n, region=False):
    c = protocol.rates(np.arange(n) < k, np.ones(n))
    if region:
      c = protocol.rates(np.stack([np.arange(n) < k] * 2), np.ones((2, n)))
    return c
  t4 = {"point": {"T-CW-L2": cell(90, 90)}, "region": {"T-CW-L2": cell(0, 90, True)}}
  scored = {"table4": t4, "table5": {}, "table6": {}, "figure6": {}, "figure7": {},
            "figure8": {"T-CW-L2-A": {"0": cell(0, 90, True), "1": cell(50, 90, True),
                                      "2": cell(10, 90, True)}}}
  acc = {"point": stats_cell(990, 1000), "region": stats_cell(989, 1000),
         "distillation": stats_cell(900, 1000)}
  by_id = {c["id"]: c["verdict"] for c in claims.check("mnist", acc, scored)}
  assert by_id["lower-T-CW-L2"] == "holds"  # 0/90 vs 90/90
  assert by_id["bound-T-CW-L2"] == "holds"  # 0/90: Wilson high 4.1% < 20%
  assert by_id["cw-point-T-CW-L2"] == "holds"
  assert by_id["accuracy-lost-distillation"] == "holds"
  assert by_id["accuracy-kept"] == "inconclusive at this sample size"  # [-1.0, 0.8] points
  assert by_id["bound-T-CW-L0"] == "not run"
  assert by_id["adapted-below-100-T-CW-L2-A"] == "holds"
  assert by_id["adapted-rise-fall-T-CW-L2-A"] == "holds"
  assert by_id["untargeted-higher"].startswith("true by construction")
  t4["region"]["T-CW-L2"] = cell(40, 90, True)  # 44% against a 20% bound
  by_id = {c["id"]: c["verdict"] for c in claims.check("mnist", acc, scored)}
  assert by_id["bound-T-CW-L2"] == "contradicted"
  # an attack far weaker on our point classifier than the paper's (50/90 vs 100%): what the
  # region classifier does with its examples is out of the paper's regime
  t4["point"]["T-CW-L2"] = cell(50, 90)
  by_id = {c["id"]: c["verdict"] for c in claims.check("mnist", acc, scored)}
  for cid in ("lower-T-CW-L2", "bound-T-CW-L2", "adapted-below-100-T-CW-L2-A"):
    assert by_id[cid].startswith("out of regime"), cid
  assert by_id["cw-point-T-CW-L2"] == "contradicted"


def stats_cell(k, n):
  from advbound import stats
  return stats.proportion(k, n)


def _tiny():
  config = region_defense_smoke.get_config()
  ev = config.evaluation
  ev.attacks = ("T-FGSM", "T-JSMA", "T-CW-L2", "DeepFool")
  ev.baseline_attacks = ("T-FGSM", "DeepFool")
  ev.overrides.fgsm.max_epsilon = 0.5
  config.adapted.attacks = ("T-CW-L2",)
  for v in config.models:
    config.models[v].num_steps = 60
  # the pipeline, not distillation at T = 100, is under test: a temperature that 60 steps
  # train to a usable student
  config.models.teacher.temperature = config.models.distillation.temperature = 5.0
  config.models.adversarial.augment_examples = 100
  return config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  config = _tiny()
  workdir = str(tmp_path_factory.mktemp("rd") / "run")
  out = pipeline.run(config, workdir)
  return config, workdir, out


def test_tiny_run_draw_and_tables_against_the_model_and_loops(tiny_run):
  config, workdir, out = tiny_run
  ds = out["dataset"]
  test = variants_lib.load_splits(config.data, ("test",))[0]
  chosen = attacks.load_chosen(workdir)
  fns = {c: models.as_logits_fn(training.load_model(config.model, config.models[c],
                                                    os.path.join(workdir, "models", c)))
         for c in config.study.classifiers}
  preds = {c: np.asarray(jnp.argmax(fns[c](test.images), -1)) for c in fns}
  # the paper's draw: the seeded permutation of the images the standard model gets right
  pool = np.flatnonzero(preds["natural"] == test.labels)
  expected = np.random.default_rng(config.evaluation.seed).permutation(pool)
  np.testing.assert_array_equal(chosen["indices"], expected[:config.evaluation.num_images])
  for c, row in tables.ROWS.items():
    assert out["benign_correct"][row]["successes"] == int(
        (preds[c][chosen["indices"]] == chosen["labels"]).sum())
  # the tables against loops over the stored examples, the model's labels and the region labels
  stems = {"T-FGSM": ("T-FGSM", "linf"), "T-CW-L2": ("T-CW-L2", "l2"),
           "T-CW-L2_k20": ("T-CW-L2", "l2"), "DeepFool": ("DeepFool", "l2")}
  x_img = test.images[chosen["indices"]]
  arrays = {s: attacks.load(workdir, "natural", s) for s in stems}
  adv = {s: a["adversarial"] for s, a in arrays.items()}
  point_label = {s: np.asarray(jnp.argmax(fns["natural"](a), -1)) for s, a in adv.items()}
  region_label = {s: region_scores.load(workdir, s) for s in stems}
  assert all(v.shape[0] == config.region.score_draws for v in region_label.values())
  for row, region in (("point", False), ("region", True)):
    ref = _reference(chosen, x_img, stems, point_label, adv, region_label, region=region)
    for name, cell in (("T-FGSM", out["table4"][ds][row]["T-FGSM"]),
                       ("T-CW-L2", out["table4"][ds][row]["T-CW-L2"]),
                       ("U:T-FGSM", out["table5"][ds][row]["U-FGSM"]),
                       ("U:DeepFool", out["table5"][ds][row]["DeepFool"]),
                       ("T-CA-L2", out["table6"][ds][row]["T-CA-L2"]),
                       ("U-CA-L2", out["table6"][ds][row]["U-CA-L2"])):
      assert (cell["successes"], cell["attempts"]) == ref[name][:2], (row, name)
  # attacks not run on a baseline are reported as such, not as 0%
  assert out["table4"][ds]["adversarial_training"]["T-JSMA"] is None
  assert set(out["table3"][ds]) == {"point", "adversarial_training", "distillation", "region"}


def test_report_and_resume(tiny_run):
  config, workdir, out = tiny_run
  md = open(os.path.join(workdir, "report.md")).read()
  for heading in ("Table 3", "Table 4", "Table 5", "Table 6", "Figure 8", "EOT-PGD",
                  "claims, checked"):
    assert heading in md
  assert "per query" in md and ("(outside)" in md or "(inside)" in md)
  assert all(c["verdict"] for c in out["claims"])
  for f in out["figures"]["grids"].values():
    assert os.path.exists(os.path.join(workdir, f["file"]))
  assert os.path.exists(os.path.join(workdir, "radius", "figure4.png"))
  again = pipeline.run(config, workdir)  # every stage current: nothing recomputed
  assert stages.without_timings(again) == stages.without_timings(out)
  for name in list(pipeline.STAGES)[:-1]:  # the report's own time is not in the report
    record = io.read_json(os.path.join(workdir, "stages", f"{name}.json"))
    assert record["seconds"] == out["seconds"][name]


def test_every_stage_reads_only_the_sections_it_declares(tiny_run):
  import study_reads  # pylint: disable=g-import-not-at-top
  config, workdir, _ = tiny_run
  study_reads.assert_declared_reads(pipeline.STUDY, workdir, config)
