"""Cao & Gong's study (advbound.studies.region_defense): the scoring rules against brute force,
the config checks, and one tiny end-to-end run whose tables are checked against the model, the
region classifier and the invariants that tie the tables together, then resumed."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from advbound import io, models, region, stages, train


from advbound.config_check import ConfigError
from advbound.studies.region_defense import attacks, pipeline, protocol, settings
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


def test_rates_and_noise():
  r = protocol.rates(np.array([True, False, True]), np.array([1.0, 9.0, 3.0]))
  assert r == {"success_rate": pytest.approx(2 / 3), "noise": 2.0, "successes": 2,
               "attempts": 3}
  assert protocol.rates(np.zeros(2, bool), np.ones(2))["noise"] is None
  x = np.zeros((2, 2, 2, 3), np.float32)
  adv = x.copy()
  adv[0, 0, 0, :] = 1.0  # one pixel, three values
  adv[1, 1, 1, 2] = 0.5
  np.testing.assert_array_equal(protocol.noise(x, adv, "l0"), [3, 1])
  np.testing.assert_array_equal(protocol.noise(x, adv, "l0", pixels=True), [1, 1])
  np.testing.assert_allclose(protocol.noise(x, adv, "l2"), [np.sqrt(3), 0.5])


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
  # train to a usable student, so that some test images are correct for every classifier
  config.models.teacher.temperature = config.models.distillation.temperature = 5.0
  config.models.adversarial.augment_examples = 100
  return config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  config = _tiny()
  workdir = str(tmp_path_factory.mktemp("rd") / "run")
  out = pipeline.run(config, workdir)
  return config, workdir, out


def test_tables_agree_with_the_model_and_the_region_classifier(tiny_run):
  config, workdir, out = tiny_run
  ds = out["dataset"]
  data = dict(zip(("train", "test"), train.load_splits(config.data, ("train", "test"))))
  chosen = attacks.load_chosen(workdir)
  test = data["test"]
  fn = models.as_logits_fn(train.load_model(config.model, config.models.natural,
                                            os.path.join(workdir, "models", "natural")))
  # the point row: the model's own labels of the stored examples
  adv = attacks.load(workdir, "natural", "T-FGSM")["adversarial"]
  pred = np.asarray(jax.numpy.argmax(fn(adv), -1))
  ok = pred == chosen["targets"]
  assert out["table4"][ds]["point"]["T-FGSM"]["success_rate"] == pytest.approx(ok.mean())
  # the region row: labels recomputed by region.classify, counted only where an example exists
  radius = out["figure4"][ds]["radius"]
  labels, _ = region.classify(fn, jax.random.key(config.region.seed), adv, radius=radius,
                              num_samples=config.region.num_samples, bounds=test.bounds)
  expected = ok & (np.asarray(labels) == chosen["targets"])
  assert out["table4"][ds]["region"]["T-FGSM"]["success_rate"] == pytest.approx(
      expected.mean())
  # every evaluated image is labelled correctly by every point classifier and by the region one
  bench, _ = region.classify(fn, jax.random.key(config.region.seed),
                             test.images[chosen["indices"]], radius=radius,
                             num_samples=config.region.num_samples, bounds=test.bounds)
  np.testing.assert_array_equal(np.asarray(bench), chosen["labels"])


def test_tables_are_consistent_with_each_other(tiny_run):
  _, _, out = tiny_run
  ds = out["dataset"]
  t4, t5, t6 = out["table4"][ds], out["table5"][ds], out["table6"][ds]
  for row in ("point", "region"):
    for a in ("T-FGSM", "T-JSMA", "T-CW-L2"):
      # an example a region classifier is fooled by must exist: region <= point success
      assert t4["region"][a]["success_rate"] <= t4["point"][a]["success_rate"] + 1e-9
      # untargeted from the 9 targets succeeds on an image if any target does
      if t4[row][a]["successes"]:
        assert t5[row]["U-" + a[2:]]["successes"] >= 1
    # the combination is at least as successful as its parts
    assert t6[row]["T-CA-L2"]["success_rate"] >= t4[row]["T-CW-L2"]["success_rate"] - 1e-9
    for k, cell in out["figure6"][ds][row].items():
      if float(k) == 0:  # kappa 0 of the sweep is T-CW-L2 itself
        assert cell == t4[row]["T-CW-L2"]
  # alpha 0 of the adapted attack is the region row of the attack itself
  assert out["figure8"][ds]["T-CW-L2-A"]["0"] == t4["region"]["T-CW-L2"]
  # attacks not run on a baseline are reported as such, not as 0%
  assert t4["adversarial_training"]["T-JSMA"] is None
  assert t6["adversarial_training"]["T-CA-L0"] is None
  assert set(out["table3"][ds]) == {"point", "adversarial_training", "distillation", "region"}


def test_report_and_resume(tiny_run):
  config, workdir, out = tiny_run
  md = open(os.path.join(workdir, "report.md")).read()
  for heading in ("Table 3", "Table 4", "Table 5", "Table 6", "Figure 8", "EOT-PGD"):
    assert heading in md
  for f in out["figures"]["grids"].values():
    assert os.path.exists(os.path.join(workdir, f["file"]))
  assert os.path.exists(os.path.join(workdir, "radius", "figure4.png"))
  again = pipeline.run(config, workdir)  # every stage current: nothing recomputed
  assert stages.without_timings(again) == stages.without_timings(out)
  for name in list(pipeline.STAGES)[:-1]:  # the report's own time is not in the report
    record = io.read_json(os.path.join(workdir, "stages", f"{name}.json"))
    assert record["seconds"] == out["seconds"][name]
