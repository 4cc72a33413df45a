"""Why AutoAttack is slow on CPU: the same CNN's gradient, 100 times, inside one compiled loop
(our `pgd`, 100 steps; `apgd`, 100 iterations) against torch's own 100 forward+backward passes,
on 50 CIFAR-10 test images.

  python -m benchmarks.compiled_loop

The CNN is benchmarks.autoattack's, with torch's initial weights (seed 0), imported with
`advbound.models.from_torch`. Prints seconds for each (ours twice: cold, then warm).
"""

import sys
import time

import jax
import numpy as np

from advbound import models
from advbound.attacks import apgd, pgd
from benchmarks.autoattack import _cnn


def main():
  import torch  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  net = _cnn(torch).eval()
  with np.load("/work/shared/data/cifar10_test.npz" if len(sys.argv) < 2 else sys.argv[1]) as f:
    x = f["x"][:50].astype(np.float32) / 255
  fn = models.as_logits_fn(models.from_torch(net, input_shape=(3, 32, 32)))
  y = np.asarray(jax.numpy.argmax(fn(x), -1), np.int32)
  key = jax.random.key(0)
  for _ in range(2):
    t0 = time.time()
    jax.block_until_ready(pgd(fn, key, x, y, epsilon=8 / 255, step_size=2 / 255, num_steps=100,
                              bounds=(0.0, 1.0)))
    print(f"ours pgd, 100 steps in one compiled loop: {time.time() - t0:.1f} s", flush=True)
  xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
  yt = torch.from_numpy(y.astype(np.int64))
  t0 = time.time()
  for _ in range(100):
    xx = xt.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(net(xx), yt).backward()
  print(f"torch, 100 forward+backward passes: {time.time() - t0:.1f} s", flush=True)
  t0 = time.time()
  jax.block_until_ready(apgd(fn, key, x, y, epsilon=8 / 255, bounds=(0.0, 1.0)).success)
  print(f"ours apgd, 100 iterations: {time.time() - t0:.1f} s", flush=True)


if __name__ == "__main__":
  main()
