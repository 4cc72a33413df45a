"""Boundary search cost: a reference loop vs `scan` vs `fast`, on the same model and images.

  python -m benchmarks.boundary --workdir=/tmp/qs            # quickstart MnistCNN, CPU
  python -m benchmarks.boundary --wrn_data=PATH.npz          # + WRN-32-10 on CIFAR-10 (GPU)

Prints seconds per image and model evaluations per direction for
  (a) a reference loop written like the released code: per image, per magnitude, the batch of
      directions still without a boundary is built in NumPy and sent to the jitted model (padded
      to a power of two so that it compiles a handful of shapes, not one per size),
  (b) boundary.search(method="scan"), (c) boundary.search(method="fast"),
the agreement of fast with scan, and the efficiency of (b): probe evaluations per second divided
by the plain jitted forward throughput of the model at the same batch size.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from advbound import boundary, data, models, training

from advbound.directions import random_orthogonal
from advbound.studies.decision_boundary import attack_study

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/qs", "quickstart workdir (trained if missing)")
_VARIANT = flags.DEFINE_string("variant", "natural", "quickstart model variant")
_IMAGES = flags.DEFINE_integer("images", 4, "test images")
_REF_IMAGES = flags.DEFINE_integer("reference_images", 2, "images for the reference loop")
_BATCH = flags.DEFINE_integer("batch_size", 4096, "probes per compiled call")
_WRN = flags.DEFINE_string("wrn_data", None, "CIFAR-10 .npz: also time WRN-32-10, 1,000 "
                           "directions (GPU); it is first trained on the file's seeded train split")
_WRN_IMAGES = flags.DEFINE_integer("wrn_images", 10, "CIFAR-10 images of the file's test split")
_WRN_TRAIN = flags.DEFINE_integer("wrn_train_steps", 300, "training steps before timing")
_WRN_BATCH = flags.DEFINE_integer("wrn_batch_size", 2048, "probes per compiled call for WRN")


def _reference(fn, x, directions, step, levels, bounds):
  """Per image, per magnitude: the still-running directions, sent to the jitted model."""
  forward = jax.jit(lambda p: jnp.argmax(fn(p), -1))
  d = np.asarray(directions)
  evaluations = 0
  for i in range(len(x)):
    c = int(forward(x[i:i + 1])[0])
    running = np.arange(len(d))
    for k in range(1, levels + 1):
      if len(running) == 0:
        break
      probes = np.clip(x[i] + np.float32(k * step) * d[running], *bounds)
      size = 1 << (len(running) - 1).bit_length()
      padded = np.concatenate([probes, np.zeros((size - len(probes),) + probes.shape[1:],
                                                probes.dtype)])
      cls = np.asarray(forward(padded))[:len(running)]
      evaluations += len(running)
      running = running[cls == c]
  return evaluations


def _forward_throughput(fn, shape, batch, repeats=5):
  forward = jax.jit(lambda p: jnp.argmax(fn(p), -1))
  p = jax.random.uniform(jax.random.key(0), (batch,) + shape)
  forward(p).block_until_ready()
  t0 = time.perf_counter()
  for _ in range(repeats):
    forward(p).block_until_ready()
  return repeats * batch / (time.perf_counter() - t0)


def _compare(name, fn, x, directions, step, max_distance, bounds, batch, ref_images):
  n, m = len(x), len(directions)
  levels = int(np.floor(max_distance / step + 1e-6))
  out = {}
  for method in ("scan", "fast"):
    kw = dict(step=step, max_distance=max_distance, bounds=bounds, method=method,
              batch_size=batch)
    boundary.search(fn, x[:1], directions, **kw)  # compile (shape of one image differs: warm
    t0 = time.perf_counter()                       # the n-image shape below too)
    boundary.search(fn, x, directions, **kw)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = boundary.search(fn, x, directions, **kw)
    out[method] = (r, time.perf_counter() - t0, cold)
  scan, fast = out["scan"][0], out["fast"][0]
  same = (np.asarray(scan.distance) == np.asarray(fast.distance)) & (
      np.asarray(scan.adjacent) == np.asarray(fast.adjacent))
  lines = [f"{name}: {n} images x {m} directions x {levels} levels, batch {batch}, "
           f"device {jax.devices()[0].device_kind}"]
  if ref_images:
    _reference(fn, x[:1], directions, step, levels, bounds)  # compile its shapes
    t0 = time.perf_counter()
    ref_evals = _reference(fn, x[:ref_images], directions, step, levels, bounds)
    ref_time = (time.perf_counter() - t0) / ref_images
    lines.append(f"  (a) reference loop: {ref_time:.3f} s per image, "
                 f"{ref_evals / (ref_images * m):.2f} evaluations per direction")
  for method in ("scan", "fast"):
    r, warm, cold = out[method]
    evals = float(np.sum(r.evaluations))
    lines.append(f"  ({'b' if method == 'scan' else 'c'}) {method}: {warm / n:.3f} s per image "
                 f"({cold / n:.3f} with compilation), {evals / (n * m):.2f} evaluations per "
                 f"direction, {evals / warm:,.0f} probes/s")
  throughput = _forward_throughput(fn, x.shape[1:], batch)
  scan_rate = float(np.sum(scan.evaluations)) / out["scan"][1]
  lines.append(f"  plain jitted forward at batch {batch}: {throughput:,.0f} inputs/s; "
               f"efficiency of scan {scan_rate / throughput:.2f}")
  ev_s, ev_f = float(np.sum(scan.evaluations)), float(np.sum(fast.evaluations))
  lines.append(f"  fast vs scan: {ev_s / ev_f:.2f}x fewer evaluations, "
               f"{out['scan'][1] / out['fast'][1]:.2f}x faster; same answer on "
               f"{same.mean():.4%} of {same.size} directions; boundary found on "
               f"{np.isfinite(np.asarray(scan.distance)).mean():.1%}")
  if ref_images:
    lines.append(f"  fast vs reference loop: {ref_time / (out['fast'][1] / n):.1f}x faster")
  print("\n".join(lines), flush=True)


def main(argv):
  del argv
  from configs import quickstart
  splits, fns = attack_study.load_models(quickstart.get_config(), _WORKDIR.value,
                                         variants=[_VARIANT.value])
  test, fn = splits["test"], fns[_VARIANT.value]
  d = random_orthogonal(jax.random.key(0), 784, (28, 28, 1), both_signs=True)
  _compare(f"MnistCNN ({_VARIANT.value})", fn, test.images[:_IMAGES.value], d, 0.02, 0.5,
           (0.0, 1.0), _BATCH.value, _REF_IMAGES.value)
  if _WRN.value:
    _wrn()


def _wrn():
  from configs import cifar
  config = cifar.get_config()
  fit = data.load("cifar10", source="npz", path=_WRN.value, split="train")
  cifar10 = data.load("cifar10", source="npz", path=_WRN.value, split="test")
  cfg = config.models.natural
  cfg.num_steps, cfg.log_every, cfg.checkpoint_every = _WRN_TRAIN.value, 100, 10 ** 9
  model = training.train(fit, config.model, cfg, "/tmp/wrn_benchmark")
  fn = models.as_logits_fn(model)
  x = cifar10.images[:_WRN_IMAGES.value]
  d = random_orthogonal(jax.random.key(0), 1000, (32, 32, 3))
  _compare(f"WRN-32-10 ({_WRN_TRAIN.value} training steps)", fn, x, d, 2.0, 126.0,
           (0.0, 255.0), _WRN_BATCH.value, 0)


if __name__ == "__main__":
  app.run(main)
