"""AutoAttack (standard, L-inf, eps 8/255): advbound against the reference (pyautoattack, Croce &
Hein's code) on the same model, images and budget, in one run.

  python -m benchmarks.autoattack                       # 1,000 CIFAR-10 test images, CPU
  python -m benchmarks.autoattack --images=200 --train_steps=300   # a quicker look

The model is a small CIFAR-10 CNN in PyTorch (the quickstart's size: two conv blocks and a
dense layer), trained here for --train_steps Adam steps on the first CIFAR-10 training part so
that it has something to lose; ours attacks it through `advbound.models.from_torch` (the same
weights; its logits are checked against torch's first). Pixels in [0, 1] for both. Prints the
robust accuracy and the seconds of each attack (ours: the second call), each implementation's
wall time (ours cold = with compilation, and warm = a second call), and the ratio
reference / ours.
"""

import functools
import os
import time

import jax
import numpy as np
from absl import app, flags

from advbound import models
from advbound.attacks.autoattack import autoattack

_IMAGES = flags.DEFINE_integer("images", 1000, "CIFAR-10 test images (the first, lossless ones)")
_STEPS = flags.DEFINE_integer("train_steps", 600, "Adam steps training the CNN in torch")
_DATA = flags.DEFINE_string("data", "/work/shared/data", "folder of the CIFAR-10 .npz files")
_BATCH = flags.DEFINE_integer("batch_size", 500, "images per batch (both implementations)")
_EPS = flags.DEFINE_float("epsilon", 8 / 255, "L-inf budget on [0, 1]")
_WARM = flags.DEFINE_bool("warm", True, "also time a second call of ours (compiled)")


def _timed(run, times, name, *args, **kwargs):
  t0 = time.time()
  out = run(*args, **kwargs)
  times[name] = times.get(name, 0.0) + time.time() - t0
  return out


def _cnn(torch):
  nn = torch.nn
  return nn.Sequential(
      nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
      nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
      nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
      nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Linear(256, 10))


def main(argv):
  del argv
  import torch  # pylint: disable=g-import-not-at-top
  from pyautoattack import AutoAttack  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  with np.load(os.path.join(_DATA.value, "cifar10_train_part1.npz")) as f:
    xtr = torch.from_numpy(f["x"].astype(np.float32) / 255).permute(0, 3, 1, 2)
    ytr = torch.from_numpy(f["y"].astype(np.int64))
  with np.load(os.path.join(_DATA.value, "cifar10_test.npz")) as f:
    x = f["x"][:_IMAGES.value].astype(np.float32) / 255  # NHWC in [0, 1]
    y = f["y"][:_IMAGES.value].astype(np.int32)
  net = _cnn(torch)
  opt = torch.optim.Adam(net.parameters(), lr=1e-3)
  t0 = time.time()
  for _ in range(_STEPS.value):
    idx = torch.randint(0, len(xtr), (128,))
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(xtr[idx]), ytr[idx]).backward()
    opt.step()
  net.eval()
  xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
  with torch.no_grad():
    torch_logits = net(xt).numpy()
  print(f"trained {_STEPS.value} steps in {time.time() - t0:.0f} s; clean accuracy "
        f"{np.mean(torch_logits.argmax(1) == y):.3f} on {len(y)} test images")
  fn = models.as_logits_fn(models.from_torch(net, input_shape=(3, 32, 32)))
  ours_logits = np.asarray(fn(x[:200]))
  print(f"imported logits vs torch: max |diff| {np.abs(ours_logits - torch_logits[:200]).max():.2e}")

  t0 = time.time()
  adversary = AutoAttack(net, norm="Linf", eps=_EPS.value, version="standard", device="cpu",
                         seed=0)
  ref_times = {}
  for attr, name in (("apgd", "apgd-ce"), ("apgd_targeted", "apgd-t"), ("fab", "fab-t"),
                     ("square", "square")):  # each attack's perturb, timed
    attack = getattr(adversary, attr)
    attack.perturb = functools.partial(_timed, attack.perturb, ref_times, name)
  x_ref, _ = adversary.run_standard_evaluation(xt, torch.from_numpy(y.astype(np.int64)),
                                               batch_size=_BATCH.value)
  ref_seconds = time.time() - t0
  with torch.no_grad():
    ref_robust = net(x_ref).argmax(1).numpy() == y

  t0 = time.time()
  ours = autoattack(fn, jax.random.key(0), x, y, norm="linf", epsilon=_EPS.value,
                    bounds=(0.0, 1.0), version="standard", batch_size=_BATCH.value)
  cold = time.time() - t0
  warm, again = None, ours
  if _WARM.value:
    t0 = time.time()
    again = autoattack(fn, jax.random.key(0), x, y, norm="linf", epsilon=_EPS.value,
                       bounds=(0.0, 1.0), version="standard", batch_size=_BATCH.value)
    warm = time.time() - t0

  n = len(y)
  print(f"\nAutoAttack standard, L-inf eps {_EPS.value:.5f}, {n} images, batch {_BATCH.value}")
  print(f"{'':>16} {'robust accuracy':>16} {'ours s':>8} {'reference s':>12}")
  for name, acc in ours.accuracy.items():
    print(f"{'ours ' + name:>16} {acc:8.3f} ({ours.robust_count[name]}/{n})"
          + (f" {again.seconds[name]:8.1f} {ref_times.get(name, 0.0):12.1f}"
             if name in again.seconds else ""))
  print(f"{'reference':>16} {ref_robust.mean():8.3f} ({int(ref_robust.sum())}/{n})")
  print(f"flags: {ours.flags or 'none'}")
  print(f"\nwall time: reference {ref_seconds:.1f} s; ours {cold:.1f} s cold"
        + (f", {warm:.1f} s warm" if warm is not None else ""))
  print(f"reference / ours: {ref_seconds / cold:.2f} (cold)"
        + (f", {ref_seconds / warm:.2f} (warm)" if warm is not None else ""))
  print(f"devices: {jax.devices()}; torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
  app.run(main)
