"""Tests of advbound/models: shapes, architecture sizes, per-image standardization, logits_fn."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from advbound import models
from advbound.models import wide_resnet


def _num_params(model):
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_mnist_cnn_shape_and_size():
  model = models.MnistCNN(rngs=nnx.Rngs(0))
  out = model(jnp.zeros((3, 28, 28, 1)))
  assert out.shape == (3, 10)
  # conv 5x5x1x32 + conv 5x5x32x64 + dense 3136x1024 + dense 1024x10 (weights + biases)
  expected = (25 * 32 + 32) + (25 * 32 * 64 + 64) + (3136 * 1024 + 1024) + (1024 * 10 + 10)
  assert _num_params(model) == expected


def _wrn_expected_params(depth, width, k=10):
  """Independent count of Madry et al.'s WRN: convs without bias, BN scale+offset, dense."""
  n = (depth - 2) // 6
  f = [16, 16 * width, 32 * width, 64 * width]
  total = 3 * 3 * 3 * 16  # stem
  for s in range(3):
    for i in range(n):
      fin = f[s] if i == 0 else f[s + 1]
      total += 2 * fin + 9 * fin * f[s + 1] + 2 * f[s + 1] + 9 * f[s + 1] * f[s + 1]
  return total + 2 * f[3] + f[3] * k + k


@pytest.mark.parametrize("depth,width", [(8, 1), (14, 2)])
def test_wide_resnet_shape_and_size(depth, width):
  model = models.WideResNet(depth, width, rngs=nnx.Rngs(0))
  model.eval()
  assert model(jnp.full((2, 32, 32, 3), 128.0)).shape == (2, 10)
  assert _num_params(model) == _wrn_expected_params(depth, width)


def test_wrn_32_10_size():
  """The paper's WRN-32-10 (45.9M parameters); built abstractly, no weights allocated."""
  abstract = nnx.eval_shape(lambda: models.WideResNet(32, 10, rngs=nnx.Rngs(0)))
  n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
  assert n == _wrn_expected_params(32, 10)
  assert 45.5e6 < n < 46.5e6  # "about 46M" for Madry et al.'s WRN-32-10


@pytest.mark.parametrize("depth,width", [(10, 1), (7, 1), (2, 1), (8, 0)])
def test_wide_resnet_bad_sizes(depth, width):
  with pytest.raises(ValueError, match="depth|width"):
    models.WideResNet(depth, width, rngs=nnx.Rngs(0))


def test_small_cifar_shape():
  model = models.SmallCifarCNN(width=8, rngs=nnx.Rngs(0))
  model.eval()
  assert model(jnp.zeros((4, 32, 32, 3))).shape == (4, 10)


def test_per_image_standardization_matches_formula():
  x = np.random.default_rng(0).uniform(0, 255, (3, 4, 4, 3)).astype(np.float32)
  x[2] = 7.0  # constant image: std floored at 1/sqrt(48)
  got = np.asarray(wide_resnet.per_image_standardization(jnp.asarray(x)))
  for i in range(3):
    std = max(x[i].std(), 1 / np.sqrt(48))
    np.testing.assert_allclose(got[i], (x[i] - x[i].mean()) / std, rtol=1e-5, atol=1e-5)


def test_build_registry():
  assert isinstance(models.build("mnist_cnn", rngs=nnx.Rngs(0)), models.MnistCNN)
  with pytest.raises(ValueError, match="unknown model 'resnet'"):
    models.build("resnet", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="bad arguments"):
    models.build("mnist_cnn", depth=3, rngs=nnx.Rngs(0))


