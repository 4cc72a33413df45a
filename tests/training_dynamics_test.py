"""The training-dynamics study (advbound.studies.training_dynamics) and the pieces it adds: the
log-log Pearson r against scipy, transfer rates and destruction rates against direct
computation, the epoch length against the trainer's permutations, nested draws, the two new
models, and one tiny end-to-end run checked against the epochs' models (predictions recomputed
outside the study's code paths), then resumed. The config checks are in
training_dynamics_settings_test.py."""

import os

import chex
import jax
import numpy as np
import pytest
from flax import nnx
import scipy.stats

from advbound import models, stats, training
from advbound.analysis import evaluate, stability, transforms
from advbound.attacks.pgd import pgd
from advbound.runtime import io, stages
from advbound.studies import variants as variants_lib
from advbound.studies.training_dynamics import (epochs, examples, pipeline, profiles, sharedness,
                                                universal as universal_stage)
from configs import training_dynamics_smoke


def _linear(W, z):
  return z.reshape(z.shape[0], -1) @ W.T


# --- the pieces ----------------------------------------------------------------------------

def test_loglog_pearson_against_scipy():
  rng = np.random.default_rng(0)
  a = np.exp(rng.normal(size=200))
  b = np.exp(-0.4 * np.log(a) + rng.normal(size=200))
  a[:7] = -a[:7]       # non-positive or non-finite pairs are dropped and counted
  b[7:10] = 0.0
  a[10] = np.nan
  got = stability.loglog_pearson(a, b)
  keep = np.isfinite(a) & (a > 0) & (b > 0)
  ref = scipy.stats.pearsonr(np.log(a[keep]), np.log(b[keep]))
  assert got["n"] == 189 and got["dropped"] == 11
  assert got["r"] == pytest.approx(ref.statistic, abs=1e-12)
  assert got["p"] == pytest.approx(ref.pvalue, rel=1e-6)
  assert got["r"] < 0
  assert stability.loglog_pearson(np.ones(2), np.ones(2))["r"] is None
  with pytest.raises(ValueError, match="vectors of one length"):
    stability.loglog_pearson(np.ones(3), np.ones(4))


def test_transfer_rates_against_a_loop():
  rng = np.random.default_rng(1)
  W = rng.normal(size=(3, 6)).astype(np.float32)
  fn = jax.tree_util.Partial(_linear, W)
  x = rng.uniform(0, 1, size=(50, 6)).astype(np.float32)
  y = rng.integers(0, 3, 50).astype(np.int32)   # some inputs misclassified: they do not count
  pert = rng.normal(0, 0.4, size=(7, 6)).astype(np.float32)
  got = stability.transfer_rates(fn, pert, x, y, bounds=(0, 1))
  correct = np.argmax(x @ W.T, 1) == y
  assert 0 < correct.sum() < 50
  for p, xi in enumerate(pert):
    fooled = np.argmax(np.clip(x + xi, 0, 1) @ W.T, 1) != y
    assert got[p] == pytest.approx(fooled[correct].mean())
  assert np.isnan(stability.transfer_rates(fn, pert, x[~correct], y[~correct],
                                           bounds=(0, 1))).all()


def test_destruction_rate_with_precomputed_effective_set():
  rng = np.random.default_rng(2)
  W = rng.normal(size=(3, 6)).astype(np.float32)
  fn = jax.tree_util.Partial(_linear, W)
  x = rng.uniform(0, 1, size=(60, 6)).astype(np.float32)
  y = np.argmax(x @ W.T, 1).astype(np.int32)
  x_adv = np.clip(x + rng.normal(0, 0.3, size=x.shape), 0, 1).astype(np.float32)
  moved = np.asarray(transforms.apply("brightness", x_adv, 0.1, bounds=(0, 1)))
  eff = transforms.effective_examples(fn, x, x_adv, y)
  # the reference: argmax of the linear logits, by hand
  pred = lambda v: np.argmax(v @ W.T, 1)
  effective = (pred(x) == y) & (pred(x_adv) != y)
  destroyed = effective & (pred(np.clip(x_adv + 0.1, 0, 1)) == y)
  assert 0 < effective.sum() < 60 and 0 < destroyed.sum() < effective.sum()
  np.testing.assert_array_equal(eff, effective)
  got = transforms.destruction_rate(fn, x, x_adv, y, moved, effective=eff)
  assert (got["destroyed"], got["effective"]) == (int(destroyed.sum()), int(effective.sum()))
  with pytest.raises(ValueError, match="one entry per input"):
    transforms.destruction_rate(fn, x, x_adv, y, moved, effective=eff[:5])


