"""CW-L2 speed and distortion: advbound vs Foolbox on the same model, images and settings.

  python -m benchmarks.attacks --workdir=/tmp/qs              # quickstart natural MnistCNN
  python -m benchmarks.attacks --steps=1000 --images=100      # the issue's full setting

Foolbox runs eagerly through eagerpy (each iteration dispatched from Python); advbound runs
each binary-search step as one compiled while_loop. Prints the wall time of each (ours cold =
with compilation, warm = compiled), the ratio, both median L2 distortions, and OPTMARGIN seconds per image. The model is the quickstart natural
MnistCNN under --workdir (trained there first if missing).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from advbound import data, metrics, models, train
from advbound.attacks import carlini_wagner_l2, optmargin
from configs import quickstart

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/qs", "quickstart workdir holding models/natural")
_IMAGES = flags.DEFINE_integer("images", 100, "batch of test images")
_STEPS = flags.DEFINE_integer("steps", 100, "Adam iterations per binary-search step")
_SEARCH = flags.DEFINE_integer("binary_search_steps", 4, "binary-search steps")
_LR = flags.DEFINE_float("learning_rate", 0.2, "Adam learning rate (He et al.'s MNIST value)")
_C0 = flags.DEFINE_float("initial_const", 0.2, "initial c (He et al.'s MNIST value)")
_OPTMARGIN_IMAGES = flags.DEFINE_integer("optmargin_images", 10, "images for OPTMARGIN timing")


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
  config = quickstart.get_config()
  train_data = data.load("mnist", source="embedded", split="train")
  test = data.load("mnist", source="embedded", split="test")
  model = train.train(train_data, config.model, config.models.natural,
                      f"{_WORKDIR.value}/models/natural")
  fn = models.as_logits_fn(model)
  x, y = test.images[:_IMAGES.value], test.labels[:_IMAGES.value]
  settings = dict(binary_search_steps=_SEARCH.value, learning_rate=_LR.value,
                  initial_const=_C0.value, abort_early=True)

  t0 = time.perf_counter()
  ours = carlini_wagner_l2(fn, x, y, bounds=(0.0, 1.0), max_iterations=_STEPS.value, **settings)
  jax.block_until_ready(ours.adversarial)
  ours_cold = time.perf_counter() - t0
  t0 = time.perf_counter()
  ours = carlini_wagner_l2(fn, x, y, bounds=(0.0, 1.0), max_iterations=_STEPS.value, **settings)
  jax.block_until_ready(ours.adversarial)
  ours_warm = time.perf_counter() - t0

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
  print(f"CW-L2 foolbox:  {theirs_time:.1f} s; success {np.mean(ok):.2f}; "
        f"median L2 {_median_l2(theirs, x, ok):.4f}")
  print(f"median L2 on the {int(both.sum())} images both found: advbound "
        f"{_median_l2(ours.adversarial, x, both):.4f}, foolbox {_median_l2(theirs, x, both):.4f}")
  print(f"speed-up (foolbox / advbound): {theirs_time / ours_cold:.2f}x cold, "
        f"{theirs_time / ours_warm:.2f}x warm")
  print(f"OPTMARGIN (20 members, lr 0.2, c0 0.2): {om_time / n:.2f} s per image over {n} "
        f"images (with compilation); success {np.mean(om.success):.2f}")


if __name__ == "__main__":
  app.run(main)
