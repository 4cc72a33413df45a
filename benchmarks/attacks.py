"""CW-L2 speed and distortion: advbound vs Foolbox on the same model, images and settings.

  python -m benchmarks.attacks --workdir=/tmp/qs              # quickstart natural MnistCNN
  python -m benchmarks.attacks --steps=1000 --images=100      # the issue's full setting

Foolbox runs eagerly through eagerpy (each iteration dispatched from Python); advbound runs
each binary-search step as one compiled while_loop (loop="device") or one jitted iteration
driven from Python (loop="host", the CPU default); both are timed. Prints the wall time of each (ours cold =
with compilation, warm = compiled), the ratio, both median L2 distortions, and OPTMARGIN seconds per image. The model is the quickstart natural
MnistCNN under --workdir (trained there first if missing).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from advbound import data, metrics, models

from advbound.attacks import carlini_wagner_l2, optmargin
from advbound.studies.decision_boundary import attack_study
from configs import quickstart

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/qs", "quickstart workdir holding models/natural")
_IMAGES = flags.DEFINE_integer("images", 100, "batch of test images")
_STEPS = flags.DEFINE_integer("steps", 100, "Adam iterations per binary-search step")
_SEARCH = flags.DEFINE_integer("binary_search_steps", 4, "binary-search steps")
_LR = flags.DEFINE_float("learning_rate", 0.2, "Adam learning rate (He et al.'s MNIST value)")
_C0 = flags.DEFINE_float("initial_const", 0.2, "initial c (He et al.'s MNIST value)")
_OPTMARGIN_IMAGES = flags.DEFINE_integer("optmargin_images", 10, "images for OPTMARGIN timing")
_DESIGN_ONLY = flags.DEFINE_bool("design_only", False, "only the while_loop vs thin-loop "
                                  "comparison (and WRN-32-10 if --wrn_data)")
_WRN = flags.DEFINE_string("wrn_data", None, "if set: CIFAR-10 .npz (test split) for the "
                           "WRN-32-10 OPTMARGIN timing (GPU); skipped when unset")
_WRN_IMAGES = flags.DEFINE_integer("wrn_images", 100, "images in the WRN-32-10 OPTMARGIN call")
_WRN_STEPS = flags.DEFINE_integer("wrn_steps", 20, "Adam iterations timed for WRN-32-10 "
                                  "(extrapolated to the preset's 4 x 1000)")
_WRN_CHUNK = flags.DEFINE_integer("wrn_chunk", 25, "images per compiled WRN call (x20 members)")


def _foolbox_found(adv, y, fn):
  """Foolbox returns an all-zero image where CW found nothing (and may count it a success when
  the blank image is misclassified); count only non-blank misclassified outputs."""
  adv = np.asarray(adv)
  blank = ~np.any(adv.reshape(len(adv), -1) != 0, axis=1)
  return ~blank & (np.argmax(np.asarray(fn(adv)), -1) != y)


def _median_l2(adv, x, ok):
  d = np.asarray(metrics.l2(np.asarray(adv) - x))
  return float(np.median(d[np.asarray(ok, bool)])) if np.any(ok) else float("nan")


def main(argv):
  del argv
  import foolbox as fb  # dev extra
  splits, fns = attack_study.load_models(quickstart.get_config(), _WORKDIR.value,
                                         variants=["natural"])
  test, fn = splits["test"], fns["natural"]
  x, y = test.images[:_IMAGES.value], test.labels[:_IMAGES.value]
  if _DESIGN_ONLY.value:
    _loop_design(fn, x, y)
    if _WRN.value:
      _wrn_optmargin()
    return
  settings = dict(binary_search_steps=_SEARCH.value, learning_rate=_LR.value,
                  initial_const=_C0.value, abort_early=True)

  timings = {}
  for loop in ("host", "device"):  # both loop forms of ours, cold then warm
    t0 = time.perf_counter()
    ours = carlini_wagner_l2(fn, x, y, bounds=(0.0, 1.0), max_iterations=_STEPS.value,
                             loop=loop, **settings)
    jax.block_until_ready(ours.adversarial)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = carlini_wagner_l2(fn, x, y, bounds=(0.0, 1.0), max_iterations=_STEPS.value,
                             loop=loop, **settings)
    jax.block_until_ready(ours.adversarial)
    timings[loop] = (cold, time.perf_counter() - t0)
  default = "host" if jax.default_backend() == "cpu" else "device"
  ours_cold, ours_warm = timings[default]
  t0 = time.perf_counter()
  batch = carlini_wagner_l2(fn, x, y, bounds=(0.0, 1.0), max_iterations=_STEPS.value,
                            abort_early_scope="batch", **settings)
  jax.block_until_ready(batch.adversarial)
  batch_time = time.perf_counter() - t0

  attack = fb.attacks.L2CarliniWagnerAttack(
      binary_search_steps=_SEARCH.value, steps=_STEPS.value, stepsize=_LR.value,
      initial_const=_C0.value, abort_early=True)
  t0 = time.perf_counter()
  _, theirs, _ = attack(fb.JAXModel(fn, bounds=(0, 1)), jnp.asarray(x), jnp.asarray(y),
                        epsilons=None)
  jax.block_until_ready(theirs)
  theirs_time = time.perf_counter() - t0
  ok = _foolbox_found(theirs, y, fn)
  both = ok & np.asarray(ours.success)

  n = _OPTMARGIN_IMAGES.value
  t0 = time.perf_counter()
  om = optmargin(fn, jax.random.key(0), x[:n], y[:n], epsilon=0.3, bounds=(0.0, 1.0),
                 binary_search_steps=_SEARCH.value, max_iterations=_STEPS.value,
                 learning_rate=0.2, initial_const=0.2)
  jax.block_until_ready(om.adversarial)
  om_time = time.perf_counter() - t0

  print(f"device: {jax.devices()[0].device_kind}; MnistCNN, {len(x)} images, "
        f"{_SEARCH.value} binary-search steps x {_STEPS.value} iterations, lr {_LR.value}, "
        f"c0 {_C0.value}, abort early")
  print(f"CW-L2 advbound: {ours_cold:.1f} s cold (with compilation), {ours_warm:.1f} s warm; "
        f"success {np.mean(ours.success):.2f}; median L2 {_median_l2(ours.adversarial, x, ours.success):.4f}")
  print(f"CW-L2 advbound, batch abort-early (as Foolbox): {batch_time:.1f} s (with compilation); "
        f"success {np.mean(batch.success):.2f}; "
        f"median L2 {_median_l2(batch.adversarial, x, batch.success):.4f}")
  print(f"CW-L2 foolbox:  {theirs_time:.1f} s; success {np.mean(ok):.2f}; "
        f"median L2 {_median_l2(theirs, x, ok):.4f}")
  print(f"median L2 on the {int(both.sum())} images both found: advbound "
        f"{_median_l2(ours.adversarial, x, both):.4f}, foolbox {_median_l2(theirs, x, both):.4f}")
  for loop, (cold, warm) in timings.items():
    print(f"speed-up (foolbox / advbound loop={loop}{' (default here)' if loop == default else ''}): "
          f"{theirs_time / cold:.2f}x cold, {theirs_time / warm:.2f}x warm "
          f"({cold:.1f} s cold, {warm:.1f} s warm)")
  print(f"OPTMARGIN (20 members, lr 0.2, c0 0.2): {om_time / n:.2f} s per image over {n} "
        f"images (with compilation); success {np.mean(om.success):.2f}")
  _loop_design(fn, x, y)
  if _WRN.value:
    _wrn_optmargin()


def _loop_design(fn, x, y, iterations=100):
  """The issue's design question: the same Adam iterations (no abort early) inside one compiled
  while_loop (ours) vs one jitted iteration called from a thin Python loop."""
  import optax
  kw = dict(bounds=(0.0, 1.0), binary_search_steps=1, max_iterations=iterations,
            learning_rate=0.2, initial_const=0.2, abort_early=False, loop="device")
  jax.block_until_ready(carlini_wagner_l2(fn, x, y, **kw).adversarial)  # compile
  t0 = time.perf_counter()
  jax.block_until_ready(carlini_wagner_l2(fn, x, y, **kw).adversarial)
  fused = time.perf_counter() - t0
  tx = optax.adam(0.2)
  x0 = jnp.asarray(x)

  def loss(w):
    xp = (jnp.tanh(w) + 1) / 2
    logits = fn(xp)
    onehot = jax.nn.one_hot(y, logits.shape[-1], dtype=bool)
    real = jnp.sum(jnp.where(onehot, logits, 0.0), -1)
    other = jnp.max(jnp.where(onehot, -jnp.inf, logits), -1)
    return jnp.sum(jnp.sum(jnp.square(xp - x0).reshape(len(x), -1), -1)
                   + 0.2 * jnp.maximum(real - other, 0.0))

  @jax.jit
  def step(w, state):
    g = jax.grad(loss)(w)
    updates, state = tx.update(g, state)
    return w + updates, state

  w = jnp.arctanh((x0 - 0.5) * 2 * 0.999999)
  state = tx.init(w)
  jax.block_until_ready(step(w, state))  # compile
  t0 = time.perf_counter()
  for _ in range(iterations):
    w, state = step(w, state)
  jax.block_until_ready(w)
  thin = time.perf_counter() - t0
  print(f"{iterations} CW iterations, {len(x)} images, no abort early: one while_loop "
        f"{fused:.2f} s ({fused / iterations * 1e3:.1f} ms/iteration, with the success and "
        f"best-so-far bookkeeping) vs jitted step from a Python loop {thin:.2f} s "
        f"({thin / iterations * 1e3:.1f} ms/iteration); ratio {fused / thin:.2f}")


def _wrn_optmargin():
  """OPTMARGIN on WRN-32-10 (random weights: the cost per iteration does not depend on them),
  CIFAR preset (eps 8, lr 0.01, c0 1), abort early off so every iteration runs; times
  one binary-search step of --wrn_steps iterations after a compiling call and extrapolates
  to 4 x 1000 iterations."""
  from flax import nnx
  test = data.load("cifar10", source="npz", path=_WRN.value, split="test")
  n = _WRN_IMAGES.value
  x, y = test.images[:n], test.labels[:n]
  model = models.build("wide_resnet", rngs=nnx.Rngs(0), depth=32, width=10)
  fn = models.as_logits_fn(model)
  kw = dict(epsilon=8.0, bounds=(0.0, 255.0), binary_search_steps=1,
            max_iterations=_WRN_STEPS.value, learning_rate=0.01, initial_const=1.0,
            abort_early=False, batch_size=_WRN_CHUNK.value)
  t0 = time.perf_counter()
  jax.block_until_ready(optmargin(fn, jax.random.key(0), x, y, **kw).adversarial)
  cold = time.perf_counter() - t0
  t0 = time.perf_counter()
  jax.block_until_ready(optmargin(fn, jax.random.key(0), x, y, **kw).adversarial)
  warm = time.perf_counter() - t0
  per_iter = warm / _WRN_STEPS.value
  print(f"WRN-32-10 OPTMARGIN, {n} CIFAR-10 images x 20 members, chunks of {_WRN_CHUNK.value}: "
        f"{_WRN_STEPS.value} iterations in {warm:.2f} s warm ({cold:.1f} s with compilation); "
        f"{per_iter * 1e3:.1f} ms per iteration for the batch; 4 x 1000 iterations = "
        f"{per_iter * 4000 / n:.2f} s per image (paper: 8 min per image on a GTX 1080)")


if __name__ == "__main__":
  app.run(main)