def test_as_logits_fn_is_pure_eval_mode():
  model = models.WideResNet(8, 1, rngs=nnx.Rngs(0))
  model.train()
  x = jax.random.uniform(jax.random.key(0), (6, 32, 32, 3), maxval=255.0)
  model(x)  # one train-mode call moves the running statistics away from their init
  before = jax.tree.map(np.array, nnx.state(model))
  fn = models.as_logits_fn(model)
  out = jax.jit(fn)(x)
  # eval mode: each image's logits do not depend on the rest of the batch
  np.testing.assert_allclose(jax.jit(fn)(x[:1]), out[:1], rtol=1e-4, atol=1e-4)
  # usable under vmap and grad; the caller's model (mode and statistics) is untouched
  per_image = jax.vmap(lambda xi: fn(xi[None])[0])(x)
  np.testing.assert_allclose(per_image, out, rtol=1e-4, atol=1e-4)
  g = jax.grad(lambda z: fn(z).sum())(x)
  assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))
  jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.array, nnx.state(model)))
  assert model.blocks[0].bn1.use_running_average is False
  # later changes to the model do not leak into the snapshot
  model(x * 0.5)
  np.testing.assert_array_equal(jax.jit(fn)(x), out)


def test_as_pytree_fn():
  fn = models.as_logits_fn(models.MnistCNN(rngs=nnx.Rngs(0)))
  assert models.as_pytree_fn(fn) is fn
  plain = lambda x: x.reshape(x.shape[0], -1)[:, :10]
  wrapped = models.as_pytree_fn(plain)
  np.testing.assert_array_equal(jax.jit(lambda f, x: f(x))(wrapped, jnp.ones((2, 28, 28, 1))),
                                np.ones((2, 10)))
  with pytest.raises(TypeError, match="callable"):
    models.as_pytree_fn(3)


def test_carlini_wagner_mnist_shape_size_and_dropout():
  model = models.build("cw_mnist", rngs=nnx.Rngs(0))
  x = jax.random.uniform(jax.random.key(1), (5, 28, 28, 1))
  model.eval()
  chex.assert_shape(model(x), (5, 10))
  # the released Keras model's parameter count: convs 320 + 9,248 + 18,496 + 36,928, dense
  # 1,024 x 200 + 200, 200 x 200 + 200, 200 x 10 + 10
  count = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert count == 320 + 9248 + 18496 + 36928 + 205000 + 40200 + 2010
  chex.assert_trees_all_equal(model(x), model(x))  # eval: no dropout
  model.train()
  assert not np.allclose(np.asarray(model(x)), np.asarray(model(x)))  # dropout draws anew
  fn = models.as_logits_fn(model)  # eval mode whatever the model's mode
  chex.assert_trees_all_equal(fn(x), fn(x))
  with pytest.raises(ValueError, match="dropout"):
    models.build("cw_mnist", dropout=1.0, rngs=nnx.Rngs(0))


def _resnet_cifar_count(n):
  """By hand: stem conv + BN; per stage n blocks of two 3x3 convs and two BNs (the first block
  of stages 2 and 3 widens); the dense layer. Option A shortcuts have no parameters."""
  conv = lambda i, o: 9 * i * o
  bn = lambda c: 2 * c
  blocks = 0
  for i_first, out in ((16, 16), (16, 32), (32, 64)):
    blocks += conv(i_first, out) + conv(out, out) + 2 * bn(out)
    blocks += (n - 1) * (2 * conv(out, out) + 2 * bn(out))
  return conv(3, 16) + bn(16) + blocks + 64 * 10 + 10


