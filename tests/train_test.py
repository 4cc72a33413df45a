"""Tests of advbound/train.py: batching, resume after a kill, NaN handling, accuracy."""

import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ml_collections import config_dict

from advbound import data, models, train
from advbound.analysis import evaluate
from advbound.runtime import io
from configs import common

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_data(name="mnist", n=64, seed=0):
  info = data.INFO[name]
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (n,) + info.image_shape, dtype=np.uint8)
  return data._to_dataset(x, np.arange(n) % 10, info, "train")


def _params(model):
  return jax.tree.map(np.asarray, nnx.state(model))


def test_batch_indices_cover_each_epoch_once():
  n, bs = 50, 8
  epoch0 = np.concatenate([train.batch_indices(7, s, bs, n) for s in range(n // bs)])
  assert len(set(epoch0.tolist())) == len(epoch0) == 48
  np.testing.assert_array_equal(train.batch_indices(7, 3, bs, n), train.batch_indices(7, 3, bs, n))
  assert not np.array_equal(train.batch_indices(7, 6, bs, n), train.batch_indices(7, 0, bs, n))
  with pytest.raises(ValueError, match="batch_size 64 exceeds"):
    train.batch_indices(0, 0, 64, n)


class Killed(Exception):
  pass


def _kill_at(step):
  def hook(done):
    if done == step:
      raise Killed()
  return hook


@pytest.mark.parametrize("name,model_cfg,overrides", [
    ("mnist", dict(name="mnist_cnn"),
     dict(adversarial=True, attack=dict(epsilon=0.3, step_size=0.1, num_steps=2,
                                        epsilon_warmup_fraction=0.5))),
    ("cifar10", dict(name="small_cifar", width=4),
     dict(optimizer="sgd", schedule="piecewise", weight_decay=5e-4, augment="crop_flip")),
])
def test_resume_equals_uninterrupted(tmp_path, name, model_cfg, overrides):
  ds = _tiny_data(name)
  mcfg = config_dict.ConfigDict(model_cfg)
  tcfg = common.train(num_steps=9, batch_size=16, log_every=2, checkpoint_every=4,
                      learning_rate=0.01, **overrides)
  reference = train.train(ds, mcfg, tcfg, str(tmp_path / "ref"))
  with pytest.raises(Killed):
    train.train(ds, mcfg, tcfg, str(tmp_path / "run"), on_step=_kill_at(6))
  resumed = train.train(ds, mcfg, tcfg, str(tmp_path / "run"))
  jax.tree.map(np.testing.assert_array_equal, _params(reference), _params(resumed))
  # the run really trained: parameters moved away from the initialisation
  init = train.build_model(mcfg, tcfg.seed)
  assert not np.array_equal(nnx.state(init, nnx.Param)["head" if name == "cifar10" else "fc2"]
                            ["kernel"][...], nnx.state(resumed, nnx.Param)[
                                "head" if name == "cifar10" else "fc2"]["kernel"][...])
  loaded = train.load_model(mcfg, tcfg, str(tmp_path / "run"))
  jax.tree.map(np.testing.assert_array_equal, _params(reference), _params(loaded))


def test_settings_mismatch_and_unfinished(tmp_path):
  ds = _tiny_data()
  mcfg = config_dict.ConfigDict(dict(name="mnist_cnn"))
  tcfg = common.train(num_steps=4, batch_size=16, log_every=2, checkpoint_every=2)
  with pytest.raises(Killed):
    train.train(ds, mcfg, tcfg, str(tmp_path), on_step=_kill_at(3))
  with pytest.raises(ValueError, match="step 2, not 4"):
    train.load_model(mcfg, tcfg, str(tmp_path))
  other = common.train(num_steps=4, batch_size=16, log_every=2, checkpoint_every=2,
                       learning_rate=0.5)
  with pytest.raises(ValueError, match="other settings"):
    train.train(ds, mcfg, other, str(tmp_path))
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    train.load_model(mcfg, tcfg, str(tmp_path / "empty"))


def test_nan_loss_stops_with_clear_error(tmp_path):
  ds = _tiny_data()
  mcfg = config_dict.ConfigDict(dict(name="mnist_cnn"))
  tcfg = common.train(num_steps=6, batch_size=16, optimizer="sgd", learning_rate=1e30,
                      momentum=0.0, log_every=3, checkpoint_every=3)
  with pytest.raises(FloatingPointError, match="non-finite loss .* at step"):
    train.train(ds, mcfg, tcfg, str(tmp_path))
  # no checkpoint of a diverged state was written
  assert train._checkpoint_manager(str(tmp_path)).latest_step() is None


def test_bad_optimizer_settings():
  bad = common.train(optimizer="rmsprop")
  with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
    train.make_optimizer(bad)
  with pytest.raises(ValueError, match="unknown schedule 'linear'"):
    train.make_optimizer(common.train(schedule="linear"))
  with pytest.raises(ValueError, match="unknown augmentation 'mixup'"):
    train.augment(jax.random.key(0), np.zeros((1, 32, 32, 3)), "mixup")


def test_augment_keeps_shape_and_pixels():
  x = np.asarray(jax.random.uniform(jax.random.key(0), (8, 32, 32, 3), maxval=255))
  out = np.asarray(train.augment(jax.random.key(1), x, "crop_flip"))
  assert out.shape == x.shape
  assert out.min() >= x.min() and out.max() <= x.max()  # reflection padding adds no new values


_TINY_CONFIG = '''
from ml_collections import config_dict
from configs import common

def get_config():
  config = config_dict.ConfigDict()
  config.data = common.data("mnist", "embedded")
  config.model = config_dict.ConfigDict(dict(name="mnist_cnn"))
  config.models = config_dict.ConfigDict()
  config.models.natural = common.train(num_steps=40, batch_size=32, log_every=5,
                                       checkpoint_every=5)
  config.eval = common.evaluation(common.pgd(0.3, 0.1, 2), pgd_examples=20)
  return config
'''


def test_unknown_variant_is_an_error(tmp_path):
  from configs import quickstart
  with pytest.raises(ValueError, match=r"unknown model variant\(s\) \['robust'\]"):
    train.train_and_evaluate(quickstart.get_config(), str(tmp_path), variants=["robust"])


def _run(config, workdir, **kw):
  env = dict(os.environ, PYTHONPATH=REPO)
  return subprocess.Popen([sys.executable, "-m", "experiments.train", f"--config={config}",
                           f"--workdir={workdir}"], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def test_sigkill_then_resume_matches(tmp_path):
  """A real SIGKILL of the entry point mid-run; the rerun resumes and ends where an
  uninterrupted run ends."""
  config = tmp_path / "tiny.py"
  config.write_text(_TINY_CONFIG)
  killed_dir, ref_dir = tmp_path / "killed", tmp_path / "ref"
  proc = _run(config, killed_dir)
  ckpt = killed_dir / "models" / "natural" / "checkpoints"
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if ckpt.exists() and any(p.name.isdigit() and int(p.name) >= 10 for p in ckpt.iterdir()):
      break
    time.sleep(0.05)
  assert proc.poll() is None, "run ended before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (killed_dir / "models" / "natural" / "metrics.json").exists()
  out = _run(config, killed_dir).communicate(timeout=300)[0].decode()
  assert "resumed" in out, out[-2000:]
  metrics = io.read_json(str(killed_dir / "models" / "natural" / "metrics.json"))
  assert 0.5 < metrics["test_accuracy"] <= 1.0  # 40 steps already learn most digits
  assert 0.0 <= metrics["pgd_accuracy"] <= 1.0
  assert metrics["pgd_examples"] == 20 and metrics["test_examples"] == 1000
  ref = _run(config, ref_dir).communicate(timeout=300)[0].decode()
  assert "natural" in ref
  import importlib.util
  spec = importlib.util.spec_from_file_location("tiny", config)
  tiny = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(tiny)
  cfg = tiny.get_config()
  a = train.load_model(cfg.model, cfg.models.natural, str(killed_dir / "models" / "natural"))
  b = train.load_model(cfg.model, cfg.models.natural, str(ref_dir / "models" / "natural"))
  jax.tree.map(np.testing.assert_array_equal, _params(a), _params(b))


@pytest.mark.xdist_group(name="quickstart")  # shares the session-scoped trained model
def test_quickstart_natural_accuracy(quickstart_natural):
  """configs/quickstart.py's natural MnistCNN reaches >= 97% on the held-out MNIST-5k test split."""
  model, _, test = quickstart_natural
  acc = evaluate.accuracy(models.as_logits_fn(model), test.images, test.labels)
  print(f"quickstart natural test accuracy: {acc:.4f} on {len(test)} images")
  assert acc >= 0.97


def test_train_step_compiles_once():
  """The step is traced once; a batch of another shape is a recompile and fails loudly."""
  model = train.build_model(config_dict.ConfigDict(dict(name="mnist_cnn")), 0)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  cfg = common.train(num_steps=3, batch_size=4)
  tx = train.make_optimizer(cfg)
  state = train.TrainState(jnp.zeros((), jnp.int32), params, rest, tx.init(params))
  step = train.make_train_step(graphdef, tx, cfg, (0.0, 1.0))
  batch = {"image": jnp.zeros((4, 28, 28, 1)), "label": jnp.zeros(4, jnp.int32)}
  for i in range(3):
    state, metrics = step(state, batch, jax.random.key(i))
  assert int(state.step) == 3 and np.isfinite(float(metrics["loss"]))
  with pytest.raises(AssertionError, match="traced > 1 times"):
    step(state, {"image": jnp.zeros((2, 28, 28, 1)), "label": jnp.zeros(2, jnp.int32)},
         jax.random.key(0))


@pytest.mark.parametrize("model_cfg", [dict(name="wide_resnet", depth=8, width=1),
                                       dict(name="small_cifar", width=8)])
def test_cifar_models_fit_a_fixed_batch(model_cfg):
  """Gradients flow through residual units and batch norm: 30 Adam steps on one batch of 16
  random images drive the training loss well below its start."""
  model = train.build_model(config_dict.ConfigDict(model_cfg), 0)
  model.train()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  cfg = common.train(num_steps=30, batch_size=16, learning_rate=3e-3)
  tx = train.make_optimizer(cfg)
  state = train.TrainState(jnp.zeros((), jnp.int32), params, rest, tx.init(params))
  step = train.make_train_step(graphdef, tx, cfg, (0.0, 255.0))
  ds = _tiny_data("cifar10", n=16)
  batch = {"image": jnp.asarray(ds.images), "label": jnp.asarray(ds.labels)}
  losses = []
  for i in range(30):
    state, metrics = step(state, batch, jax.random.key(i))
    losses.append(float(metrics["loss"]))
  assert losses[-1] < 0.3 * losses[0], losses


def _cw_mnist_config(num_steps, **variants):
  """Embedded MNIST, the cw_mnist model, and the variants {name: extra train settings}, each
  `num_steps` steps of 16."""
  config = config_dict.ConfigDict()
  config.data = common.data("mnist", "embedded")
  config.model = config_dict.ConfigDict(dict(name="cw_mnist"))
  config.models = config_dict.ConfigDict()
  for name, extra in variants.items():
    config.models[name] = common.train(num_steps=num_steps, batch_size=16,
                                       log_every=num_steps // 2, checkpoint_every=num_steps,
                                       **extra)
  return config


def _distill_config(temperature=20.0):
  return _cw_mnist_config(6, teacher=dict(temperature=temperature),
                          distilled=dict(temperature=temperature, distill_from="teacher"))


def test_distillation_loss_is_cross_entropy_with_soft_labels_at_temperature():
  """One SGD step from the same weights: the gradient equals that of the hand-written
  cross-entropy of softmax(Z / T) with the soft labels (an independent computation)."""
  cfg = common.train(optimizer="sgd", momentum=0.0, learning_rate=1.0, temperature=5.0)
  model = models.build("cw_mnist", dropout=0.0, rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = train.make_optimizer(cfg)
  state = train.TrainState(jnp.zeros((), jnp.int32), params, rest, tx.init(params))
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 1, (8, 28, 28, 1)).astype(np.float32)
  soft = rng.dirichlet(np.ones(10), 8).astype(np.float32)
  batch = {"image": jnp.asarray(x), "label": jnp.zeros(8, jnp.int32), "soft": jnp.asarray(soft)}
  step = train.make_train_step(graphdef, tx, cfg, (0.0, 1.0))
  new, metrics = step(jax.tree.map(jnp.copy, state), batch, jax.random.key(0))

  def reference_loss(p):
    z = nnx.merge(graphdef, p, rest, copy=True)(jnp.asarray(x)) / 5.0
    return -jnp.mean(jnp.sum(jnp.asarray(soft) * jax.nn.log_softmax(z), -1))

  grads = jax.grad(reference_loss)(params)
  expected = jax.tree.map(lambda p, g: p - g, params, grads)  # sgd, lr 1, no momentum
  np.testing.assert_allclose(float(metrics["loss"]), float(reference_loss(params)), rtol=1e-5)
  for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_distilled_student_records_its_teacher_and_rejects_a_changed_one(tmp_path):
  config = _distill_config()
  train_data = data.load("mnist", source="embedded", split="train")
  student = train.train_variant(config, "distilled", train_data, str(tmp_path))
  assert os.path.exists(tmp_path / "models" / "teacher" / "checkpoints")  # trained first
  stored = io.read_json(str(tmp_path / "models" / "distilled" / "settings.json"))
  assert stored["upstream"]["distill_from"] == train.model_stamp(config, "teacher")
  assert "distill_from" in train.model_stamp(config, "distilled")
  assert student is not None
  config.models.teacher.learning_rate = 0.5  # another teacher: its student must not resume
  with pytest.raises(ValueError, match="other settings"):
    train.train(train_data, config.model, config.models.distilled,
                str(tmp_path / "models" / "distilled"),
                upstream={"distill_from": train.model_stamp(config, "teacher")})
  config.models.teacher.distill_from = "distilled"
  with pytest.raises(ValueError, match="cycle of variants"):
    train.train_variant(config, "distilled", train_data, str(tmp_path / "cycle"))


def test_adversarial_training_baseline_adds_deepfool_examples_of_its_source(tmp_path):
  from advbound.attacks import deepfool
  config = _cw_mnist_config(4, natural={}, deepfool_trained=dict(augment_from="natural"))
  tiny = _tiny_data(n=40)
  model = train.train_variant(config, "deepfool_trained", tiny, str(tmp_path))
  assert model is not None
  folder = tmp_path / "models" / "deepfool_trained"
  with np.load(folder / "deepfool_train.npz") as f:
    examples = f["x"]
  source = train.train_variant(config, "natural", tiny, str(tmp_path))  # loads it
  expected = deepfool(models.as_logits_fn(source), tiny.images, tiny.labels, bounds=tiny.bounds)
  np.testing.assert_allclose(examples, np.asarray(expected.adversarial), atol=1e-5)
  assert np.asarray(expected.success).any()
  stored = io.read_json(str(folder / "settings.json"))
  assert stored["data"]["n"] == 80  # the clean images and their DeepFool examples
  assert stored["upstream"]["augment_from"] == train.model_stamp(config, "natural")
  stamp = os.path.getmtime(folder / "deepfool_train.npz")
  train.train_variant(config, "deepfool_trained", tiny, str(tmp_path))  # resumes: no new examples
  assert os.path.getmtime(folder / "deepfool_train.npz") == stamp


def test_adversarial_training_baseline_on_the_first_m_images(tmp_path):
  from advbound.attacks import deepfool
  config = _cw_mnist_config(4, natural={}, partial=dict(augment_from="natural",
                                                        augment_examples=15))
  tiny = _tiny_data(n=40)
  train.train_variant(config, "partial", tiny, str(tmp_path))
  folder = tmp_path / "models" / "partial"
  with np.load(folder / "deepfool_train.npz") as f:
    examples = f["x"]
  source = train.train_variant(config, "natural", tiny, str(tmp_path))
  expected = deepfool(models.as_logits_fn(source), tiny.images[:15], tiny.labels[:15],
                      bounds=tiny.bounds)
  np.testing.assert_allclose(examples, np.asarray(expected.adversarial), atol=1e-5)
  stored = io.read_json(str(folder / "settings.json"))
  assert stored["data"]["n"] == 55  # 40 clean images and 15 DeepFool examples
  assert stored["upstream"]["augment_examples"] == 15


def test_snapshots_restore_the_model_of_their_step(tmp_path):
  """snapshot_every keeps parameters and batch statistics at step 0, every k steps and at the
  end; each restores equal to a run stopped at that step; a resumed run adds the rest."""
  ds = _tiny_data("cifar10")
  mcfg = config_dict.ConfigDict(dict(name="small_cifar", width=4))  # has batch statistics
  tcfg = common.train(num_steps=5, batch_size=16, log_every=5, checkpoint_every=2,
                      learning_rate=0.01, snapshot_every=2)
  with pytest.raises(Killed):
    train.train(ds, mcfg, tcfg, str(tmp_path / "run"), on_step=_kill_at(3))
  final = train.train(ds, mcfg, tcfg, str(tmp_path / "run"))
  assert train.snapshot_steps(str(tmp_path / "run")) == [0, 2, 4, 5]
  jax.tree.map(np.testing.assert_array_equal, _params(final),
               _params(train.load_snapshot(mcfg, tcfg, str(tmp_path / "run"), 5)))
  short = common.train(num_steps=4, batch_size=16, log_every=4, checkpoint_every=4,
                       learning_rate=0.01)  # constant schedule: the first 4 steps coincide
  at4 = train.train(ds, mcfg, short, str(tmp_path / "short"))
  jax.tree.map(np.testing.assert_array_equal, _params(at4),
               _params(train.load_snapshot(mcfg, tcfg, str(tmp_path / "run"), 4)))
  init = train.build_model(mcfg, tcfg.seed)
  jax.tree.map(np.testing.assert_array_equal, _params(init),
               _params(train.load_snapshot(mcfg, tcfg, str(tmp_path / "run"), 0)))
  with pytest.raises(ValueError, match="no snapshot of step 3"):
    train.load_snapshot(mcfg, tcfg, str(tmp_path / "run"), 3)
  assert train.snapshot_steps(str(tmp_path / "short")) == []


def test_attack_on_predicted_labels():
  """attack.labels = "predicted" attacks the model's own predictions: the same step as "true"
  when the labels are the predictions, another one when they are not."""
  model = train.build_model(config_dict.ConfigDict(dict(name="mnist_cnn")), 0)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  x = jax.random.uniform(jax.random.key(0), (8, 28, 28, 1))
  pred = jnp.argmax(models.as_logits_fn(model)(x), -1).astype(jnp.int32)
  out = {}
  for labels in ("true", "predicted"):
    cfg = common.train(num_steps=1, batch_size=8, adversarial=True,
                       attack=dict(epsilon=0.3, step_size=0.1, num_steps=3, random_start=False))
    cfg.attack.labels = labels
    tx = train.make_optimizer(cfg)
    step = train.make_train_step(graphdef, tx, cfg, (0.0, 1.0))
    for name, y in (("pred", pred), ("wrong", (pred + 1) % 10)):
      fresh = jax.tree.map(jnp.array, params)  # copies: the step donates its state
      state = train.TrainState(jnp.zeros((), jnp.int32), fresh, jax.tree.map(jnp.array, rest),
                               tx.init(fresh))
      new, _ = step(state, {"image": x, "label": y}, jax.random.key(1))
      out[labels, name] = jax.tree.map(np.asarray, new.params)
  jax.tree.map(np.testing.assert_array_equal, out["true", "pred"], out["predicted", "pred"])
  differ = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, b),
                                        out["true", "wrong"], out["predicted", "wrong"]))
  assert any(differ)


def _weights(model):  # the parameters (cw_mnist's dropout also keeps a PRNG key in its state)
  return jax.tree.map(np.asarray, nnx.state(model, nnx.Param))


def test_init_from_starts_where_the_source_variant_ended(tmp_path):
  """init_from: the variant's step-0 snapshot is its source's trained model (weights and batch
  statistics), the source is trained first, and its settings enter the variant's stamp."""
  config = _cw_mnist_config(4, natural=dict(),
                            adversarial=dict(init_from="natural", snapshot_every=2))
  train_data = data.load("mnist", source="embedded", split="train")
  tuned = train.train_variant(config, "adversarial", train_data, str(tmp_path))
  natural = train.load_model(config.model, config.models.natural,
                             str(tmp_path / "models" / "natural"))
  folder = str(tmp_path / "models" / "adversarial")
  assert train.snapshot_steps(folder) == [0, 2, 4]
  jax.tree.map(np.testing.assert_array_equal, _weights(natural),
               _weights(train.load_snapshot(config.model, config.models.adversarial, folder, 0)))
  assert any(not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(_weights(natural)), jax.tree.leaves(_weights(tuned))))
  assert train.model_stamp(config, "adversarial")["init_from"] == train.model_stamp(
      config, "natural")
  stored = io.read_json(os.path.join(folder, "settings.json"))
  assert stored["upstream"]["init_from"] == train.model_stamp(config, "natural")
