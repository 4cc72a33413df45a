"""The training-dynamics study (advbound.studies.training_dynamics) and the pieces it adds: the
log-log Pearson r against scipy, transfer rates and destruction rates against direct
computation, the two new models, the config checks, and one tiny end-to-end run checked
against the epochs' models and its own stored artifacts, then resumed."""

import os

import chex
import jax
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from advbound import evaluate, io, models, stability, stages, train, transforms
from advbound.attacks.pgd import pgd
from advbound.attacks.universal import accuracy_under
from advbound.config_check import ConfigError
from advbound.studies.training_dynamics import (epochs, examples, pipeline, profiles,
                                                settings, sharedness)
from advbound.studies.training_dynamics import universal as universal_stage
from configs import training_dynamics, training_dynamics_quickstart, training_dynamics_smoke


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
  ref = stats.pearsonr(np.log(a[keep]), np.log(b[keep]))
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
  assert 0 < eff.sum() < 60
  assert transforms.destruction_rate(fn, x, x_adv, y, moved, effective=eff) == \
      transforms.destruction_rate(fn, x, x_adv, y, moved)
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


# --- the config checks ---------------------------------------------------------------------

_SIZES = dict(train=3500, validation=500, test=1000)


@pytest.mark.parametrize("path,value,expected", [
    ("models.adversarial.snapshot_every", None, "must be the steps of one epoch"),
    ("models.adversarial.num_steps", 100, "whole number of epochs"),
    ("models.adversarial.init_from", None, "must name the naturally trained variant"),
    ("study.epochs", (1, 2), "must include epoch 0"),
    ("universal.fixed_epochs", (0, 12), "beyond the last one (8)"),
    ("universal.sources", ("test",), "universal.sources"),
    ("detect.features", (16, 32), "three convolution widths"),
    ("sharedness.ratio_perturbations", 300, "sharedness.ratio_inputs - 1"),
    ("destruction.noise", (0.1, -0.1), "levels must be > 0"),
    ("study.test_images", 5000, "at most 1000 (the test split)"),
])
def test_bad_settings_are_named(path, value, expected):
  config = training_dynamics_quickstart.get_config()
  section, key = path.rsplit(".", 1)
  node = config
  for part in section.split("."):
    node = node[part]
  with node.ignore_type():
    node[key] = value
  with pytest.raises(ConfigError) as e:
    settings.validate(config, sizes=_SIZES)
  assert any(expected in p for p in e.value.problems), e.value.problems


def test_epochs_outside_the_measured_ones_are_named():
  config = training_dynamics_quickstart.get_config()
  config.study.epochs = (0, 1, 2, -1)
  with pytest.raises(ConfigError) as e:
    settings.validate(config, sizes=_SIZES)
  assert any(p.startswith("destruction.epochs: names epochs [4]") for p in e.value.problems)


def test_configs_validate_and_variant_argument():
  settings.validate(training_dynamics_quickstart.get_config(), sizes=_SIZES)
  settings.validate(training_dynamics_quickstart.get_config("fashion_mnist"),
                    sizes=dict(train=55000, validation=5000, test=10000))
  for variant in training_dynamics.VARIANTS:
    n = 50000 if variant == "fashion_mnist" else 45000
    settings.validate(training_dynamics.get_config(variant),
                      sizes=dict(train=n, validation=5000, test=10000))
  c = training_dynamics.get_config()
  assert epochs.count(c) == 250 and c.models.adversarial.attack.labels == "predicted"
  assert c.universal.iterations == 200 and c.detect.features == (96, 192, 192)
  with pytest.raises(ValueError, match="'gtsrb'"):
    training_dynamics.get_config("gtsrb")


# --- one tiny run, end to end --------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("training_dynamics"))
  config = training_dynamics_smoke.get_config()
  return config, workdir, pipeline.run(config, workdir)


def test_epoch_models_and_examples(smoke):
  """Epoch 0 is the natural model; every epoch's snapshot is the adversarial variant's;
  the stored BI examples are BI against that epoch's model, inside the box and the ball."""
  config, workdir, results = smoke
  data = dict(zip(("train", "test"), train.load_splits(config.data, ("train", "test"))))
  m = epochs.Models(config, workdir)
  natural = models.as_logits_fn(train.load_model(config.model, config.models.natural,
                                                 os.path.join(workdir, "models", "natural")))
  xt, yt = epochs.inputs(config, data)["test"]
  np.testing.assert_allclose(evaluate.logits(m(0), xt), evaluate.logits(natural, xt),
                             atol=1e-5)
  last = models.as_logits_fn(train.load_model(config.model, config.models.adversarial,
                                              os.path.join(workdir, "models", "adversarial")))
  np.testing.assert_allclose(evaluate.logits(m(3), xt), evaluate.logits(last, xt), atol=1e-5)
  assert len(np.unique(yt)) >= 5     # a seeded draw, not the first (class-sorted) images
  for e in results["measured_epochs"]:
    ex = examples.load(workdir, e)
    assert np.abs(ex["bi_test"] - xt).max() <= config.study.epsilon + 1e-6
    assert ex["bi_test"].min() >= 0 and ex["bi_test"].max() <= 1
    assert ("deepfool_test" in ex) == (e in (0, 3))
  again = pgd(m(2), jax.random.key(0), xt, yt, epsilon=config.study.epsilon,
              step_size=config.study.step_size, num_steps=config.study.num_steps,
              bounds=(0, 1), random_start=False)
  np.testing.assert_allclose(examples.load(workdir, 2)["bi_test"], again, atol=1e-6)