def test_bi_is_pgd_without_random_start_closed_form_on_a_linear_model():
  """Two classes, logits (w.x, -w.x): the loss gradient's sign is -sign(w) for class 0 at every
  point, so BI walks min(n * alpha, eps) along it, clipped to the box."""
  w = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
  fn = jax.tree_util.Partial(lambda W, z: z @ W.T, np.stack([w, -w]))
  x = np.full((1, 4), 0.5, np.float32)
  for n, eps in ((2, 0.3), (10, 0.3), (3, 0.6)):
    got = np.asarray(pgd(fn, jax.random.key(0), x, np.zeros(1, np.int32), epsilon=eps,
                         step_size=0.1, num_steps=n, bounds=(0, 1), random_start=False))
    expect = np.clip(x - min(n * 0.1, eps) * np.sign(w), 0, 1)
    np.testing.assert_allclose(got, expect, atol=1e-6)


@pytest.mark.parametrize("n,batch", [(100, 32), (3500, 64), (45000, 128), (55000, 128)])
def test_steps_per_epoch_is_the_trainers_epoch(n, batch):
  """steps_per_epoch(n, b) steps of the trainer's batches see each example at most once (one
  pass), and the next step starts a new pass (it repeats examples already seen)."""
  s = training.steps_per_epoch(n, batch)
  seen = np.concatenate([training.batch_indices(3, k, batch, n) for k in range(s)])
  assert len(np.unique(seen)) == s * batch              # one pass, no example twice
  assert n - s * batch < batch                          # only the remainder is dropped
  nxt = training.batch_indices(3, s, batch, n)
  assert np.isin(nxt, seen).any() or n - s * batch >= batch  # a new permutation begins


def test_epoch_lengths_of_the_papers_splits():
  """The issue's arithmetic: 45,000 / 128, 55,000 / 128, 3,500 / 64, remainders dropped."""
  assert training.steps_per_epoch(45000, 128) == 351
  assert training.steps_per_epoch(55000, 128) == 429
  assert training.steps_per_epoch(3500, 64) == 54
  for bad in ((0, 64), (100, 0), (10, 64), (100.5, 8)):
    with pytest.raises(ValueError):
      training.steps_per_epoch(*bad)


def test_nested_draws_are_subsets_and_spread():
  small, large = epochs.nested(1000, 40, 0, epochs.TEST), epochs.nested(1000, 300, 0,
                                                                       epochs.TEST)
  assert set(small) <= set(large) and len(set(large)) == 300
  assert large.max() > 900 and large.min() < 100           # spread over the split
  assert not set(epochs.nested(1000, 300, 0, epochs.TRAIN)) == set(large)
  with pytest.raises(ValueError):
    epochs.nested(10, 11, 0, 0)


@pytest.mark.parametrize("name,kwargs,shape,dim", [
    ("preact_resnet", dict(width=4, blocks=(1, 1, 1)), (32, 32, 3), 16),
    ("preact_resnet", dict(width=4, blocks=(2, 1), in_channels=1), (28, 28, 1), 8),
    ("plain_cnn", dict(width=4, dense=16), (32, 32, 3), 16),
    ("plain_cnn", dict(width=4, dense=8, in_channels=1, image_size=28), (28, 28, 1), 8),
])
def test_new_models_shapes_and_embedding(name, kwargs, shape, dim):
  model = models.build(name, rngs=nnx.Rngs(0), **kwargs)
  x = jax.random.uniform(jax.random.key(1), (3,) + shape)
  embed = models.as_embedding_fn(model)(x)
  chex.assert_shape(embed, (3, dim))
  chex.assert_trees_all_close(models.as_logits_fn(model)(x), model.head(embed), atol=1e-5)


