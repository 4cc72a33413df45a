"""The fast-training features (issue 17): mixed precision, the cyclic schedule, cutout, label
smoothing, the catastrophic-overfitting guard, per-variant architectures, and the
configs/cifar_fast.py recipes run end to end at a tiny size."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ml_collections import config_dict

from advbound import data, models, training
from advbound.attacks.pgd import pgd
from advbound.studies import variants as variants_lib
from advbound.training import guard
from configs import cifar_fast, common

MNIST_CNN = config_dict.ConfigDict(dict(name="mnist_cnn"))


@pytest.fixture(scope="module")
def mnist():
  ds = data.load("mnist", source="embedded", split="train")
  return dataclasses.replace(ds, images=ds.images[:512], labels=ds.labels[:512])


def _params(model):
  return jax.tree.leaves(nnx.state(model, nnx.Param))


@pytest.mark.parametrize("name,kwargs", [("resnet9", dict(width=4)),
                                         ("wide_resnet", dict(depth=8, width=1))])
def test_bfloat16_compute_keeps_float32_parameters(name, kwargs):
  model = models.build(name, rngs=nnx.Rngs(0), **kwargs)
  x = jax.random.uniform(jax.random.key(1), (2, 16, 16, 3)) * 255.0
  low = models.with_compute_dtype(model, "bfloat16")
  # the copy computes in bfloat16: its raw output is bfloat16; the caller's model is untouched
  out = lambda m: jax.eval_shape(lambda: nnx.merge(*nnx.split(m), copy=True)(x))
  assert out(low).dtype == jnp.bfloat16 and out(model).dtype == jnp.float32
  assert all(p.dtype == jnp.float32 for p in _params(low))
  assert models.with_compute_dtype(model, "float32") is model
  apply = jax.jit(lambda fn, z: fn(z))
  f32 = apply(models.as_logits_fn(model), x)
  b16 = apply(models.as_logits_fn(model, "bfloat16"), x)
  assert b16.dtype == jnp.float32
  # bfloat16 keeps 8 bits of mantissa: close to float32, but not equal (it is really used)
  err = float(jnp.max(jnp.abs(f32 - b16)))
  assert 0.0 < err < 0.05 * float(jnp.max(jnp.abs(f32))) + 1e-3
  with pytest.raises(ValueError, match="float16"):
    models.with_compute_dtype(model, "float16")


def test_resnet9_has_pages_parameter_count():
  # convs 3x3 (no bias): 3-64, 64-128, 2 x 128-128, 128-256, 256-512, 2 x 512-512; BN scale and
  # offset per channel; dense 512-10 without bias
  convs = [(3, 64), (64, 128), (128, 128), (128, 128), (128, 256), (256, 512), (512, 512),
           (512, 512)]
  expected = sum(9 * i * o + 2 * o for i, o in convs) + 512 * 10
  model = nnx.eval_shape(lambda: models.build("resnet9", rngs=nnx.Rngs(0)))
  assert sum(p.size for p in _params(model)) == expected == 6_573_120
  small = models.build("resnet9", width=2, rngs=nnx.Rngs(0))
  small.eval()
  assert jax.eval_shape(small.embed, jnp.zeros((2, 16, 16, 3))).shape == (2, 16)
  assert jax.eval_shape(small, jnp.zeros((2, 16, 16, 3))).shape == (2, 10)


def test_bfloat16_training_tracks_float32(mnist, tmp_path):
  cfg = common.train(num_steps=6, batch_size=32, optimizer="sgd", learning_rate=0.05,
                     log_every=3, checkpoint_every=6)
  f32 = training.train(mnist, MNIST_CNN, cfg, str(tmp_path / "f32"))
  cfg.compute_dtype = "bfloat16"
  b16 = training.train(mnist, MNIST_CNN, cfg, str(tmp_path / "b16"))
  a, b = _params(f32), _params(b16)
  assert all(p.dtype == jnp.float32 for p in b)
  init = _params(training.build_model(MNIST_CNN, 0))
  norm = lambda tree: float(jnp.sqrt(sum(jnp.sum(t ** 2) for t in tree)))
  diff = norm([p - q for p, q in zip(a, b)])
  moved = norm([p - q for p, q in zip(a, init)])
  # SGD steps follow the gradients, which bfloat16 gets right to about 1%: the two runs differ,
  # by a small fraction of how far training moved the weights
  assert 0.0 < diff < 0.1 * moved, (diff, moved)
  # the returned model computes in float32 (attacks on it are float32 by default)
  assert all(getattr(m, "dtype", None) in (None, jnp.float32) for _, m in nnx.iter_modules(b16))


def test_cyclic_schedule_is_a_triangle():
  cfg = common.train(num_steps=100, learning_rate=0.4, schedule="cyclic", warmup_fraction=0.2)
  lr = training.make_schedule(cfg)
  assert float(lr(0)) == 0.0
  np.testing.assert_allclose(float(lr(10)), 0.2, rtol=1e-6)
  np.testing.assert_allclose(float(lr(20)), 0.4, rtol=1e-6)
  np.testing.assert_allclose(float(lr(60)), 0.2, rtol=1e-6)
  np.testing.assert_allclose(float(lr(100)), 0.0, atol=1e-7)
  values = np.array([float(lr(s)) for s in range(101)])
  assert np.all(np.diff(values[:21]) > 0) and np.all(np.diff(values[20:]) < 0)


def test_cutout_sets_one_square_per_image_to_its_mean():
  x = jax.random.uniform(jax.random.key(0), (64, 32, 32, 3), minval=1.0, maxval=255.0)
  out = np.asarray(training.augment(jax.random.key(3), x, "none", cutout=8))
  x = np.asarray(x)
  assert np.array_equal(np.asarray(training.augment(jax.random.key(3), x, "none")), x)
  sizes = []
  for img, new in zip(x, out):
    changed = np.any(new != img, axis=-1)
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    # a rectangle (the square clipped at the edges) of at most 8 x 8, filled with the mean
    assert changed.sum() == len(rows) * len(cols) and len(rows) <= 8 and len(cols) <= 8
    assert np.all(rows == np.arange(rows[0], rows[0] + len(rows)))
    np.testing.assert_allclose(new[changed], img.mean(), rtol=1e-5)
    sizes.append(changed.sum())
  assert max(sizes) == 64 and min(sizes) < 64  # centres near an edge are clipped


def test_label_smoothing_loss_matches_the_formula(mnist):
  cfg = common.train(batch_size=16, learning_rate=1e-3)
  cfg.label_smoothing = 0.2
  model = training.build_model(MNIST_CNN, 0)
  model.train()
  graphdef = nnx.graphdef(model)
  tx = training.make_optimizer(cfg)
  state = training.init_state(model, tx)
  params, rest = state.params, state.rest
  batch = {"image": jnp.asarray(mnist.images[:16]), "label": jnp.asarray(mnist.labels[:16])}
  # the loss is taken before the update, on the batch statistics of this batch (train mode)
  logits = nnx.merge(graphdef, params, rest, copy=True)(batch["image"])
  logp = np.asarray(jax.nn.log_softmax(logits))
  y = mnist.labels[:16]
  expected = np.mean(-0.8 * logp[np.arange(16), y] - 0.2 / 10 * logp.sum(1))
  step = training.make_train_step(graphdef, tx, cfg, mnist.bounds)
  _, metrics = step(state, batch, jax.random.key(0))
  np.testing.assert_allclose(float(metrics["loss"]), expected, rtol=1e-5)


def _guarded(num_steps=8, every=2):
  cfg = common.train(num_steps=num_steps, batch_size=32, learning_rate=1e-3, log_every=2,
                     checkpoint_every=3, adversarial=True,
                     attack=dict(epsilon=0.3, step_size=0.375, num_steps=1))
  cfg.guard = config_dict.ConfigDict(dict(every=every, examples=48, max_drop=0.2, seed=0,
                                          pgd=common.pgd(0.3, 0.1, 3)))
  return cfg


def test_guard_measures_pgd_accuracy_of_the_eval_model(mnist, tmp_path):
  cfg = _guarded(num_steps=4)
  model = training.train(mnist, MNIST_CNN, cfg, str(tmp_path / "run"))
  record = guard.read_record(str(tmp_path / "run"))
  assert [h["step"] for h in record["history"]] == [2, 4] and record["stopped_at"] is None
  # recomputed through the public path: eval-mode logits_fn, the same images, key and PGD
  rng = np.random.default_rng([0, 7])
  idx = np.sort(rng.choice(len(mnist), 48, replace=False))
  fn = models.as_logits_fn(model)
  x, y = mnist.images[idx], mnist.labels[idx]
  adv = pgd(fn, jax.random.key(0), x, y, epsilon=0.3, step_size=0.1, num_steps=3,
            bounds=mnist.bounds, random_start=True)
  robust = float(np.mean(np.argmax(fn(adv), -1) == y))
  clean = float(np.mean(np.argmax(fn(x), -1) == y))
  assert record["history"][-1]["pgd_accuracy"] == pytest.approx(robust, abs=1e-6)
  assert record["history"][-1]["clean_accuracy"] == pytest.approx(clean, abs=1e-6)


def test_guard_stops_at_a_collapse_and_keeps_the_last_passing_state(mnist, tmp_path,
                                                                    monkeypatch):
  # Scripted PGD accuracies: 0.5 at step 2, 0.6 at step 4, then a collapse to 0.1 at step 6.
  script = iter([0.5, 0.6, 0.1])
  monkeypatch.setattr(guard.Guard, "measure", lambda self, state: (0.9, next(script)))
  cfg = _guarded()
  run = str(tmp_path / "run")
  stopped = training.train(mnist, MNIST_CNN, cfg, run)
  record = guard.read_record(run)
  assert record["stopped_at"] == 6 and record["kept_step"] == 4
  assert [h["pgd_accuracy"] for h in record["history"]] == [0.5, 0.6, 0.1]
  # the kept state is the uninterrupted run's state after 4 steps (same data, same keys)
  short = _guarded(num_steps=4)
  monkeypatch.setattr(guard.Guard, "measure", lambda self, state: (0.9, 0.5))
  at4 = training.train(mnist, MNIST_CNN, short, str(tmp_path / "short"))
  for p, q in zip(_params(stopped), _params(at4)):
    np.testing.assert_array_equal(np.asarray(p), np.asarray(q))
  # loading and re-running the stopped run give the kept model, without training again
  monkeypatch.setattr(guard.Guard, "measure", lambda self, state: pytest.fail("retrained"))
  for again in (training.load_model(MNIST_CNN, cfg, run),
                training.train(mnist, MNIST_CNN, cfg, run)):
    for p, q in zip(_params(again), _params(at4)):
      np.testing.assert_array_equal(np.asarray(p), np.asarray(q))


def test_guard_resumes_with_its_history(mnist, tmp_path, monkeypatch):
  values = {2: 0.5, 4: 0.6, 6: 0.45, 8: 0.3}  # PGD accuracy by step
  monkeypatch.setattr(guard.Guard, "measure",
                      lambda self, state: (0.9, values[int(state.step)]))
  cfg = _guarded()
  run = str(tmp_path / "run")

  def kill_at(n):
    def on_step(step):
      if step == n:
        raise KeyboardInterrupt
    return on_step

  with pytest.raises(KeyboardInterrupt):
    training.train(mnist, MNIST_CNN, cfg, run, on_step=kill_at(5))
  # a check after the last checkpoint (step 3) is dropped on resume and recomputed
  training.train(mnist, MNIST_CNN, cfg, run)
  record = guard.read_record(run)
  assert [h["step"] for h in record["history"]] == [2, 4, 6, 8]
  # best 0.6 from before the kill: 0.3 at step 8 is a drop of 0.3 > 0.2, so the run stopped
  assert record["stopped_at"] == 8 and record["kept_step"] == 6


def test_variants_may_have_their_own_architecture(mnist, tmp_path):
  config = config_dict.ConfigDict()
  config.data = common.data("mnist", "embedded")
  config.model = MNIST_CNN
  config.models = config_dict.ConfigDict()
  config.models.natural = common.train(num_steps=2, batch_size=16, log_every=2,
                                       checkpoint_every=2)
  config.models.small = common.train(num_steps=2, batch_size=16, log_every=2,
                                     checkpoint_every=2)
  config.models.small.model = config_dict.ConfigDict(dict(name="cw_mnist"))
  big = variants_lib.train_variant(config, "natural", mnist, str(tmp_path))
  small = variants_lib.train_variant(config, "small", mnist, str(tmp_path))
  assert type(big).__name__ == "MnistCNN" and type(small).__name__ == "CarliniWagnerMnist"
  assert variants_lib.model_stamp(config, "small")["model"]["name"] == "cw_mnist"
  loaded = training.load_model(variants_lib.variant_model(config, "small"), config.models.small,
                               str(tmp_path / "models" / "small"))
  for p, q in zip(_params(loaded), _params(small)):
    np.testing.assert_array_equal(np.asarray(p), np.asarray(q))


def test_cifar_fast_recipes_run_at_a_tiny_size(tmp_path):
  """Both recipes of configs/cifar_fast.py, shrunk (narrow models, a few steps), through
  train_and_evaluate on a synthetic CIFAR-shaped pool: bfloat16 training, cutout, label
  smoothing, FGSM with random start and the guard all run; the metrics are recorded."""
  rng = np.random.default_rng(0)
  path = str(tmp_path / "pool.npz")
  np.savez(path, x=rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8),
           y=np.arange(200) % 10)
  config = cifar_fast.get_config()
  config.data.source, config.data.path = "npz", path
  config.model.width, config.model.blocks = 4, (1, 1)
  config.models.natural.model.width = 4
  for v in ("natural", "adversarial"):
    cfg = config.models[v]
    cfg.num_steps, cfg.batch_size, cfg.log_every, cfg.checkpoint_every = 4, 16, 2, 2
  config.models.adversarial.guard.every = 2
  config.models.adversarial.guard.examples = 16
  config.eval.pgd_examples, config.eval.pgd.num_steps = 8, 2
  config.eval.autoattack.examples = 4  # the config's AutoAttack, on 4 of the 40 test images
  from advbound.studies.decision_boundary import settings
  config = config_dict.ConfigDict({k: config[k] for k in ("data", "model", "models", "eval")})
  settings.validate(config, required=("data", "model", "models", "eval"))
  results = variants_lib.train_and_evaluate(config, str(tmp_path / "run"))
  assert set(results) == {"natural", "adversarial"}
  for m in results.values():
    assert 0.0 <= m["pgd_accuracy"] <= m["subset_accuracy"] + 1e-9 <= 1.0 + 1e-9
    assert m["autoattack"]["n"] == 4 and m["autoattack"]["order"][-1] == "square"
  assert results["adversarial"]["guard"]["checks"] == 2
  assert "guard" not in results["natural"]
  natural = training.load_model(variants_lib.variant_model(config, "natural"),
                                config.models.natural,
                                str(tmp_path / "run" / "models" / "natural"))
  assert type(natural).__name__ == "ResNet9"
  assert os.path.exists(str(tmp_path / "run" / "models" / "adversarial" / "guard.json"))


@pytest.mark.parametrize("path,value,expected", [
    ("models.natural.compute_dtype", "float16",
     "models.natural.compute_dtype: must be one of ('float32', 'bfloat16'), got 'float16'"),
    ("models.natural.label_smoothing", 1.0, "models.natural.label_smoothing: must be < 1"),
    ("models.natural.cutout", -8, "models.natural.cutout: must be >= 0"),
    ("models.natural.schedule", "triangle", "models.natural.schedule: must be one of"),
    ("models.natural.model.width", 0, "ResNet9 width must be >= 1"),
    ("models.adversarial.guard.examples", 0, "models.adversarial.guard.examples: must be >= 1"),
    ("models.adversarial.guard.max_drop", 1.5, "models.adversarial.guard.max_drop: must be <= 1"),
    ("models.adversarial.guard.pgd.epsilon", 300.0, "guard.pgd.epsilon: must be <= 255"),
    ("models.adversarial.init_from", "natural", "'natural' has another architecture"),
    ("eval.compute_dtype", "half", "eval.compute_dtype: must be one of"),
])
def test_bad_fast_settings_are_named(path, value, expected):
  from advbound.studies.decision_boundary import settings
  config = cifar_fast.get_config()
  *parents, leaf = path.split(".")
  node = config
  for p in parents:
    node = node[p]
  with node.unlocked():
    node[leaf] = value
  with pytest.raises(settings.ConfigError) as e:
    settings.validate(config, sizes={"train": 45000, "validation": 5000, "test": 10000})
  assert any(expected in p for p in e.value.problems), e.value.problems


def test_blind_spot_cifar_fast_models():
  from advbound.studies.blind_spot import settings
  from configs import blind_spot_cifar
  config = blind_spot_cifar.get_config("fast")
  settings.validate(config, sizes={"train": 45000, "validation": 5000, "test": 10000})
  assert variants_lib.variant_model(config, "natural").name == "resnet9"
  assert config.models.adversarial.attack.epsilon == config.study.epsilon
  with pytest.raises(ValueError, match="'wrn'"):
    blind_spot_cifar.get_config("wrn")
