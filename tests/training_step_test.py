"""Tests of advbound/training/step.py and the pieces of a step (optimizers.py,
augmentation.py): bad settings named, augmentation, one compilation, fitting a batch,
distillation's loss, the attack on predicted labels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ml_collections import config_dict

from advbound import models, training
from configs import common
from tiny_training import tiny_data as _tiny_data  # tests/tiny_training.py


def test_bad_optimizer_settings():
  bad = common.train(optimizer="rmsprop")
  with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
    training.make_optimizer(bad)
  with pytest.raises(ValueError, match="unknown schedule 'linear'"):
    training.make_optimizer(common.train(schedule="linear"))
  with pytest.raises(ValueError, match="unknown augmentation 'mixup'"):
    training.augment(jax.random.key(0), np.zeros((1, 32, 32, 3)), "mixup")


def test_augment_keeps_shape_and_pixels():
  x = np.asarray(jax.random.uniform(jax.random.key(0), (8, 32, 32, 3), maxval=255))
  out = np.asarray(training.augment(jax.random.key(1), x, "crop_flip"))
  assert out.shape == x.shape
  assert out.min() >= x.min() and out.max() <= x.max()  # reflection padding adds no new values


def test_train_step_compiles_once():
  """The step is traced once; a batch of another shape is a recompile and fails loudly."""
  model = training.build_model(config_dict.ConfigDict(dict(name="mnist_cnn")), 0)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  cfg = common.train(num_steps=3, batch_size=4)
  tx = training.make_optimizer(cfg)
  state = training.TrainState(jnp.zeros((), jnp.int32), params, rest, tx.init(params))
  step = training.make_train_step(graphdef, tx, cfg, (0.0, 1.0))
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
  model = training.build_model(config_dict.ConfigDict(model_cfg), 0)
  model.train()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  cfg = common.train(num_steps=30, batch_size=16, learning_rate=3e-3)
  tx = training.make_optimizer(cfg)
  state = training.TrainState(jnp.zeros((), jnp.int32), params, rest, tx.init(params))
  step = training.make_train_step(graphdef, tx, cfg, (0.0, 255.0))
  ds = _tiny_data("cifar10", n=16)
  batch = {"image": jnp.asarray(ds.images), "label": jnp.asarray(ds.labels)}
  losses = []
  for i in range(30):
    state, metrics = step(state, batch, jax.random.key(i))
    losses.append(float(metrics["loss"]))
  assert losses[-1] < 0.3 * losses[0], losses


def test_distillation_loss_is_cross_entropy_with_soft_labels_at_temperature():
  """One SGD step from the same weights: the gradient equals that of the hand-written
  cross-entropy of softmax(Z / T) with the soft labels (an independent computation)."""
  cfg = common.train(optimizer="sgd", momentum=0.0, learning_rate=1.0, temperature=5.0)
  model = models.build("cw_mnist", dropout=0.0, rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = training.make_optimizer(cfg)
  state = training.TrainState(jnp.zeros((), jnp.int32), params, rest, tx.init(params))
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 1, (8, 28, 28, 1)).astype(np.float32)
  soft = rng.dirichlet(np.ones(10), 8).astype(np.float32)
  batch = {"image": jnp.asarray(x), "label": jnp.zeros(8, jnp.int32), "soft": jnp.asarray(soft)}
  step = training.make_train_step(graphdef, tx, cfg, (0.0, 1.0))
  new, metrics = step(jax.tree.map(jnp.copy, state), batch, jax.random.key(0))

  def reference_loss(p):
    z = nnx.merge(graphdef, p, rest, copy=True)(jnp.asarray(x)) / 5.0
    return -jnp.mean(jnp.sum(jnp.asarray(soft) * jax.nn.log_softmax(z), -1))

  grads = jax.grad(reference_loss)(params)
  expected = jax.tree.map(lambda p, g: p - g, params, grads)  # sgd, lr 1, no momentum
  np.testing.assert_allclose(float(metrics["loss"]), float(reference_loss(params)), rtol=1e-5)
  for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_attack_on_predicted_labels():
  """attack.labels = "predicted" attacks the model's own predictions: the same step as "true"
  when the labels are the predictions, another one when they are not."""
  model = training.build_model(config_dict.ConfigDict(dict(name="mnist_cnn")), 0)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  x = jax.random.uniform(jax.random.key(0), (8, 28, 28, 1))
  pred = jnp.argmax(models.as_logits_fn(model)(x), -1).astype(jnp.int32)
  out = {}
  for labels in ("true", "predicted"):
    cfg = common.train(num_steps=1, batch_size=8, adversarial=True,
                       attack=dict(epsilon=0.3, step_size=0.1, num_steps=3, random_start=False))
    cfg.attack.labels = labels
    tx = training.make_optimizer(cfg)
    step = training.make_train_step(graphdef, tx, cfg, (0.0, 1.0))
    for name, y in (("pred", pred), ("wrong", (pred + 1) % 10)):
      fresh = jax.tree.map(jnp.array, params)  # copies: the step donates its state
      state = training.TrainState(jnp.zeros((), jnp.int32), fresh, jax.tree.map(jnp.array, rest),
                                  tx.init(fresh))
      new, _ = step(state, {"image": x, "label": y}, jax.random.key(1))
      out[labels, name] = jax.tree.map(np.asarray, new.params)
  jax.tree.map(np.testing.assert_array_equal, out["true", "pred"], out["predicted", "pred"])
  differ = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, b),
                                        out["true", "wrong"], out["predicted", "wrong"]))
  assert any(differ)
