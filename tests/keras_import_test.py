"""Tests of advbound/models/keras_import.py: a Keras 3 model imported as pure JAX functions gives
Keras' own outputs (logits, input gradients, embedding) in inference mode."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import subprocess  # pylint: disable=g-import-not-at-top,wrong-import-position
import sys  # pylint: disable=wrong-import-position

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position

keras = pytest.importorskip("keras")

from advbound import models  # pylint: disable=wrong-import-position
from advbound.models import keras_import  # pylint: disable=wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cnn(seed=0, data_format="channels_last", head_activation="softmax"):
  """conv, batch norm (random moving statistics, scale and offset), tanh, average pool,
  dropout, dense head: a model whose inference differs from its training-mode output."""
  keras.utils.set_random_seed(seed)
  first = data_format == "channels_first"
  x = inputs = keras.Input((3, 8, 8) if first else (8, 8, 3))
  x = keras.layers.Conv2D(6, 3, padding="same", data_format=data_format, name="conv")(x)
  x = keras.layers.BatchNormalization(axis=1 if first else -1, name="bn")(x)
  x = keras.layers.Activation("tanh")(x)
  x = keras.layers.AveragePooling2D(2, data_format=data_format)(x)
  x = keras.layers.Flatten(data_format=data_format, name="flat")(x)
  x = keras.layers.Dropout(0.5)(x)
  x = keras.layers.Dense(16, activation="tanh", name="features")(x)
  outputs = keras.layers.Dense(5, activation=head_activation, name="head")(x)
  model = keras.Model(inputs, outputs)
  rng = np.random.default_rng(seed + 1)
  bn = model.get_layer("bn")
  for var, value in ((bn.moving_mean, rng.normal(0, 0.5, 6)),
                     (bn.moving_variance, rng.uniform(0.3, 3.0, 6)),
                     (bn.gamma, rng.uniform(0.5, 2.0, 6)), (bn.beta, rng.normal(0, 0.5, 6))):
    var.assign(value.astype(np.float32))
  return model


def _images(n=4, shape=(8, 8, 3), seed=0):
  return np.random.default_rng(seed).uniform(0, 1, (n,) + shape).astype(np.float32)


def _centered(z):
  z = np.asarray(z, np.float64)
  return z - z.mean(axis=-1, keepdims=True)


def test_logits_gradients_jit_and_vmap_equal_keras_inference():
  model = _cnn()
  x = _images()
  imported = models.from_keras(model)
  assert imported.input_shape == (8, 8, 3) and imported.num_classes == 5
  fn = models.as_logits_fn(imported)
  z = np.asarray(fn(x))
  probs = np.asarray(model(x, training=False))
  # the softmax head is stripped: its softmax is Keras' output, its logit differences log-ratios
  np.testing.assert_allclose(np.asarray(jax.nn.softmax(z)), probs, atol=1e-6)
  np.testing.assert_allclose(_centered(z), _centered(np.log(probs)), atol=2e-5)
  np.testing.assert_allclose(np.asarray(jax.jit(fn)(x)), z, atol=1e-5)
  np.testing.assert_allclose(np.asarray(jax.vmap(fn)(np.stack([x, x[::-1]])))[1], z[::-1],
                             atol=1e-5)

  # input gradients of a log-probability: Keras' own eager call differentiated by JAX, and
  # central finite differences of Keras' outputs along random directions
  c = 2
  ours = np.asarray(jax.grad(lambda v: jax.nn.log_softmax(fn(v))[:, c].sum())(x))
  keras_grad = np.asarray(jax.grad(
      lambda v: jnp.log(model(v, training=False))[:, c].sum())(jnp.asarray(x)))
  np.testing.assert_allclose(ours, keras_grad, rtol=1e-4, atol=1e-5)
  rng = np.random.default_rng(3)
  for _ in range(3):
    d = rng.normal(size=x.shape).astype(np.float32)
    d /= np.linalg.norm(d.reshape(len(x), -1), axis=1)[:, None, None, None]
    h = 1e-2
    up = np.log(np.asarray(model(x + h * d, training=False), np.float64))[:, c]
    down = np.log(np.asarray(model(x - h * d, training=False), np.float64))[:, c]
    numeric = (up - down) / (2 * h)
    analytic = np.sum(ours * d, axis=(1, 2, 3))
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-3)

  # batch norm's moving statistics and dropout matter: training mode gives other outputs (and,
  # called eagerly, updates the moving statistics)
  assert np.abs(np.asarray(model(x, training=True)) - probs).max() > 1e-2
  # the parameters are a copy: changing the Keras model afterwards does not change the import
  model.get_layer("head").kernel.assign(np.zeros((16, 5), np.float32))
  np.testing.assert_array_equal(np.asarray(models.as_logits_fn(imported)(x)), z)
  assert np.abs(np.asarray(model(x, training=False)) - probs).max() > 1e-3


def test_linear_head_is_kept_and_strip_softmax_off_returns_probabilities():
  linear = _cnn(head_activation=None)
  x = _images()
  np.testing.assert_allclose(np.asarray(models.as_logits_fn(models.from_keras(linear))(x)),
                             np.asarray(linear(x, training=False)), atol=1e-5)
  # a final Softmax or Activation("softmax") layer is stripped too
  for final in (keras.layers.Softmax(), keras.layers.Activation("softmax")):
    wrapped = keras.Model(linear.input, final(linear.output))
    np.testing.assert_allclose(np.asarray(models.as_logits_fn(models.from_keras(wrapped))(x)),
                               np.asarray(linear(x, training=False)), atol=1e-5)
  soft = _cnn()
  kept = models.from_keras(soft, strip_softmax=False)
  np.testing.assert_allclose(np.asarray(models.as_logits_fn(kept)(x)),
                             np.asarray(soft(x, training=False)), atol=1e-6)


def test_embedding_equals_the_sub_model_and_names_the_layers():
  model = _cnn()
  x = _images()
  imported = models.from_keras(model, embedding="head")
  sub = keras.Model(model.input, model.get_layer("head").input)
  features = np.asarray(models.as_embedding_fn(imported)(x))
  assert features.shape == (4, 16)
  np.testing.assert_allclose(features, np.asarray(sub(x, training=False)), atol=1e-6)
  # a layer with a 4-d input comes flattened
  pooled = models.from_keras(model, embedding="flat")
  conv_sub = keras.Model(model.input, model.get_layer("flat").input)
  np.testing.assert_allclose(np.asarray(models.as_embedding_fn(pooled)(x)),
                             np.asarray(conv_sub(x, training=False)).reshape(4, -1), atol=1e-6)
  with pytest.raises(ValueError, match=r"no layer 'nope'.*'features'.*'head'"):
    models.from_keras(model, embedding="nope")


def test_keras_file_round_trip(tmp_path):
  model = _cnn(seed=5)
  path = str(tmp_path / "cnn.keras")
  model.save(path)
  x = _images(seed=1)
  imported = models.from_keras(path)
  assert path in imported.source
  np.testing.assert_allclose(np.asarray(jax.nn.softmax(models.as_logits_fn(imported)(x))),
                             np.asarray(model(x, training=False)), atol=1e-6)
  with pytest.raises(FileNotFoundError, match="no model file"):
    models.from_keras(str(tmp_path / "missing.keras"))


def test_channels_first_model_takes_channels_last_images():
  model = _cnn(data_format="channels_first", head_activation=None)
  x = _images()
  imported = models.from_keras(model)
  assert imported.input_shape == (8, 8, 3)
  np.testing.assert_allclose(np.asarray(models.as_logits_fn(imported)(x)),
                             np.asarray(model(np.transpose(x, (0, 3, 1, 2)), training=False)),
                             atol=1e-5)


class _Subclassed(keras.Model):
  """A model without a layer graph: a convolution, batch norm and a dense head in call()."""

  def __init__(self):
    super().__init__()
    self.conv = keras.layers.Conv2D(4, 3, padding="same")
    self.bn = keras.layers.BatchNormalization()
    self.head = keras.layers.Dense(3)

  def call(self, x, training=False):
    h = keras.ops.tanh(self.bn(self.conv(x), training=training))
    return self.head(keras.ops.mean(h, axis=(1, 2)))


def test_subclassed_model_with_input_shape():
  keras.utils.set_random_seed(0)
  model = _Subclassed()
  x = _images()
  with pytest.raises(ValueError, match="not built"):
    models.from_keras(model, input_shape=(8, 8, 3))
  model(x)  # builds it
  model.bn.moving_mean.assign(np.full(4, 0.3, np.float32))
  with pytest.raises(ValueError, match=r"no input graph; pass input_shape=\(H, W, C\)"):
    models.from_keras(model)
  imported = models.from_keras(model, input_shape=(8, 8, 3))
  assert imported.num_classes == 3
  np.testing.assert_allclose(np.asarray(models.as_logits_fn(imported)(x)),
                             np.asarray(model(x, training=False)), atol=1e-5)


def test_non_image_models_are_refused():
  inputs = keras.Input((10,))
  mlp = keras.Model(inputs, keras.layers.Dense(3)(inputs))
  with pytest.raises(ValueError, match=r"not a batch of\s+images"):
    models.from_keras(mlp)
  with pytest.raises(TypeError, match="keras.Model"):
    models.from_keras(object())


@pytest.mark.parametrize("name,module", [("InceptionResNetV2", "inception_resnet_v2"),
                                         ("DenseNet121", "densenet"), ("ResNet50", "resnet50")])
def test_preprocessing_equals_keras_preprocess_input(name, module):
  """preprocessing(name) as input range, mean/std and channel order: the imported model on
  [0, 255] RGB images equals the network on Keras' own preprocess_input of them."""
  model = _cnn(seed=2, head_activation=None)
  x = 255 * _images(seed=4)
  imported = models.from_keras(model, **keras_import.preprocessing(name))
  ours = np.asarray(models.as_logits_fn(imported, input_bounds=(0.0, 255.0))(x))
  preprocess = getattr(keras.applications, module).preprocess_input
  np.testing.assert_allclose(ours, np.asarray(model(preprocess(x.copy()), training=False)),
                             rtol=1e-4, atol=1e-4)
  # the map is not the identity: feeding [0, 255] images as they are gives other logits
  assert np.abs(np.asarray(model(x, training=False)) - ours).max() > 1e-2


