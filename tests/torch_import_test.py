"""Tests of advbound/models/torch_import.py against PyTorch itself: the imported functions give
torch's logits, torch autograd's input gradients and torch's forward-hook embeddings on the same
inputs, for small networks of the shapes the converter meets (RobustBench's WideResNet, a
pre-activation ResNet, a torchvision-style ResNet, an Inception-style block behind its own
normalisation layer, a channels-last module), with random weights and random batch-norm
running statistics so that eval-mode batch norm is really exercised.

Tolerances: logits max |jax - torch| <= 1e-5 * max(1, max |torch logits|); input gradients
and embeddings max |jax - torch| <= 1e-5 * max |torch value| (float32 on both sides, the sums
in different orders; measured on 2 CPU cores: at most 7e-7 of the scale).
"""

import copy
import functools
import textwrap

import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from advbound import models  # noqa: E402
from advbound.models import torch_import  # noqa: E402
from tests import eight_devices  # noqa: E402

LOGIT_TOL, GRAD_TOL = 1e-5, 1e-5


# --- the torch networks -----------------------------------------------------------------------

class WideBlock(nn.Module):
  """RobustBench's WideResNet BasicBlock: BN-ReLU-conv(stride)-BN-ReLU-(dropout)-conv, with a
  1x1 convolution of the activated input as the shortcut when the width changes."""

  def __init__(self, cin, cout, stride, drop):
    super().__init__()
    self.bn1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn2, self.relu2 = nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.drop, self.equal = drop, cin == cout
    self.shortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

  def forward(self, x):
    if self.equal:
      out = self.relu1(self.bn1(x))
    else:
      x = self.relu1(self.bn1(x))
      out = x
    out = self.relu2(self.bn2(self.conv1(out)))
    if self.drop > 0:
      out = F.dropout(out, p=self.drop, training=self.training)
    out = self.conv2(out)
    return torch.add(x if self.equal else self.shortcut(x), out)


class WideResNet(nn.Module):
  """RobustBench's WideResNet (depth 6n+4, widen factor k) for 32x32 inputs."""

  def __init__(self, depth=10, widen=2, num_classes=10, drop=0.3):
    super().__init__()
    n = (depth - 4) // 6
    ch = [16, 16 * widen, 32 * widen, 64 * widen]
    self.conv1 = nn.Conv2d(3, ch[0], 3, 1, 1, bias=False)
    blocks = []
    for stage, stride in enumerate((1, 2, 2)):
      blocks.append(nn.Sequential(*[WideBlock(ch[stage] if i == 0 else ch[stage + 1],
                                              ch[stage + 1], stride if i == 0 else 1, drop)
                                    for i in range(n)]))
    self.block1, self.block2, self.block3 = blocks
    self.bn1, self.relu = nn.BatchNorm2d(ch[3]), nn.ReLU(inplace=True)
    self.fc = nn.Linear(ch[3], num_classes)
    self.channels = ch[3]

  def forward(self, x):
    out = self.block3(self.block2(self.block1(self.conv1(x))))
    out = F.avg_pool2d(self.relu(self.bn1(out)), 8)
    return self.fc(out.view(-1, self.channels))


class PreActBlock(nn.Module):
  def __init__(self, cin, cout, stride):
    super().__init__()
    self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))
                     if stride != 1 or cin != cout else None)

  def forward(self, x):
    out = F.relu(self.bn1(x))
    shortcut = self.shortcut(out) if self.shortcut is not None else x
    out = self.conv1(out)
    return self.conv2(F.relu(self.bn2(out))) + shortcut


class PreActResNet(nn.Module):
  def __init__(self, width=8, num_classes=10):
    super().__init__()
    self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
    self.layer1 = PreActBlock(width, width, 1)
    self.layer2 = PreActBlock(width, 2 * width, 2)
    self.layer3 = PreActBlock(2 * width, 4 * width, 2)
    self.bn = nn.BatchNorm2d(4 * width)
    self.linear = nn.Linear(4 * width, num_classes)

  def forward(self, x):
    out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
    out = F.relu(self.bn(out))
    out = F.adaptive_avg_pool2d(out, 1)
    return self.linear(out.view(out.size(0), -1))


