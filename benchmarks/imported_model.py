"""Throughput of a PyTorch model imported by `advbound.models.from_torch` against the same
network built natively in Flax with the same weights.

  python -m benchmarks.imported_model                          # PreAct-18 at width 16, batch 64
  python -m benchmarks.imported_model --width=64 --batch=128   # the training-dynamics model

The torch network is our Flax `PreActResNet` written in torch (per-image standardization,
pre-activation blocks, SAME padding of the stride-2 convolutions as an explicit (0, 1) pad);
random weights and batch-norm statistics are drawn in torch and copied into a Flax
`PreActResNet`, and the logits of the two are checked to agree before anything is timed. Both
run as `models.as_logits_fn` functions under jax.jit on the same inputs in one process: the
forward pass (logits) and the input gradient of the cross-entropy loss. Prints images per
second (warm, the median of --repeats timings of --calls calls each, the variants interleaved
in each repeat) and the ratios to native, for the default import (convolutions and the ops
around them run channels last inside) and the literal one (`channels_last=False`: the graph
in torch's NCHW, as XLA's layout assignment leaves it).
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from flax import nnx

from advbound import models
from advbound.models import torch_import

_WIDTH = flags.DEFINE_integer("width", 16, "PreActResNet width (64: PreAct-18 of the paper)")
_BLOCKS = flags.DEFINE_list("blocks", ["2", "2", "2", "2"], "blocks per level")
_BATCH = flags.DEFINE_integer("batch", 64, "images per call")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed repeats (the median is printed)")
_CALLS = flags.DEFINE_integer("calls", 3, "calls per timed repeat")
_SEED = flags.DEFINE_integer("seed", 0, "seed of the weights and images")


def torch_preact(width: int, blocks, num_classes: int = 10):
  """Our Flax PreActResNet in torch (NCHW), random batch-norm statistics included."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn
  import torch.nn.functional as F

  class Block(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.stride = stride
      self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
      self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=0 if stride > 1 else 1, bias=False)
      self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
      self.project = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                      if stride != 1 or cin != cout else None)

    def forward(self, x):
      a = F.relu(self.bn1(x))
      shortcut = x if self.project is None else self.project(a)
      y = self.conv1(F.pad(a, (0, 1, 0, 1)) if self.stride > 1 else a)  # Flax's SAME
      return self.conv2(F.relu(self.bn2(y))) + shortcut

  class PreAct(nn.Module):
    def __init__(self):
      super().__init__()
      self.stem = nn.Conv2d(3, width, 3, padding=1, bias=False)
      layers, cin = [], width
      for level, n in enumerate(blocks):
        for i in range(n):
          layers.append(Block(cin, width * 2 ** level, 2 if level and not i else 1))
          cin = width * 2 ** level
      self.blocks = nn.Sequential(*layers)
      self.bn = nn.BatchNorm2d(cin)
      self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
      n = x.shape[1] * x.shape[2] * x.shape[3]
      mean = x.mean(dim=(1, 2, 3), keepdim=True)
      std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp(min=n ** -0.5)
      x = self.blocks(self.stem((x - mean) / std))
      return self.head(F.relu(self.bn(x)).mean(dim=(2, 3)))

  net = PreAct()
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, nn.BatchNorm2d):
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.5, 0.5)
  return net.eval()


def copy_into_flax(net, model) -> None:
  """The torch PreAct's weights into a Flax PreActResNet of the same shape."""
  def a(t):
    return jnp.asarray(t.detach().numpy())

  def conv(dst, src):
    dst.kernel.value = a(src.weight).transpose(2, 3, 1, 0)  # OIHW -> HWIO

  def bn(dst, src):
    dst.scale.value, dst.bias.value = a(src.weight), a(src.bias)
    dst.mean.value, dst.var.value = a(src.running_mean), a(src.running_var)

  conv(model.stem, net.stem)
  for dst, src in zip(model.blocks, net.blocks):
    bn(dst.bn1, src.bn1)
    bn(dst.bn2, src.bn2)
    conv(dst.conv1, src.conv1)
    conv(dst.conv2, src.conv2)
    if src.project is not None:
      conv(dst.project, src.project)
  bn(model.bn, net.bn)
  model.head.kernel.value = a(net.head.weight).T
  model.head.bias.value = a(net.head.bias)


def _rates(fns: dict, call, *, batch: int, repeats: int, calls: int) -> dict:
  """Images per second of call(fn) for each fn: warm (one untimed call each), the median of
  `repeats` timings, the variants interleaved within each repeat so that a shared machine's
  load falls on all of them alike."""
  for fn in fns.values():
    jax.block_until_ready(call(fn))
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      for _ in range(calls):
        out = call(fn)
      jax.block_until_ready(out)
      times[name].append((time.perf_counter() - t0) / calls)
  return {name: batch / statistics.median(t) for name, t in times.items()}


@jax.jit
def _forward(logits_fn, x):
  return logits_fn(x)


@jax.jit
def _input_grad(logits_fn, x, y):
  def loss(x):
    return optax.softmax_cross_entropy_with_integer_labels(logits_fn(x), y).sum()
  return jax.grad(loss)(x)


def main(argv):
  del argv
  import torch  # pylint: disable=g-import-not-at-top
  torch.manual_seed(_SEED.value)
  blocks = tuple(int(b) for b in _BLOCKS.value)
  net = torch_preact(_WIDTH.value, blocks)
  flax_model = models.PreActResNet(width=_WIDTH.value, blocks=blocks, rngs=nnx.Rngs(0))
  copy_into_flax(net, flax_model)
  fns = {"native": models.as_logits_fn(flax_model),
         "imported": models.as_logits_fn(models.from_torch(net, input_shape=(3, 32, 32))),
         "literal": models.as_logits_fn(torch_import.from_torch(
             net, input_shape=(3, 32, 32), channels_last=False))}

  rng = np.random.default_rng(_SEED.value)
  x = jnp.asarray(rng.uniform(0, 1, (_BATCH.value, 32, 32, 3)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, _BATCH.value), jnp.int32)
  with torch.no_grad():
    ref = net(torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2))).numpy()
  for name, fn in fns.items():
    gap = float(np.max(np.abs(np.asarray(_forward(fn, x)) - ref)))
    print(f"{name:>8} logits vs torch: max |diff| {gap:.2e} (logit scale "
          f"{np.max(np.abs(ref)):.2f})")
    if gap > 1e-3 * max(1.0, float(np.max(np.abs(ref)))):
      raise SystemExit(f"{name} disagrees with torch; not timing")

  kw = dict(batch=_BATCH.value, repeats=_REPEATS.value, calls=_CALLS.value)
  print(f"\ndevice: {jax.devices()[0].device_kind} ({jax.default_backend()}), PreActResNet "
        f"width {_WIDTH.value} blocks {blocks}, batch {_BATCH.value}, median of "
        f"{_REPEATS.value} x {_CALLS.value} calls")
  print("imported: from_torch (channels last inside); literal: channels_last=False (the graph "
        "in torch's NCHW)")
  print(f"{'':>15} {'native img/s':>13} {'imported':>9} {'literal':>8} {'imported/native':>16} "
        f"{'literal/native':>15}")
  for label, call in (("forward", lambda f: _forward(f, x)),
                      ("input gradient", lambda f: _input_grad(f, x, y))):
    r = _rates(fns, call, **kw)
    print(f"{label:>15} {r['native']:13.1f} {r['imported']:9.1f} {r['literal']:8.1f} "
          f"{r['imported'] / r['native']:16.2f} {r['literal'] / r['native']:15.2f}")


if __name__ == "__main__":
  app.run(main)