@pytest.mark.parametrize("depth,params", [(20, 269722), (32, 464154)])
def test_resnet_cifar_shape_and_the_papers_parameter_counts(depth, params):
  """He et al. 2016, Table 6: ResNet-20 0.27M and ResNet-32 0.46M parameters."""
  assert _resnet_cifar_count((depth - 2) // 6) == params
  model = models.build("resnet_cifar", depth=depth, rngs=nnx.Rngs(0))
  model.eval()
  x = jax.random.uniform(jax.random.key(0), (3, 32, 32, 3), maxval=255.0)
  chex.assert_shape(model(x), (3, 10))
  count = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert count == params
  with pytest.raises(ValueError, match="6n\\+2"):
    models.build("resnet_cifar", depth=21, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name,kwargs,shape,dim", [
    ("mnist_cnn", {}, (28, 28, 1), 1024),
    ("cw_mnist", {}, (28, 28, 1), 200),
    ("wide_resnet", dict(depth=8, width=2), (32, 32, 3), 128),
    ("small_cifar", dict(width=8), (32, 32, 3), 32),
    ("resnet_cifar", dict(depth=8), (32, 32, 3), 64),
])
def test_embedding_is_the_input_of_the_last_layer(name, kwargs, shape, dim):
  """The embedding is what the logits are computed from: the logits equal the model's last
  dense layer (and, for cw_mnist, the layers after the first dense one) applied to it, and
  as_embedding_fn is the eval-mode embedding of the same weights."""
  model = models.build(name, rngs=nnx.Rngs(0), **kwargs)
  x = jax.random.uniform(jax.random.key(1), (4,) + shape) * (255.0 if shape[-1] == 3 else 1.0)
  embed = models.as_embedding_fn(model)(x)
  assert embed.shape == (4, dim)
  if name == "mnist_cnn":
    # the first dense layer after its ReLU, rebuilt from the layers by hand
    h = nnx.max_pool(jax.nn.relu(model.conv1(x)), (2, 2), strides=(2, 2))
    h = nnx.max_pool(jax.nn.relu(model.conv2(h)), (2, 2), strides=(2, 2))
    chex.assert_trees_all_close(embed, jax.nn.relu(model.fc1(h.reshape(4, -1))), atol=1e-5)
  last = (lambda e: model.fc3(jax.nn.relu(model.fc2(e)))) if name == "cw_mnist" else (
      (lambda e: model.fc2(e)) if name == "mnist_cnn" else model.head)
  chex.assert_trees_all_close(models.as_logits_fn(model)(x), last(embed), atol=1e-4, rtol=1e-4)


def test_embedding_fn_needs_an_embed_method():
  class NoEmbed(nnx.Module):
    def __call__(self, x):
      return x
  with pytest.raises(ValueError, match="NoEmbed has no embed method"):
    models.as_embedding_fn(NoEmbed())


def test_metzen_detector_shape_and_size():
  model = models.build("metzen_detector", rngs=nnx.Rngs(0))
  assert model(jnp.zeros((2, 32, 32, 3))).shape == (2, 2)
  # conv 3x3x3x96, 3x3x96x192, 3x3x192x192, 1x1x192x2 (weights + biases)
  expected = (27 * 96 + 96) + (9 * 96 * 192 + 192) + (9 * 192 * 192 + 192) + (192 * 2 + 2)
  assert _num_params(model) == expected
  assert models.MetzenDetector(in_channels=1, rngs=nnx.Rngs(0))(
      jnp.zeros((1, 28, 28, 1))).shape == (1, 2)


def test_models_of_one_architecture_share_compiled_programs():
  """A study's epochs and checkpoints are new models of one architecture: jit must not compile
  again for each (their logits functions compare by architecture, not by identity)."""
  from advbound.attacks.pgd import pgd  # pylint: disable=g-import-not-at-top
  compiles = []
  listener = lambda event, secs, **_: compiles.append(event) if event.endswith(
      "backend_compile_duration") else None
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    x = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype(np.float32)
    counts = []
    for seed in range(3):
      fn = models.as_logits_fn(models.build("mnist_cnn", rngs=nnx.Rngs(seed)))
      before = len(compiles)
      out = pgd(fn, jax.random.key(0), x, np.zeros(8, np.int32), epsilon=0.1, step_size=0.01,
                num_steps=2, bounds=(0.0, 1.0), random_start=False)
      np.asarray(out)
      counts.append(len(compiles) - before)
    assert counts[0] > 0 and counts[1:] == [0, 0], counts
    # and they are different models: other weights, other logits
    f0 = models.as_logits_fn(models.build("mnist_cnn", rngs=nnx.Rngs(0)))
    f1 = models.as_logits_fn(models.build("mnist_cnn", rngs=nnx.Rngs(1)))
    assert not np.allclose(np.asarray(f0(x)), np.asarray(f1(x)))
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