def test_application_by_name_weights_file_and_imagenet_without_network(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match="unknown Keras application 'NoSuchNet'"):
    keras_import.application("NoSuchNet")
  small = dict(input_shape=(32, 32, 3), alpha=0.25, classes=4)
  net = keras_import.application("mobilenet", **small)  # case and underscores ignored
  assert net.output_shape == (None, 4)
  assert keras_import.preprocessing("MobileNet") == {"input_range": (-1.0, 1.0)}
  path = str(tmp_path / "mobilenet.weights.h5")
  net.save_weights(path)
  again = keras_import.application("MobileNet", weights=path, **small)
  x = _images(2, (32, 32, 3))
  np.testing.assert_allclose(np.asarray(models.as_logits_fn(models.from_keras(again))(x)),
                             np.asarray(net(x, training=False)), atol=1e-5)
  with pytest.raises(FileNotFoundError, match="no weights file"):
    keras_import.application("MobileNet", weights=str(tmp_path / "none.h5"), **small)

  def no_network(*args, **kwargs):
    raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- no net")
  monkeypatch.setattr(keras.src.utils.file_utils, "get_file", no_network)
  with pytest.raises(RuntimeError, match=r"MobileNet: the ImageNet weights.*local path"):
    keras_import.application("MobileNet", weights="imagenet", alpha=0.25, include_top=False,
                             input_shape=(32, 32, 3))