class BasicBlock(nn.Module):
  """torchvision's ResNet BasicBlock (conv-BN-ReLU-conv-BN, downsample conv1x1 + BN)."""

  def __init__(self, cin, cout, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.relu = nn.ReLU(inplace=True)
    self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                     nn.BatchNorm2d(cout))
                       if stride != 1 or cin != cout else None)

  def forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet(nn.Module):
  """torchvision's ResNet stem (7x7 stride 2, BN, ReLU, 3x3 max pool stride 2), two stages,
  adaptive average pooling, flatten, dropout, fc."""

  def __init__(self, num_classes=7):
    super().__init__()
    self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
    self.bn1, self.relu = nn.BatchNorm2d(8), nn.ReLU(inplace=True)
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    self.layer1 = nn.Sequential(BasicBlock(8, 8, 1))
    self.layer2 = nn.Sequential(BasicBlock(8, 16, 2))
    self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    self.dropout = nn.Dropout(0.5)
    self.fc = nn.Linear(16, num_classes)

  def forward(self, x):
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer2(self.layer1(x))
    return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


class Normalize(nn.Module):
  def __init__(self, mean, std):
    super().__init__()
    self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
    self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

  def forward(self, x):
    return (x - self.mean) / self.std


class Inception(nn.Module):
  """Its own input normalisation, then Inception-style branches (1x1, 3x3, dilated 3x3,
  max pool + 1x1, average pool without the padding) concatenated, BN and a mix of
  activations, a ceil-mode max pool, uneven adaptive pooling and a classifier."""

  def __init__(self, num_classes=5):
    super().__init__()
    self.normalize = Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    self.b1 = nn.Conv2d(3, 4, 1)
    self.b3 = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 6, 3, padding=1))
    self.b5 = nn.Conv2d(3, 4, 3, padding=2, dilation=2)
    self.pool_proj = nn.Conv2d(3, 2, 1)
    self.bn = nn.BatchNorm2d(17)
    self.mix = nn.Conv2d(17, 16, 3, padding=1, groups=1)
    self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
    self.classifier = nn.Linear(16 * 9, num_classes)

  def forward(self, x):
    x = self.normalize(x)
    branches = [self.b1(x), self.b3(x), F.leaky_relu(self.b5(x), 0.2),
                self.pool_proj(F.max_pool2d(x, 3, 1, 1)),
                F.avg_pool2d(x[:, :1], 3, 1, 1, count_include_pad=False)]
    x = F.silu(self.bn(torch.cat(branches, 1)))
    x = F.gelu(self.mix(x)) + F.elu(x[:, :16]) + F.softplus(x[:, 1:])
    x = F.hardtanh(self.depthwise(x), -2.0, 2.0)
    x = F.max_pool2d(x, 3, 2, ceil_mode=True)
    x = F.adaptive_avg_pool2d(x, (3, 3))
    return self.classifier(torch.flatten(x, 1))


class ChannelsLastNet(nn.Module):
  """A module that takes NHWC images (channels last) and permutes them itself."""

  def __init__(self, num_classes=4):
    super().__init__()
    self.conv = nn.Conv2d(3, 6, 3, padding=1)
    self.grouped = nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=3)
    self.head = nn.Linear(6, num_classes)

  def forward(self, x):
    x = F.relu6(self.grouped(torch.tanh(self.conv(x.permute(0, 3, 1, 2)))))
    return self.head(x.mean(dim=(2, 3)))


def _randomize(net, seed):
  """Random weights, and random batch-norm affine parameters and running statistics."""
  torch.manual_seed(seed)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, (nn.Conv2d, nn.Linear)):
        m.weight.normal_(0, (2.0 / m.weight[0].numel()) ** 0.5)
        if m.bias is not None:
          m.bias.uniform_(-0.2, 0.2)
      elif isinstance(m, nn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.5, 0.5)
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
  return net


# name -> (constructor, per-example shape (module's layout), layout, embedding module)
CASES = {
    "wide_resnet": (lambda: WideResNet(), (3, 32, 32), "NCHW", "fc"),
    "preact_resnet": (lambda: PreActResNet(), (3, 16, 16), "NCHW", "linear"),
    "resnet": (lambda: ResNet(), (3, 32, 32), "NCHW", "fc"),
    "inception": (lambda: Inception(), (3, 15, 15), "NCHW", "classifier"),
    "channels_last": (lambda: ChannelsLastNet(), (12, 12, 3), "NHWC", "head"),
}


def _images(shape, n=3, seed=0):
  """n images NHWC in [0, 1] for a module whose per-example shape is `shape` (NCHW)."""
  c, h, w = shape
  return np.random.default_rng(seed).uniform(0, 1, (n, h, w, c)).astype(np.float32)


def _to_module(x, layout):
  t = torch.from_numpy(np.asarray(x))
  return t.permute(0, 3, 1, 2).contiguous() if layout == "NCHW" else t