def test_preact_resnet18_parameter_count():
  """The paper's classifier (He et al.'s identity-mapping design: BN-ReLU before each conv,
  1x1 projection shortcuts, a final BN-ReLU before the pool), counted layer by layer."""
  def block(i, o):
    return 2 * i + 9 * i * o + 2 * o + 9 * o * o + (i * o if i != o else 0)
  expected = 27 * 64                                        # stem conv 3x3x3x64
  for i, o in ((64, 64), (64, 128), (128, 256), (256, 512)):
    expected += block(i, o) + block(o, o)
  expected += 2 * 512 + 512 * 10 + 10                       # final BN, dense head
  model = models.build("preact_resnet", rngs=nnx.Rngs(0))
  count = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert count == expected
  assert 11.1e6 < count < 11.2e6                            # "ResNet-18", 11.2 million


def test_plain_cnn_dropout_only_in_train_mode():
  model = models.build("plain_cnn", width=4, dense=8, rngs=nnx.Rngs(0))
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
  model.eval()
  np.testing.assert_array_equal(model(x), model(x))
  model.train()
  assert not np.allclose(model(x), model(x))


# --- one tiny run, end to end --------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("training_dynamics"))
  config = training_dynamics_smoke.get_config()
  return config, workdir, pipeline.run(config, workdir)


def _data(config):
  return dict(zip(("train", "test"), variants_lib.load_splits(config.data, ("train", "test"))))


def _predict(fn, x):
  """Predictions by the model's function directly (no batching, no evaluate helpers)."""
  return np.argmax(np.asarray(fn(jax.numpy.asarray(x))), -1)


def test_epoch_models_and_examples(smoke):
  """Epoch 0 is the natural model; the last epoch the adversarial variant's final model; the
  stored BI examples are BI's: inside the box and the ball, and every pixel moved by a whole
  number of steps unless clipped to the box (BI starts at x and adds +-alpha per step, with
  epsilon = 4 alpha); the draws are nested and seeded."""
  config, workdir, results = smoke
  data = _data(config)
  m = epochs.Models(config, workdir)
  natural = models.as_logits_fn(training.load_model(config.model, config.models.natural,
                                                    os.path.join(workdir, "models", "natural")))
  fixed = epochs.inputs(config, data, detect=True)
  xe, ye = fixed["eval"]
  xt, yt = fixed["test"]
  np.testing.assert_allclose(evaluate.logits(m(0), xe), evaluate.logits(natural, xe),
                             atol=1e-5)
  last = models.as_logits_fn(training.load_model(config.model, config.models.adversarial,
                                                 os.path.join(workdir, "models", "adversarial")))
  np.testing.assert_allclose(evaluate.logits(m(3), xe), evaluate.logits(last, xe), atol=1e-5)
  assert len(xe) == 60 and len(xt) == 40 and len(fixed["detect"][0]) == 50
  assert set(fixed["test_index"]) <= set(fixed["eval_index"])
  assert set(fixed["train_index"]) <= set(fixed["detect_index"])
  np.testing.assert_array_equal(xe[fixed["test_in_eval"]], xt)
  assert len(np.unique(ye)) >= 5     # a seeded draw, not the first (class-sorted) images
  alpha, eps = config.study.step_size, config.study.epsilon
  for e in results["measured_epochs"]:
    ex = examples.load(workdir, e)
    delta = ex["bi_eval"] - xe
    assert np.abs(delta).max() <= eps + 1e-6
    assert ex["bi_eval"].min() >= 0 and ex["bi_eval"].max() <= 1
    def on_grid(d):  # d a whole number of steps alpha
      return np.abs(d / alpha - np.round(d / alpha)) < 1e-3
    # a pixel clipped to the box at some step carries that offset (bound - x) from then on
    assert np.all(on_grid(delta) | on_grid(delta - (1 - xe)) | on_grid(delta + xe))
    assert on_grid(delta).mean() > 0.5
    assert np.abs(delta).max() > 0.5 * eps              # it moved
    # FGSM: one step of epsilon, so every pixel moves by exactly epsilon unless clipped
    fd = np.abs(ex["fgsm_eval"] - xe)
    at_box = (ex["fgsm_eval"] <= 1e-6) | (ex["fgsm_eval"] >= 1 - 1e-6)
    assert np.all((np.abs(fd - eps) < 1e-5) | at_box | (fd < 1e-6))
    np.testing.assert_array_equal(ex["bi_test"], ex["bi_eval"][fixed["test_in_eval"]])
    assert ("deepfool_eval" in ex) == (e in (0, 3))


