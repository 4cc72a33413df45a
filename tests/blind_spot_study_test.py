"""The blind-spot study (advbound.studies.blind_spot): its rules against brute force and peer
libraries, the config checks, and one tiny end-to-end run checked against the trained models,
the stored artifacts and the invariants tying the tables together, then resumed."""

import os

import numpy as np
import pytest
from ml_collections import config_dict
from scipy.spatial import distance as scipy_distance
from sklearn import metrics as sk_metrics

from advbound import divergence, evaluate, io, models, stages, train
from advbound.attacks import blind_spot
from advbound.config_check import ConfigError
from advbound.studies.blind_spot import (attacks, distances, paper, pipeline, protocol,
                                         settings)
from configs import blind_spot_quickstart, blind_spot_smoke


# --- the rules -----------------------------------------------------------------------------

def test_success_counts_only_correct_inputs_and_the_threshold_is_inclusive():
  correct = np.array([True, True, True, False, True, False])
  distortion = np.array([0.3, 0.30001, 0.1, 0.0, np.inf, 0.2], np.float32)
  r = protocol.success(correct, distortion, 0.3)
  # 0.3 counts (at most the threshold), 0.30001 does not, the misclassified inputs (whatever
  # their distortion) are neither attempts nor successes
  assert r == dict(success_rate=pytest.approx(2 / 4), successes=2, attempts=4)
  strict = protocol.success(correct, distortion, 0.7 * 0.3)
  assert strict["successes"] == 1 and strict["attempts"] == 4
  assert protocol.success(np.zeros(3, bool), np.zeros(3), 0.3) == dict(
      success_rate=None, successes=0, attempts=0)
  with pytest.raises(ValueError, match="differ"):
    protocol.success(correct, distortion[:3], 0.3)


def test_best_of_starts_against_a_loop():
  rng = np.random.default_rng(0)
  found = rng.uniform(size=(2, 30)) < 0.5
  linf = rng.uniform(size=(2, 30)).astype(np.float32)
  best = protocol.best_of_starts(found, linf)
  for j in range(30):
    good = [linf[s, j] for s in range(2) if found[s, j]]
    assert best[j] == (min(good) if good else np.inf)


def test_binned_against_a_loop():
  rng = np.random.default_rng(1)
  d = rng.gamma(3.0, size=500)
  attacked = rng.choice(500, 120, replace=False)
  ok = rng.uniform(size=120) < d[attacked] / d.max()
  b = protocol.binned(d, d[attacked], ok, 7)
  edges = np.asarray(b["edges"])
  assert len(edges) == 8 and edges[0] == d.min() and edges[-1] == d.max()
  for i in range(7):
    last = i == 6  # numpy's last bin is closed
    inside = lambda v: (v >= edges[i]) & ((v <= edges[i + 1]) if last else (v < edges[i + 1]))
    assert b["counts"][i] == int(inside(d).sum())
    m = inside(d[attacked])
    assert b["attempts"][i] == int(m.sum()) and b["successes"][i] == int((m & ok).sum())
    assert b["success_rate"][i] == (None if not m.any() else pytest.approx(ok[m].mean()))
  assert sum(b["counts"]) == 500 and sum(b["attempts"]) == 120


def test_auc_matches_scikit_learn_with_ties():
  rng = np.random.default_rng(2)
  pos, neg = np.round(rng.normal(1, 1, 80), 1), np.round(rng.normal(0, 1, 60), 1)
  expected = sk_metrics.roc_auc_score(np.r_[np.ones(80), np.zeros(60)], np.r_[pos, neg])
  assert protocol.auc(pos, neg) == pytest.approx(expected)
  assert protocol.auc(pos, []) is None


def test_distance_trend_and_shift():
  d = np.linspace(0, 1, 40)
  t = protocol.distance_trend(d, d > 0.5)  # every success farther than every failure
  assert t["auc"] == 1.0 and t["nearest_quarter"] == 0.0 and t["farthest_quarter"] == 1.0
  assert t["p_value"] < 1e-6
  assert protocol.distance_trend(d, np.zeros(40, bool))["auc"] is None
  same = protocol.shift(d, d)
  assert same["ks_statistic"] == 0 and same["detection_auc"] == 0.5
  assert same["mean_shift_in_std"] == 0
  apart = protocol.shift(d, d + 2)
  assert apart["ks_statistic"] == 1 and apart["detection_auc"] == 1.0


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (0.0, 255.0)])
def test_starts_on_the_papers_scale(bounds):
  low, high = bounds
  x = np.full((400, 8, 8, 1), (low + high) / 2, np.float32)
  noisy = protocol.start("noise", x, bounds=bounds, noise_std=0.2, seed=0)
  # std 0.2 on the [-0.5, 0.5] scale, drawn the same for the same seed
  assert np.std(blind_spot.paper_scale(noisy, bounds=bounds)) == pytest.approx(0.2, rel=0.02)
  np.testing.assert_array_equal(noisy, protocol.start("noise", x, bounds=bounds, noise_std=0.2,
                                                      seed=0))
  grey = protocol.start("grey", x[:2], bounds=bounds, noise_std=0.2, seed=0)
  np.testing.assert_array_equal(blind_spot.paper_scale(grey, bounds=bounds), 0.0)
  with pytest.raises(ValueError, match="'white'"):
    protocol.start("white", x, bounds=bounds, noise_std=0.2, seed=0)