def test_profiles_curves_and_universal_recomputed(smoke):
  config, workdir, results = smoke
  data = dict(zip(("train", "test"), train.load_splits(config.data, ("train", "test"))))
  m = epochs.Models(config, workdir)
  xt, yt = epochs.inputs(config, data)["test"]
  prof = profiles.load(workdir)
  ep = list(prof["epochs"])
  assert ep == [0, 1, 2, 3] and prof["P"].shape == (40, 4, 4)
  # P[:, t1, t2] is p(y | BI of epoch t1; model t2), recomputed for one cell
  np.testing.assert_allclose(
      prof["P"][:, 1, 2],
      stability.true_class_probability(m(2), examples.load(workdir, 1)["bi_test"], yt),
      atol=1e-5)
  assert np.all(prof["maxmin"] >= prof["minmax"])
  lc = results["learning"]
  assert lc["test_accuracy"][1] == pytest.approx(evaluate.accuracy(m(1), xt, yt))
  assert lc["bi_accuracy"] == pytest.approx([1 - v for v in
                                             results["transfer"]["test"]["respective"]])
  u = results["universal"]
  xi = universal_stage.load(workdir, 2)["xi_train"]
  assert np.abs(xi).max() <= config.universal.epsilon + 1e-6
  assert u["accuracy"]["train"][2] == pytest.approx(
      accuracy_under(m(2), xi, xt, yt, bounds=(0, 1)))
  # the fixed epoch 0's perturbation evaluated under epoch 3's model
  xi0 = universal_stage.load(workdir, 0)["xi_train"]
  assert u["accuracy"]["fixed_0"][3] == pytest.approx(
      accuracy_under(m(3), xi0, xt, yt, bounds=(0, 1)))


def test_sharedness_destruction_and_detection(smoke):
  config, workdir, results = smoke
  sh = sharedness.load(workdir)
  corr = results["sharedness_vs_stability"]["pearson_loglog"]
  keep = (sh["current_train"] > 0) & (sh["future_test"] > 0)
  assert corr["n"] == int(keep.sum())
  if corr["n"] >= 3:
    ref = stats.pearsonr(np.log(sh["current_train"][keep]), np.log(sh["future_test"][keep]))
    assert corr["r"] == pytest.approx(ref.statistic, abs=1e-6)
  ratio = results["sharedness_ratio"]["epochs"]
  assert set(ratio) == {"0", "last"}
  assert ratio["0"]["mean"] == pytest.approx(float(np.nanmean(sh["ratio_0"])))
  # one destruction cell recomputed without the precomputed effective set
  data = dict(zip(("train", "test"), train.load_splits(config.data, ("train", "test"))))
  xt, yt = epochs.inputs(config, data)["test"]
  fn = epochs.Models(config, workdir)(3)
  adv = examples.load(workdir, 3)["fgsm_test"]
  moved = np.asarray(transforms.apply("contrast", adv, config.destruction.contrast[1],
                                      bounds=(0, 1)))
  cell = results["destruction"]["epochs"]["last"]["fgsm"]["rates"]["contrast"][1]
  assert cell == transforms.destruction_rate(fn, xt, adv, yt, moved)
  det = results["detection"]
  assert len(det["respective"]) == 4 and set(det["fixed"]) == {"0", "1", "last"}
  assert all(0 <= v <= 1 for v in det["respective"])
  assert det["fixed"]["1"][1] == det["respective"][1]   # the same detector on its own epoch
  assert all(0 <= p <= 1 for p in det["maximiser_probability"].values())


def test_report_figures_and_resume(smoke, caplog):
  config, workdir, results = smoke
  for f in ["report.md", "results.json"] + [f"figures/figure{i}.png" for i in range(1, 16)]:
    assert os.path.getsize(os.path.join(workdir, f)) > 0, f
  report = open(os.path.join(workdir, "report.md")).read()
  assert "| sharedness vs stability: Pearson r (log-log) is negative | -0.293 |" in report
  claims = {c["claim"]: c for c in results["claims"]}
  first = next(c for c in results["claims"] if c["claim"].startswith(
      "universal perturbation (train data), accuracy at epoch 0"))
  assert first["ours"] == results["universal"]["accuracy"]["train"][0]
  assert first["paper"] == 0.12
  r = results["sharedness_vs_stability"]["pearson_loglog"]["r"]
  assert claims["sharedness vs stability: Pearson r (log-log) is negative"]["holds"] == (
      None if r is None else r < 0)
  before = {s: io.read_json(os.path.join(workdir, "stages", f"{s}.json"))["seconds"]
            for s in pipeline.STAGES}
  with caplog.at_level("INFO"):
    again = pipeline.run(config, workdir)
  assert "running" not in caplog.text
  assert stages.without_timings(again) == stages.without_timings(results)
  after = {s: io.read_json(os.path.join(workdir, "stages", f"{s}.json"))["seconds"]
           for s in pipeline.STAGES}
  assert after == before