def test_curves_and_universal_against_the_models(smoke):
  """Figure 8 (eval draw), Figure 9 (test draw) and Figure 3 counted again with the models'
  own functions, and the cells' Wilson intervals against the closed form."""
  config, workdir, results = smoke
  data = _data(config)
  m = epochs.Models(config, workdir)
  fixed = epochs.inputs(config, data)
  xe, ye = fixed["eval"]
  xt, yt = fixed["test"]
  prof = profiles.load(workdir)
  assert list(prof["epochs"]) == [0, 1, 2, 3] and prof["P"].shape == (40, 4, 4)
  # P[:, t1, t2] is p(y | BI of epoch t1; model t2): one cell by hand
  logits = np.asarray(m(2)(jax.numpy.asarray(examples.load(workdir, 1)["bi_test"])), np.float64)
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  np.testing.assert_allclose(prof["P"][:, 1, 2], p[np.arange(len(yt)), yt], atol=1e-5)
  lc = results["learning"]["rates"]
  for e in (1, 3):
    ex = examples.load(workdir, e)
    clean_k = int((_predict(m(e), xe) == ye).sum())
    bi_right = _predict(m(e), ex["bi_eval"]) == ye
    assert (lc["test_accuracy"][e]["successes"], lc["test_accuracy"][e]["n"]) == (clean_k, 60)
    assert lc["bi_accuracy"][e]["successes"] == int(bi_right.sum())
    # Figure 9's white-box error is the same examples on the 40 nested test inputs
    resp = results["transfer"]["rates"]["test"]["respective"][e]
    assert (resp["successes"], resp["n"]) == (int((~bi_right[fixed["test_in_eval"]]).sum()), 40)
  # a Wilson interval by its closed form (z = 1.96)
  c = lc["test_accuracy"][3]
  k, n, z = c["successes"], c["n"], 1.959963984540054
  centre = (k + z * z / 2) / (n + z * z)
  half = z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
  assert (c["low"], c["high"]) == pytest.approx((centre - half, centre + half), abs=1e-9)
  u = results["universal"]
  xi = universal_stage.load(workdir, 2)["xi_train"]
  assert np.abs(xi).max() <= config.universal.epsilon + 1e-6
  right = _predict(m(2), np.clip(xe + xi, 0, 1)) == ye
  assert u["rates"]["train"][2]["successes"] == int(right.sum())
  xi0 = universal_stage.load(workdir, 0)["xi_train"]
  right0 = _predict(m(3), np.clip(xe + xi0, 0, 1)) == ye
  assert u["rates"]["fixed_0"][3]["successes"] == int(right0.sum())