def _torch_reference(net, x, y, layout, embedding):
  """(logits, input gradient of the summed cross-entropy (NHWC), the embedding module's input
  flattened) from torch in eval mode."""
  net.eval()
  captured = {}

  def hook_fn(module, args):  # returns None: the module's input is left as it is
    captured["x"] = args[0].detach().flatten(1)

  hook = dict(net.named_modules())[embedding].register_forward_pre_hook(hook_fn)
  xt = _to_module(x, layout).requires_grad_(True)
  logits = net(xt)
  F.cross_entropy(logits, torch.from_numpy(y).long(), reduction="sum").backward()
  hook.remove()
  grad = xt.grad.permute(0, 2, 3, 1) if layout == "NCHW" else xt.grad
  return logits.detach().numpy(), grad.numpy(), captured["x"].numpy()


@functools.partial(jax.jit, static_argnums=(0, 1))
def _everything(apply, embed, params, x, y):
  """logits, input gradient, per-example vmapped logits, embedding; one compilation."""
  def loss(x):
    logits = apply(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum(), logits
  grad, logits = jax.grad(loss, has_aux=True)(x)
  per_example = jax.vmap(lambda xi: apply(params, xi[None])[0])(x)
  return logits, grad, per_example, embed(params, x)


def _assert_close(got, want, tol, what):
  got, want = np.asarray(got), np.asarray(want)
  assert got.shape == want.shape, (what, got.shape, want.shape)
  scale = max(1.0, float(np.abs(want).max())) if what == "logits" else float(
      np.abs(want).max())
  gap = float(np.abs(got - want).max())
  assert gap <= tol * scale, f"{what}: max |diff| {gap:.3g} > {tol} * {scale:.3g}"


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
  make, shape, layout, embedding = CASES[request.param]
  net = _randomize(make(), seed=len(request.param))
  imported = torch_import.from_torch(net, input_shape=shape, layout=layout,
                                     embedding=embedding)
  return request.param, net, imported, shape, layout, embedding


def test_logits_gradients_vmap_and_embedding_equal_torch(case):
  name, net, imported, shape, layout, embedding = case
  image_shape = shape if layout == "NHWC" else (shape[1], shape[2], shape[0])
  assert imported.input_shape == image_shape and imported.source == type(net).__name__
  x = _images((image_shape[2], image_shape[0], image_shape[1]))
  y = np.arange(3, dtype=np.int32) % imported.num_classes
  want_logits, want_grad, want_embedding = _torch_reference(net, x, y, layout, embedding)
  assert imported.num_classes == want_logits.shape[1]
  logits, grad, per_example, emb = _everything(imported.apply, imported.embed,
                                               imported.params, x, y)
  _assert_close(logits, want_logits, LOGIT_TOL, "logits")
  _assert_close(per_example, want_logits, LOGIT_TOL, "logits")
  _assert_close(grad, want_grad, GRAD_TOL, "input gradient")
  _assert_close(emb, want_embedding, LOGIT_TOL, "embedding")
  assert float(np.abs(want_grad).max()) > 0


def test_params_are_the_modules_tensors_by_name(case):
  _, net, imported, *_ = case
  state = net.state_dict()
  assert set(imported.params) == set(state)
  for key, value in state.items():
    got = np.asarray(imported.params[key])
    if value.is_floating_point():
      assert got.dtype == np.float32
    else:
      assert np.issubdtype(got.dtype, np.integer)  # num_batches_tracked stays an integer
    np.testing.assert_array_equal(got, value.numpy().astype(got.dtype))


def test_dropout_off_and_the_callers_module_untouched():
  """A module in training mode (dropout active, batch norm on batch statistics) is imported
  in eval mode; its training flags and weights are as they were."""
  net = _randomize(WideResNet(drop=0.5), seed=3).train()
  before = {k: v.clone() for k, v in net.state_dict().items()}
  imported = torch_import.from_torch(net, input_shape=(3, 32, 32))
  assert all(m.training for m in net.modules())
  for k, v in net.state_dict().items():
    assert torch.equal(v, before[k]), k
  x = _images((3, 32, 32))
  with torch.no_grad():
    eval_logits = copy.deepcopy(net).eval()(_to_module(x, "NCHW")).numpy()
    train_logits = copy.deepcopy(net)(_to_module(x, "NCHW")).numpy()
  got = np.asarray(jax.jit(imported.apply)(imported.params, x))
  _assert_close(got, eval_logits, LOGIT_TOL, "logits")
  assert np.abs(train_logits - eval_logits).max() > 1e-2  # training mode would differ


def test_pt2_file_and_exported_program_routes(tmp_path):
  net = _randomize(PreActResNet(), seed=5).eval()
  program = torch.export.export(net, (torch.zeros(2, 3, 16, 16),),
                                dynamic_shapes=({0: torch.export.Dim("batch")},))
  path = str(tmp_path / "preact.pt2")
  torch.export.save(program, path)
  x = _images((3, 16, 16), n=5)
  with torch.no_grad():
    want = net(_to_module(x, "NCHW")).numpy()
  for imported, source in ((torch_import.from_torch(path, input_shape=(3, 16, 16)), path),
                           (torch_import.from_torch(program, input_shape=(3, 16, 16),
                                                    source="mine"), "mine")):
    assert imported.source == source and imported.num_classes == 10
    _assert_close(imported.apply(imported.params, x), want, LOGIT_TOL, "logits")
  with pytest.raises(FileNotFoundError, match="missing.pt2"):
    torch_import.from_torch(str(tmp_path / "missing.pt2"), input_shape=(3, 16, 16))


def test_a_fixed_batch_program_says_so():
  net = _randomize(ChannelsLastNet(), seed=1).eval()
  program = torch.export.export(net, (torch.zeros(2, 12, 12, 3),))
  imported = torch_import.from_torch(program, input_shape=(12, 12, 3), layout="NHWC")
  imported.apply(imported.params, np.zeros((2, 12, 12, 3), np.float32))
  with pytest.raises(ValueError, match="fixed batch of 2"):
    imported.apply(imported.params, np.zeros((3, 12, 12, 3), np.float32))


def test_mean_std_and_input_range_are_applied_by_as_logits_fn():
  """Normalisation given to from_torch (not inside the module) runs before it, and
  input_bounds maps the caller's [0, 255] onto the module's [0, 1]."""
  net = _randomize(ChannelsLastNet(), seed=2).eval()
  mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
  imported = torch_import.from_torch(net, input_shape=(12, 12, 3), layout="NHWC",
                                     mean=mean, std=std, num_classes=4)
  x = np.random.default_rng(1).uniform(0, 255, (4, 12, 12, 3)).astype(np.float32)
  with torch.no_grad():
    want = net(torch.from_numpy((x / 255 - np.float32(mean)) / np.float32(std))).numpy()
  got = models.as_logits_fn(imported, input_bounds=(0, 255))(x)
  _assert_close(got, want, LOGIT_TOL, "logits")


class OpZoo(nn.Module):
  """Ops beyond the CNNs above: std, bilinear (both corner modes) and nearest resizing,
  reflection and replication padding, group norm, PReLU, pixel unshuffle, F.normalize, chunk,
  stack, flip, roll, hardswish, tanh-GELU, mish, where, layer norm over a permuted slice,
  logsumexp, amax, (log-)softmax, indexing by a buffer of indices."""

  def __init__(self):
    super().__init__()
    self.conv = nn.Conv2d(3, 8, 3)
    self.gn, self.prelu, self.ln = nn.GroupNorm(2, 8), nn.PReLU(8), nn.LayerNorm(8)
    self.fc = nn.Linear(8 * 36 + 3, 6)
    self.register_buffer("pick", torch.tensor([0, 2, 5]))

  def forward(self, x):
    x = x / x.std(dim=(1, 2, 3), keepdim=True)
    x = (F.interpolate(x, size=(11, 11), mode="bilinear", align_corners=False)
         + F.interpolate(x, size=(11, 11), mode="bilinear", align_corners=True))
    x = F.pad(x, (1, 2, 2, 1), mode="reflect") + F.pad(x, (1, 2, 2, 1), mode="replicate")
    x = self.prelu(self.gn(self.conv(x)))  # 8 x 12 x 12
    x = F.normalize(F.pixel_unshuffle(x, 2), dim=1)  # 32 x 6 x 6
    a, b = x.chunk(2, dim=1)
    x = torch.roll(torch.stack([a, b.flip(-1)], 1).sum(1), 1, -1)  # 16 x 6 x 6
    x = (F.hardswish(x) + F.gelu(x, approximate="tanh") + 0.5 * F.mish(x)
         + torch.where(x > 0, x.abs().sqrt(), x.exp() - 1))
    x = F.max_pool2d(F.interpolate(x, scale_factor=2, mode="nearest"), 2)
    x = self.ln(x.permute(0, 2, 3, 1)[..., :8]).permute(0, 3, 1, 2)  # 8 x 6 x 6
    h = x.flatten(1)
    extra = torch.stack([h.logsumexp(-1), h.amax(-1),
                         h.log_softmax(-1)[:, self.pick].sum(-1)], 1)
    return self.fc(torch.cat([h.softmax(-1) * 10, extra], 1))


@pytest.mark.parametrize("channels_last", [True, False])
def test_more_ops_equal_torch_in_either_internal_layout(channels_last):
  """The op zoo's logits and input gradients, with the graph run channels last inside (the
  default) and literally in torch's NCHW."""
  net = _randomize(OpZoo(), seed=6)
  imported = torch_import.from_torch(net, input_shape=(3, 8, 8), channels_last=channels_last,
                                     embedding="fc")
  x = _images((3, 8, 8))
  y = np.arange(3, dtype=np.int32)
  want_logits, want_grad, want_embedding = _torch_reference(net, x, y, "NCHW", "fc")
  logits, grad, _, emb = _everything(imported.apply, imported.embed, imported.params, x, y)
  _assert_close(logits, want_logits, LOGIT_TOL, "logits")
  _assert_close(grad, want_grad, GRAD_TOL, "input gradient")
  _assert_close(emb, want_embedding, LOGIT_TOL, "embedding")


def test_unsupported_op_is_named_before_tracing():
  class Sorting(nn.Module):
    def __init__(self):
      super().__init__()
      self.fc = nn.Linear(12, 3)

    def forward(self, x):
      return self.fc(torch.sort(x.flatten(1), dim=1).values)

  with pytest.raises(NotImplementedError, match=r"aten\.sort\.\w+ at node 'sort'"):
    torch_import.from_torch(Sorting(), input_shape=(3, 2, 2))


def test_bad_arguments_are_named():
  net = _randomize(PreActResNet(), seed=0).train()
  with pytest.raises(ValueError, match=r"input_shape.*\(3, 16\)"):
    torch_import.from_torch(net, input_shape=(3, 16))
  with pytest.raises(ValueError, match=r"input_shape \(4, 16, 16\)"):
    torch_import.from_torch(net, input_shape=(4, 16, 16))
  assert all(m.training for m in net.modules())  # restored after a failed export too
  with pytest.raises(ValueError, match=r"embedding='nope'.*'layer1'"):
    torch_import.from_torch(net, input_shape=(3, 16, 16), embedding="nope")
  with pytest.raises(ValueError, match="num_classes=7 but the module returns 10"):
    torch_import.from_torch(net, input_shape=(3, 16, 16), num_classes=7)
  with pytest.raises(ValueError, match="layout"):
    torch_import.from_torch(net, input_shape=(3, 16, 16), layout="CHW")
  with pytest.raises(TypeError, match="torch.nn.Module"):
    torch_import.from_torch(object(), input_shape=(3, 16, 16))
  imported = torch_import.from_torch(net, input_shape=(3, 16, 16))
  with pytest.raises(ValueError, match=r"expected images \[N, 16, 16, 3\]"):
    imported.apply(imported.params, np.zeros((2, 3, 16, 16), np.float32))


_SHARDED = textwrap.dedent("""
    import jax, numpy as np, torch
    from advbound import attacks, models
    from advbound.analysis import evaluate
    from advbound.runtime import sharding
    from tests import torch_import_test as t

    assert jax.device_count() == 8
    net = t._randomize(t.PreActResNet(width=4), seed=7)
    fn = models.as_logits_fn(models.from_torch(net, input_shape=(3, 16, 16)))
    leaf = jax.tree.leaves(fn)[0]
    assert leaf.sharding.is_fully_replicated and len(leaf.devices()) == 8
    x = t._images((3, 16, 16), n=13, seed=3)
    y = np.arange(13, dtype=np.int32) % 10
    key = jax.random.key(0)

    def run():
      labels = evaluate.predict(fn, x, batch_size=8)
      adv = attacks.pgd(models.as_pytree_fn(fn), key, sharding.put_batch(x[:8]),
                        sharding.put_batch(y[:8]), epsilon=0.05, step_size=0.02, num_steps=3,
                        bounds=(0.0, 1.0))
      acc = evaluate.pgd_accuracy(fn, key, x, y, bounds=(0.0, 1.0), epsilon=0.05,
                                  step_size=0.02, num_steps=3, batch_size=8)
      return labels, sharding.to_host(adv), acc

    many = run()
    with sharding.use_devices(jax.devices()[:1]):
      one = run()
    np.testing.assert_array_equal(many[0], one[0])
    np.testing.assert_allclose(many[1], one[1], atol=1e-5)
    assert many[2] == one[2]
    assert np.abs(many[1] - x[:8]).max() > 0.01
    print("SHARDED OK", many[0].tolist(), many[2])
""")


def test_sharded_over_8_devices_equals_one_device():
  eight_devices.assert_script_passes(_SHARDED)
