"""Tests of imported variants in configs (advbound/training/settings.py: Source,
ImportedVariant) and of advbound/models/sources.py (loading, rebasing into the data's units),
without any other framework: the sources here are Flax NNX factories of this module."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ml_collections import config_dict

from advbound import models
from advbound.config import schema
from advbound.models import sources
from advbound.models.imported import Imported
from advbound.training import settings

SIZES = {"train": 45000, "validation": 5000, "test": 10000}


class Affine(nnx.Module):
  """logits = W x + b on flattened images (a closed form for the tests)."""

  def __init__(self, pixels: int, classes: int, *, rngs: nnx.Rngs):
    self.dense = nnx.Linear(pixels, classes, rngs=rngs)

  def __call__(self, x):
    return self.dense(x.reshape(x.shape[0], -1))


def affine_mnist():
  """An importable factory ('tests.sources_test:affine_mnist')."""
  return Affine(28 * 28, 10, rngs=nnx.Rngs(0))


def _config(source: dict, data=("mnist", "embedded")):
  config = importlib.import_module("configs.quickstart").get_config()
  config.data.name, config.data.source = data
  eval_cfg = config.eval
  config.models = config_dict.ConfigDict()
  config.models.natural = config_dict.ConfigDict({"source": source, "eval": eval_cfg.to_dict()})
  return config


def _problems(config, sizes=None) -> list[str]:
  c = schema.Checker()
  settings.check_trained(c, {k: config[k] for k in config.keys()}, sizes)
  return c.problems


def test_an_imported_variant_needs_no_training_settings():
  assert _problems(_config({"kind": "flax", "factory": "tests.sources_test:affine_mnist"})) == []


@pytest.mark.parametrize("source,expected", [
    ({"kind": "flax"}, "models.natural.source: kind 'flax' needs exactly one of path and "
     "factory"),
    ({"kind": "torch", "path": "/nonexistent/model.pt2"},
     "models.natural.source.path: path '/nonexistent/model.pt2' does not exist"),
    ({"kind": "keras", "factory": "no_such_package_xyz:net"},
     "models.natural.source.factory: module 'no_such_package_xyz' cannot be found"),
    ({"kind": "keras", "factory": "keras.applications"},
     "models.natural.source.factory: must be 'package.module:callable'"),
    ({"kind": "robustbench", "name": "Standard", "dataset": "cifar10"},
     "models.natural.source.dataset: the model is for 'cifar10' but data.name is 'mnist'"),
    ({"kind": "robustbench", "dataset": "svhn"}, "models.natural.source.name: required"),
    ({"kind": "flax", "factory": "tests.sources_test:affine_mnist", "mean": (0.5,)},
     "give both mean and std"),
    ({"kind": "onnx", "path": "x"}, "models.natural.source.kind: must be one of"),
])
def test_bad_sources_are_named(source, expected):
  problems = _problems(_config(source))
  assert any(expected in p for p in problems), problems


def test_an_input_range_that_is_not_the_datas_is_an_error_unless_rescaled():
  src = {"kind": "flax", "factory": "tests.sources_test:affine_mnist",
         "input_range": (0.0, 255.0)}
  problems = _problems(_config(src))
  assert len(problems) == 1 and "models.natural.source.input_range" in problems[0]
  assert "[0, 255]" in problems[0] and "rescale=True" in problems[0]
  assert _problems(_config({**src, "rescale": True})) == []
  # CIFAR-10 data is in [0, 255]: the default model range [0, 1] does not match it
  cifar = _config({"kind": "flax", "factory": "tests.sources_test:affine_mnist"},
                  data=("cifar10", "tfds"))
  assert any("data is in [0, 255]" in p for p in _problems(cifar, SIZES))


def test_an_imported_variant_cannot_be_an_init_from_source():
  config = _config({"kind": "flax", "factory": "tests.sources_test:affine_mnist"})
  quick = importlib.import_module("configs.quickstart").get_config()
  config.models.adversarial = quick.models.adversarial
  config.models.adversarial.init_from = "natural"
  problems = _problems(config)
  assert any("models.adversarial.init_from: 'natural' is an imported model" in p
             for p in problems), problems


def test_a_trained_variant_needs_a_model_section():
  config = importlib.import_module("configs.quickstart").get_config()
  del config["model"]
  problems = _problems(config)
  assert any("models.natural: trains on the config's model, but the config has no `model`" in p
             for p in problems), problems


def test_rebased_model_takes_the_datas_units():
  """An affine model on [-1, 1] inputs normalised by mean/std, rebased onto data in [0, 255]:
  its logits at x equal the closed form W ((lo + x (hi - lo) / 255 - mean) / std) + b."""
  rng = np.random.default_rng(0)
  w, b = rng.normal(size=(12, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
  mean, std = (0.1, -0.2, 0.3), (0.5, 0.25, 2.0)
  model = Imported(apply=lambda p, x: x.reshape(len(x), -1) @ p["w"] + p["b"],
                   params={"w": w, "b": b}, input_shape=(2, 2, 3), num_classes=3,
                   input_range=(-1.0, 1.0), mean=mean, std=std, source="affine")
  x = rng.uniform(0, 255, size=(5, 2, 2, 3)).astype(np.float32)
  mapped = -1 + x * 2 / 255
  expected = ((mapped - np.array(mean)) / np.array(std)).reshape(5, -1) @ w + b
  rebased = sources.rebased(model, (0.0, 255.0))
  assert rebased.input_range == (0.0, 255.0) and rebased.mean is None
  assert "mapped onto its [-1, 1]" in rebased.source
  np.testing.assert_allclose(jax.jit(models.as_logits_fn(rebased))(x), expected, rtol=1e-4,
                             atol=1e-4)
  # the same map through as_logits_fn's input_bounds on the original model
  np.testing.assert_allclose(models.as_logits_fn(model, input_bounds=(0, 255))(x), expected,
                             rtol=1e-4, atol=1e-4)
  # in the model's own units, no map
  np.testing.assert_allclose(models.as_logits_fn(model)(mapped), expected, rtol=1e-4,
                             atol=1e-4)


def test_logits_fn_of_an_imported_model_jits_once_and_differentiates():
  model = sources.load({"kind": "flax", "factory": "tests.sources_test:affine_mnist"},
                       image_shape=(28, 28, 1), bounds=(0.0, 1.0))
  fn = models.as_logits_fn(model)
  w = np.asarray(affine_mnist().dense.kernel[...])  # the same seed: the same weights
  x = np.random.default_rng(1).uniform(size=(4, 28, 28, 1)).astype(np.float32)
  # d logit_k / dx = W[:, k], the closed form of an affine model
  grad = jax.grad(lambda z: fn(z)[:, 3].sum())(x)
  np.testing.assert_allclose(grad.reshape(4, -1), np.broadcast_to(w[:, 3], (4, 784)),
                             rtol=1e-5, atol=1e-6)
  traces = []

  @jax.jit
  def predict(f, z):
    traces.append(1)
    return jnp.argmax(f(z), -1)

  predict(fn, x)
  predict(models.as_logits_fn(model), x)  # another fn of the same model: no recompilation
  assert len(traces) == 1


def test_load_rejects_a_model_for_other_images_and_unmapped_ranges():
  with pytest.raises(ValueError, match=r"affine_mnist does not run on inputs of shape .*"
                     r"\(32, 32, 3\)"):
    sources.load({"kind": "flax", "factory": "tests.sources_test:affine_mnist"},
                 image_shape=(32, 32, 3))
  with pytest.raises(ValueError, match="set rescale"):
    sources.load({"kind": "flax", "factory": "tests.sources_test:affine_mnist"},
                 image_shape=(28, 28, 1), bounds=(0.0, 255.0))


def test_digest_changes_with_the_weights_file(tmp_path):
  f = tmp_path / "w.bin"
  f.write_bytes(b"one")
  spec = {"kind": "torch", "factory": "x:y", "weights": str(f)}
  first = sources.digest(spec)
  f.write_bytes(b"two!")
  second = sources.digest(spec)
  assert list(first) == [str(f)] and first != second
