"""Why the attacks drive their iterations from Python on CPU: the same CNN's gradient, 100 times,
inside one compiled lax loop (loop="device") and as one compiled step called 100 times
(loop="host"), against torch's own 100 forward+backward passes, on 50 CIFAR-10 test images;
and Square's forward-only loop on 5 images (AutoAttack's last attack sees only the few points
still robust).

  python -m benchmarks.compiled_loop [cifar10_test.npz]

The CNN is benchmarks.autoattack's, with torch's initial weights (seed 0), imported with
`advbound.models.from_torch`. Prints seconds for each (ours warm: a first call compiles) and the
ratios torch / ours.
"""

import sys
import time

import jax
import numpy as np

from advbound import models
from advbound.attacks import apgd, pgd, square
from benchmarks.autoattack import _cnn


def _warm_seconds(run):
  jax.block_until_ready(run())
  t0 = time.time()
  jax.block_until_ready(run())
  return time.time() - t0


def main():
  import torch  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  net = _cnn(torch).eval()
  with np.load("/work/shared/data/cifar10_test.npz" if len(sys.argv) < 2 else sys.argv[1]) as f:
    x = f["x"][:50].astype(np.float32) / 255
  fn = models.as_logits_fn(models.from_torch(net, input_shape=(3, 32, 32)))
  y = np.asarray(jax.numpy.argmax(fn(x), -1), np.int32)
  key = jax.random.key(0)
  xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
  yt = torch.from_numpy(y.astype(np.int64))
  t0 = time.time()
  for _ in range(100):
    xx = xt.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(net(xx), yt).backward()
  ref = time.time() - t0
  print(f"torch, 100 forward+backward passes on 50 images: {ref:.1f} s", flush=True)
  for loop in ("device", "host"):
    pgd_s = _warm_seconds(lambda: pgd(fn, key, x, y, epsilon=8 / 255, step_size=2 / 255,
                                      num_steps=100, bounds=(0.0, 1.0), loop=loop))
    apgd_s = _warm_seconds(lambda: apgd(fn, key, x, y, epsilon=8 / 255, bounds=(0.0, 1.0),
                                        loop=loop).success)
    print(f"loop={loop}: pgd 100 steps {pgd_s:.1f} s (torch / ours {ref / pgd_s:.2f}); "
          f"apgd 100 iterations {apgd_s:.1f} s (torch / ours {ref / apgd_s:.2f})", flush=True)
  x5, y5 = x[:5], y[:5]
  t0 = time.time()
  with torch.no_grad():
    for _ in range(1000):
      net(xt[:5])
  ref5 = time.time() - t0
  print(f"torch, 1000 forward passes on 5 images: {ref5:.1f} s", flush=True)
  for loop in ("device", "host"):
    sq = _warm_seconds(lambda: square(fn, key, x5, y5, epsilon=1 / 255, bounds=(0.0, 1.0),
                                      num_queries=1000, loop=loop).success)
    print(f"loop={loop}: square 1000 queries on 5 images {sq:.1f} s "
          f"(torch forwards / ours {ref5 / sq:.2f})", flush=True)


if __name__ == "__main__":
  main()