def test_attacked_images_are_a_seeded_draw_of_every_class():
  a = attacks.choose(1000, 100, 0)
  assert len(set(a.tolist())) == 100 and np.all(np.diff(a) > 0) and a.max() < 1000
  np.testing.assert_array_equal(a, attacks.choose(1000, 100, 0))
  # the embedded MNIST-5k test split is stored sorted by class: the draw spans them all
  labels = np.repeat(np.arange(10), 100)
  assert len(np.unique(labels[a])) == 10


# --- the config checks ---------------------------------------------------------------------

@pytest.mark.parametrize("path,value,expected", [
    ("study.attacked", "robust", "study.attacked: must be one of"),
    ("study.extractors", ("natural", "teacher"), "unknown model variant ['teacher']"),
    ("study.epsilon", 0.0, "study.epsilon: must be > 0"),
    ("study.alphas", (0.9, 1.0), "must start with 1.0"),
    ("study.alphas", (1.0, 1.5), "scale factors in (0, 1]"),
    ("study.test_images", 5000, "study.test_images: must be at most 1000"),
    ("attack.num_images", 2000, "attack.num_images: must be at most 1000"),
    ("attack.starts", ("noise", "white"), "unknown start ['white']"),
    ("attack.cw.decrease_factor", 1.0, "attack.cw.decrease_factor: must be < 1"),
    ("divergence.model", "teacher", "divergence.model: must be one of"),
    ("divergence.max_iter", 100, "divergence.max_iter: must be >= 250"),
    ("figures.histogram_pair", (0.75, 0.0), "must be a transformed pair of the grid"),
    ("distance.k", 0, "distance.k: must be >= 1"),
])
def test_bad_settings_are_named(path, value, expected):
  config = blind_spot_quickstart.get_config()
  section, key = path.rsplit(".", 1)
  node = config
  for part in section.split("."):
    node = node[part]
  with node.ignore_type():
    node[key] = value
  with pytest.raises(ConfigError) as e:
    settings.validate(config, sizes=dict(train=3500, validation=500, test=1000))
  assert any(expected in p for p in e.value.problems), e.value.problems


def test_unknown_section_and_missing_one():
  config = blind_spot_quickstart.get_config()
  config.tsne = config_dict.ConfigDict(dict(perplexity=5))
  del config["attack"]
  with pytest.raises(ConfigError) as e:
    settings.validate(config, sizes=dict(train=3500, validation=500, test=1000))
  assert any(p.startswith("config.tsne: unknown key") for p in e.value.problems)
  assert any(p.startswith("config.attack: missing") for p in e.value.problems)


def test_quickstart_dataset_argument():
  assert blind_spot_quickstart.get_config("fashion_mnist").study.epsilon == 0.1
  with pytest.raises(ValueError, match="'cifar10'"):
    blind_spot_quickstart.get_config("cifar10")


# --- one tiny run, end to end --------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("blind_spot"))
  config = blind_spot_smoke.get_config()
  results = pipeline.run(config, workdir)
  return config, workdir, results


