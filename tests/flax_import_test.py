"""Tests of advbound/models/flax_import.py: a user's NNX module and a trained variant of a study
workdir imported as `Imported` models give the modules' own eval-mode outputs."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ml_collections import config_dict

from advbound import models, training
from configs import common
from tiny_training import tiny_data  # tests/tiny_training.py


class Net(nnx.Module):
  """conv, batch norm, relu, dropout, dense embedding, dense head."""

  def __init__(self, rngs: nnx.Rngs):
    self.conv = nnx.Conv(3, 4, (3, 3), rngs=rngs)
    self.bn = nnx.BatchNorm(4, rngs=rngs)
    self.drop = nnx.Dropout(0.5, rngs=rngs)
    self.fc = nnx.Linear(4 * 8 * 8, 12, rngs=rngs)
    self.head = nnx.Linear(12, 5, rngs=rngs)

  def embed(self, x):
    h = self.drop(jax.nn.relu(self.bn(self.conv(x))))
    return jax.nn.tanh(self.fc(h.reshape(h.shape[0], -1)))

  def __call__(self, x):
    return self.head(self.embed(x))


def _net():
  net = Net(nnx.Rngs(0))
  rng = np.random.default_rng(1)
  net.bn.mean[...] = jnp.asarray(rng.normal(0, 0.5, 4), jnp.float32)
  net.bn.var[...] = jnp.asarray(rng.uniform(0.3, 3.0, 4), jnp.float32)
  return net


def _images(n=3, shape=(8, 8, 3)):
  return np.random.default_rng(0).uniform(0, 1, (n,) + shape).astype(np.float32)


def test_user_module_equals_its_own_eval_output():
  net = _net()  # in train mode: the import is in eval mode, the module is left as it is
  x = _images()
  imported = models.from_flax(net, input_shape=(8, 8, 3))
  assert not net.bn.use_running_average
  assert imported.input_shape == (8, 8, 3) and imported.num_classes == 5
  assert imported.input_range == (0.0, 1.0) and imported.source == "flax Net"
  fn = models.as_logits_fn(imported)
  reference = nnx.merge(*nnx.split(net), copy=True)
  reference.eval()
  expected = np.asarray(reference(x))
  np.testing.assert_allclose(np.asarray(fn(x)), expected, atol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.jit(fn)(x)), expected, atol=1e-5)
  # batch norm's running statistics matter: the train-mode output differs
  assert np.abs(np.asarray(nnx.merge(*nnx.split(net), copy=True)(x)) - expected).max() > 1e-2
  ours = jax.grad(lambda v: fn(v)[:, 1].sum())(x)
  theirs = jax.grad(lambda v: reference(v)[:, 1].sum())(x)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(models.as_embedding_fn(imported)(x)),
                             np.asarray(reference.embed(x)), atol=1e-6)
  # a snapshot: later changes to the module do not reach the imported model
  net.head.bias[...] = net.head.bias[...] + 1.0
  np.testing.assert_allclose(np.asarray(models.as_logits_fn(imported)(x)), expected, atol=1e-6)
  # mean/std and input_range pass through to the Imported model
  normalised = models.from_flax(reference, input_shape=(8, 8, 3), mean=(100.0,), std=(50.0,),
                                input_range=(0, 255))
  np.testing.assert_allclose(
      np.asarray(models.as_logits_fn(normalised, input_bounds=(0.0, 1.0))(x)),
      np.asarray(reference((255 * x - 100) / 50)), rtol=1e-5, atol=1e-5)


def test_user_module_errors():
  with pytest.raises(ValueError, match=r"pass input_shape=\(H, W, C\) for Net"):
    models.from_flax(_net())
  with pytest.raises(ValueError, match="does not run on inputs of shape"):
    models.from_flax(_net(), input_shape=(8, 8, 1))
  with pytest.raises(ValueError, match="either a Flax NNX module or workdir"):
    models.from_flax()
  with pytest.raises(TypeError, match="flax.nnx.Module"):
    models.from_flax(lambda x: x, input_shape=(8, 8, 3))


def test_workdir_variant_equals_the_trained_model(tmp_path):
  """A model trained by advbound.training.loop under <workdir>/models/natural is rebuilt from
  what the workdir records; a missing or unfinished model is a clear error naming the folder."""
  data = tiny_data("cifar10", n=32)
  model_cfg = config_dict.ConfigDict(dict(name="small_cifar", width=4))
  train_cfg = common.train(num_steps=3, batch_size=16, log_every=3, checkpoint_every=2,
                           learning_rate=0.01)
  folder = tmp_path / "models" / "natural"
  trained = training.train(data, model_cfg, train_cfg, str(folder))
  imported = models.from_flax(workdir=str(tmp_path))
  assert imported.input_shape == (32, 32, 3) and imported.num_classes == 10
  assert imported.input_range == (0.0, 255.0)  # CIFAR-10's bounds: the units it trained in
  for part in (str(folder), "natural", "small_cifar(width=4)", "cifar10"):
    assert part in imported.source
  x = data.images[:8]
  expected = np.asarray(models.as_logits_fn(trained)(x))
  np.testing.assert_allclose(np.asarray(models.as_logits_fn(imported)(x)), expected, atol=1e-5)
  np.testing.assert_allclose(np.asarray(models.as_embedding_fn(imported)(x)),
                             np.asarray(models.as_embedding_fn(trained)(x)), atol=1e-5)
  # the weights are the trained ones, not the seeded initialisation
  init = training.build_model(model_cfg, train_cfg.seed)
  assert np.abs(np.asarray(models.as_logits_fn(init)(x)) - expected).max() > 1e-4

  with pytest.raises(FileNotFoundError,
                     match=r"no trained model in .*models/robust.*\['natural'\]"):
    models.from_flax(workdir=str(tmp_path), variant="robust")
  with pytest.raises(FileNotFoundError, match=r"no trained model in .*empty.*none"):
    models.from_flax(workdir=str(tmp_path / "empty"))
  # a run that has not finished its steps (settings ask for more than the checkpoint holds)
  shutil.copytree(folder, tmp_path / "models" / "longer")
  path = tmp_path / "models" / "longer" / "settings.json"
  settings = json.loads(path.read_text())
  settings["train"]["num_steps"] = 5
  path.write_text(json.dumps(settings))
  with pytest.raises(ValueError, match=r"no finished model in .*longer.*step 3, not 5"):
    models.from_flax(workdir=str(tmp_path), variant="longer")
  # a run killed before its first checkpoint
  os.makedirs(tmp_path / "models" / "killed")
  shutil.copy(folder / "settings.json", tmp_path / "models" / "killed" / "settings.json")
  with pytest.raises(FileNotFoundError, match=r"no finished model in .*killed.*no checkpoint"):
    models.from_flax(workdir=str(tmp_path), variant="killed")