def test_sharedness_destruction_and_detection(smoke):
  config, workdir, results = smoke
  sh = sharedness.load(workdir)
  corr = results["sharedness_vs_stability"]["pearson_loglog"]
  keep = (sh["current_train"] > 0) & (sh["future_test"] > 0)
  assert corr["n"] == int(keep.sum())
  if corr["n"] >= 3:
    ref = scipy.stats.pearsonr(np.log(sh["current_train"][keep]), np.log(sh["future_test"][keep]))
    assert corr["r"] == pytest.approx(ref.statistic, abs=1e-6)
    ci = corr["interval"]
    assert -1 <= ci["low"] <= ci["high"] <= 1 and ci["n"] == corr["n"]
  # one destruction cell counted by hand on the eval draw
  data = _data(config)
  xe, ye = epochs.inputs(config, data)["eval"]
  fn = epochs.Models(config, workdir)(3)
  adv = examples.load(workdir, 3)["fgsm_eval"]
  level = config.destruction.contrast[1]
  moved = np.clip(adv * level, 0, 1)             # Kurakin et al.'s contrast, by hand
  effective = (_predict(fn, xe) == ye) & (_predict(fn, adv) != ye)
  destroyed = effective & (_predict(fn, moved) == ye)
  cell = results["destruction"]["epochs"]["last"]["fgsm"]["rates"]["contrast"][1]
  assert (cell["destroyed"], cell["effective"]) == (int(destroyed.sum()), int(effective.sum()))
  assert (cell["interval"]["successes"], cell["interval"]["n"]) == (
      int(destroyed.sum()), int(effective.sum()))
  det = results["detection"]
  assert det["test_inputs"] == 60 and det["train_inputs"] == 50
  assert len(det["respective_rates"]) == 4 and set(det["fixed_rates"]) == {"0", "1", "last"}
  assert set(det["fgsm"]["fixed_rates"]) == {"0", "1", "last"}
  assert det["deepfool"]["epochs"] == [0, 3]
  for c in (det["respective_rates"] + det["fgsm"]["respective_rates"]
            + det["deepfool"]["respective_rates"]):
    # detectability: (TN + TP) of 2 x 60 decisions, the mean of the two rates
    assert c["n"] == 120
    assert c["rate"] == pytest.approx((c["true_negative_rate"] + c["true_positive_rate"]) / 2)
  assert all(0 <= p <= 1 for p in det["maximiser_probability"].values())


def _cells(node):
  """Every stats.proportion cell inside a results.json tree."""
  if isinstance(node, dict):
    if {"rate", "successes", "n", "low", "high"} <= set(node):
      yield node
    for v in node.values():
      yield from _cells(v)
  elif isinstance(node, list):
    for v in node:
      yield from _cells(v)


def test_report_figures_and_resume(smoke, caplog):
  config, workdir, results = smoke
  for f in ["report.md", "results.json"] + [f"figures/figure{i}.png" for i in range(1, 17)]:
    assert os.path.getsize(os.path.join(workdir, f)) > 0, f
  report = open(os.path.join(workdir, "report.md")).read()
  # every rate of results.json is a count with its interval around it
  cells = list(_cells(results))
  assert len(cells) > 100
  for c in cells:
    if c["n"]:
      assert c["rate"] == pytest.approx(c["successes"] / c["n"])
      assert c["low"] <= c["rate"] <= c["high"]
  verdicts = {stats.HOLDS, stats.CONTRADICTED, stats.INCONCLUSIVE, "-"}
  assert all(c["verdict"] in verdicts and c["test"] for c in results["claims"])
  # the learning table's first cell, counted from the natural model
  data = _data(config)
  xe, ye = epochs.inputs(config, data)["eval"]
  k = int((_predict(epochs.Models(config, workdir)(0), xe) == ye).sum())
  assert f"| 0 | {stats.format_rate(stats.proportion(k, 60))} |" in report
  assert "predicted labels" in report and "Figure 16" in report
  assert results["bi"]["labels"] == dict(attack="true", training_attack="predicted",
                                         training_loss="true")
  # a claim's verdict follows its interval: Pearson's r
  pearson = next(c for c in results["claims"] if c["claim"].startswith("sharedness vs"))
  if pearson["high"] is not None and pearson["high"] < 0:
    assert pearson["verdict"] == stats.HOLDS
  if pearson["low"] is not None and pearson["low"] > 0:
    assert pearson["verdict"] == stats.CONTRADICTED
  before = {s: io.read_json(os.path.join(workdir, "stages", f"{s}.json"))["seconds"]
            for s in pipeline.STAGES}
  with caplog.at_level("INFO"):
    again = pipeline.run(config, workdir)
  assert "running" not in caplog.text
  assert stages.without_timings(again) == stages.without_timings(results)
  after = {s: io.read_json(os.path.join(workdir, "stages", f"{s}.json"))["seconds"]
           for s in pipeline.STAGES}
  assert after == before


def test_every_stage_reads_only_the_sections_it_declares(smoke):
  import study_reads  # pylint: disable=g-import-not-at-top
  config, workdir, _ = smoke
  study_reads.assert_declared_reads(pipeline.STUDY, workdir, config)