def test_results_agree_with_the_models(smoke):
  """Accuracies, the correctly classified set, and the distances recomputed from the trained
  models: embeddings by as_embedding_fn, distances by scipy's cdist."""
  config, workdir, results = smoke
  train_set, test = train.load_splits(config.data, ("train", "test"))
  trained = {v: train.load_model(config.model, config.models[v],
                                 os.path.join(workdir, "models", v)) for v in config.models}
  stored = distances.load(workdir)
  grid = protocol.pairs(config.study.alphas)
  for i, (a, b) in enumerate(grid):
    xt = np.asarray(blind_spot.scale_shift(test.images, a, b, bounds=test.bounds))
    for v, model in trained.items():
      pred = evaluate.predict(models.as_logits_fn(model), xt)
      np.testing.assert_array_equal(stored[f"predicted_{v}"][i], pred)
      assert results["accuracy"][v][paper.pair_key(a, b)] == pytest.approx(
          np.mean(pred == test.labels))
    # distances of a few images by brute force
    model = trained["adversarial"]
    ref = distances.embed(model, train_set.images, batch_size=500)
    q = distances.embed(model, xt[:25], batch_size=500)
    brute = np.sort(scipy_distance.cdist(q, ref), axis=1)[:, :config.distance.k].mean(1)
    np.testing.assert_allclose(stored["distance_adversarial"][i][:25], brute, rtol=1e-4,
                               atol=1e-5)
    # the attack's denominator: exactly the drawn images classified correctly after the
    # transformation
    art = attacks.load(workdir, a, b)
    pred = evaluate.predict(models.as_logits_fn(model), xt[art["chosen"]])
    np.testing.assert_array_equal(art["correct"], pred == test.labels[art["chosen"]])
    np.testing.assert_array_equal(art["index"], art["chosen"][art["correct"]])


def test_examples_are_adversarial_within_the_stored_distortion(smoke):
  config, workdir, results = smoke
  _, test = train.load_splits(config.data, ("train", "test"))
  model = train.load_model(config.model, config.models.adversarial,
                           os.path.join(workdir, "models", "adversarial"))
  fn = models.as_logits_fn(model)
  checked = 0
  for a, b in protocol.pairs(config.study.alphas):
    art = attacks.load(workdir, a, b)
    xt = np.asarray(blind_spot.scale_shift(test.images[art["index"]], a, b,
                                           bounds=test.bounds))
    ok = np.isfinite(art["best"])
    np.testing.assert_array_equal(ok, art["found_noise"] | art["found_grey"])
    linf = np.abs(art["adversarial"] - xt).reshape(len(xt), -1).max(1)
    np.testing.assert_allclose(linf[ok], art["best"][ok], atol=1e-5)
    np.testing.assert_array_equal(art["adversarial"][~ok], xt[~ok])
    if ok.any():
      pred = evaluate.predict(fn, art["adversarial"][ok])
      assert np.all(pred != test.labels[art["index"]][ok])
      checked += int(ok.sum())
    row = results["scale_shift"][paper.pair_key(a, b)]
    # the tables from the artifacts: both thresholds, the stricter one never above
    assert row["epsilon"]["attempts"] == len(art["index"]) == row["alpha_epsilon"]["attempts"]
    assert row["epsilon"]["successes"] == int(np.sum(art["best"] <= config.study.epsilon))
    assert row["alpha_epsilon"]["successes"] == int(
        np.sum(art["best"] <= a * config.study.epsilon))
    assert row["alpha_epsilon"]["successes"] <= row["epsilon"]["successes"]
    for s in config.attack.starts:
      assert row["by_start"][s]["successes"] <= row["epsilon"]["successes"]
  assert checked > 0  # the smoke attack finds examples (beyond epsilon or not)
  t1, first = results["table1"], results["scale_shift"][paper.pair_key(1.0, 0.0)]
  assert t1["success_rate"] == first["epsilon"]["success_rate"]
  assert t1["test_accuracy"] == first["accuracy"]


def test_divergence_recomputed_from_the_stored_points(smoke):
  config, workdir, results = smoke
  per_class = results["divergence"]["per_class"]
  assert len(per_class) == 10 and results["table1"]["kl_divergence"] == pytest.approx(
      np.mean(per_class))
  with np.load(os.path.join(workdir, "divergence", "class_3.npz")) as f:
    again = divergence.kl_divergence(f["train"], f["test"], grid=config.divergence.grid)
    assert f["train"].shape == (config.divergence.train_per_class, 2)
  assert again == pytest.approx(per_class[3])


def test_report_figures_and_resume(smoke, caplog):
  config, workdir, results = smoke
  for f in ("report.md", "results.json", "figures/figure1.png", "figures/figure4.png",
            "figures/figure5.png", "figures/tsne.png"):
    assert os.path.getsize(os.path.join(workdir, f)) > 0, f
  report = open(os.path.join(workdir, "report.md")).read()
  assert "| 0.8 | 0.1 |" in report and "(52.3%)" in report  # a row beside the paper's value
  before = {s: io.read_json(os.path.join(workdir, "stages", f"{s}.json"))["seconds"]
            for s in pipeline.STAGES}
  with caplog.at_level("INFO"):
    again = pipeline.run(config, workdir)
  assert "running" not in caplog.text
  assert stages.without_timings(again) == stages.without_timings(results)
  after = {s: io.read_json(os.path.join(workdir, "stages", f"{s}.json"))["seconds"]
           for s in pipeline.STAGES}
  assert after == before