def test_other_backend_is_refused_and_jax_is_the_default():
  code = ("from advbound.models import keras_import\n"
          "try:\n  keras_import.keras_module()\nexcept ValueError as e:\n  print('ERR', e)\n"
          "else:\n  import keras; print('OK', keras.backend.backend())\n")
  env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
  default = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120, check=True)
  assert "OK jax" in default.stdout, default.stdout + default.stderr
  other = subprocess.run([sys.executable, "-c", "import keras\n" + code], cwd=ROOT,
                         env=dict(env, KERAS_BACKEND="numpy"), capture_output=True, text=True,
                         timeout=120, check=True)
  assert "ERR" in other.stdout and "'numpy' backend" in other.stdout, other.stdout + other.stderr
  assert "set KERAS_BACKEND=jax before keras is imported" in other.stdout


@pytest.mark.slow
def test_inception_resnet_v2_small_input_equals_keras_predict():
  """He et al.'s ImageNet network (random weights, 75x75 inputs, 10 classes) imported whole
  gives Keras' predict; about 30 s on 2 CPU cores (building the 54M-parameter network)."""
  net = keras_import.application("InceptionResNetV2", input_shape=(75, 75, 3), classes=10)
  imported = models.from_keras(net, **keras_import.preprocessing("InceptionResNetV2"),
                               embedding="predictions")
  assert imported.input_shape == (75, 75, 3) and imported.num_classes == 10
  x = np.random.default_rng(0).uniform(-1, 1, (2, 75, 75, 3)).astype(np.float32)
  expected = net.predict(x, verbose=0)
  ours = np.asarray(jax.jit(models.as_logits_fn(imported))(x))
  np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
  assert models.as_embedding_fn(imported)(x).shape == (2, 1536)
