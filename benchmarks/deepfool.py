"""DeepFool speed and distortion: advbound vs Foolbox on the same model, images and settings.

  python -m benchmarks.deepfool --workdir=/tmp/qs --images=100   # quickstart natural MnistCNN

Foolbox runs eagerly through eagerpy: per iteration one forward and backward pass per candidate
class, each dispatched from Python. advbound runs one forward pass and one vmapped backward pass
over the candidate classes per iteration, with the iterations either in one compiled while_loop
(loop="device") or as one compiled step driven from Python (loop="host", the default on CPU).
For L2 and L-inf, prints the wall time of each loop (cold = with compilation, warm = compiled)
and of Foolbox, the speed-ups, success counts, median distortions (in the attack's norm), the
per-image agreement with Foolbox and between the two loops (--loop times only one); then what
one iteration's passes cost outside a loop. On CPU the gradients dominate for both libraries
alike (the MnistCNN's max-pool backward, XLA's select_and_scatter, costs several forward passes
per class), and inside the while_loop the backward convolutions miss XLA-CPU's top-level-only
Eigen canonicalization (see advbound/attacks/deepfool.py), which loop="host" avoids; removing
Python dispatch should matter more on an accelerator, where each pass is fast (not measured
here). The images are the first --images test digits the model classifies correctly; the model
is the quickstart natural MnistCNN under --workdir (trained there first if missing).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from advbound import metrics

from advbound.attacks.deepfool import deepfool
from advbound.studies.decision_boundary import attack_study
from configs import quickstart

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/qs", "quickstart workdir holding models/natural")
_IMAGES = flags.DEFINE_integer("images", 100, "correctly classified test images to attack")
_STEPS = flags.DEFINE_integer("steps", 50, "max_iterations (Foolbox: steps)")
_CANDIDATES = flags.DEFINE_integer("candidates", 10, "top-k classes considered")
_OVERSHOOT = flags.DEFINE_float("overshoot", 0.02, "overshoot")
_LOOP = flags.DEFINE_enum("loop", None, ["host", "device"],
                          "time only this deepfool loop; default both")


def _timed(f):
  """(f(), wall seconds, process CPU seconds over all threads)."""
  t0, c0 = time.perf_counter(), time.process_time()
  out = jax.block_until_ready(f())
  return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv):
  del argv
  import foolbox as fb  # dev extra
  splits, fns = attack_study.load_models(quickstart.get_config(), _WORKDIR.value,
                                         variants=["natural"])
  test, fn = splits["test"], fns["natural"]
  correct = np.flatnonzero(np.argmax(np.asarray(fn(test.images[:4 * _IMAGES.value])), -1)
                           == test.labels[:4 * _IMAGES.value])[:_IMAGES.value]
  x, y = test.images[correct], test.labels[correct]
  loops = (_LOOP.value,) if _LOOP.value else ("host", "device")
  print(f"device: {jax.devices()[0].device_kind}; MnistCNN (quickstart natural), {len(x)} "
        f"correctly classified test images; steps {_STEPS.value}, candidates "
        f"{_CANDIDATES.value}, overshoot {_OVERSHOOT.value}")
  for norm, measure, fb_attack in (("l2", metrics.l2, fb.attacks.L2DeepFoolAttack),
                                   ("linf", metrics.linf, fb.attacks.LinfDeepFoolAttack)):
    name = "L2" if norm == "l2" else "Linf"
    runs = {}  # loop -> (result, cold, warm, cold CPU, warm CPU)
    for loop in loops:
      kw = dict(bounds=(0.0, 1.0), norm=norm, overshoot=_OVERSHOOT.value,
                max_iterations=_STEPS.value, candidates=_CANDIDATES.value, loop=loop)
      _, cold, cold_cpu = _timed(lambda: deepfool(fn, x, y, **kw).adversarial)
      ours, warm, warm_cpu = _timed(lambda: deepfool(fn, x, y, **kw))
      runs[loop] = (ours, cold, warm, cold_cpu, warm_cpu)
    attack = fb_attack(steps=_STEPS.value, candidates=_CANDIDATES.value,
                       overshoot=_OVERSHOOT.value)
    (_, theirs, ok), fb_time, fb_cpu = _timed(lambda: attack(
        fb.JAXModel(fn, bounds=(0, 1)), jnp.asarray(x), jnp.asarray(y), epsilons=None))
    ok = np.asarray(ok)
    d_theirs = np.asarray(measure(np.asarray(theirs) - x))
    for loop, (ours, cold, warm, cold_cpu, warm_cpu) in runs.items():
      success = np.asarray(ours.success)
      d_ours = np.asarray(measure(np.asarray(ours.adversarial) - x))
      print(f"DeepFool-{name} advbound loop={loop}: {cold:.2f} s cold (with compilation), "
            f"{warm:.2f} s warm (CPU time {cold_cpu:.1f} s, {warm_cpu:.1f} s); "
            f"success {int(success.sum())}/{len(x)}; median {name} "
            f"{np.median(d_ours[success]):.4f}")
    print(f"DeepFool-{name} foolbox:  {fb_time:.2f} s (CPU time {fb_cpu:.1f} s); "
          f"success {int(ok.sum())}/{len(x)}; median {name} {np.median(d_theirs[ok]):.4f}")
    for loop, (ours, cold, warm, cold_cpu, warm_cpu) in runs.items():
      success = np.asarray(ours.success)
      d_ours = np.asarray(measure(np.asarray(ours.adversarial) - x))
      both = ok & success
      ratio = d_ours[both] / d_theirs[both]
      print(f"DeepFool-{name} loop={loop} vs foolbox: success sets differ on "
            f"{int(np.sum(ok != success))} images; per-image distortion ratio on the "
            f"{int(both.sum())} both fooled: median {np.median(ratio):.4f}, "
            f"{np.mean(np.abs(ratio - 1) < 0.01):.2f} within 1%; speed-up (foolbox / "
            f"advbound) {fb_time / cold:.1f}x cold, {fb_time / warm:.1f}x warm; in CPU time "
            f"{fb_cpu / cold_cpu:.1f}x cold, {fb_cpu / warm_cpu:.1f}x warm")
    if len(runs) == 2:
      (a, *_), (b, *_) = runs.values()
      print(f"DeepFool-{name} host vs device: success sets differ on "
            f"{int(np.sum(np.asarray(a.success) != np.asarray(b.success)))} images; max "
            f"|adversarial difference| "
            f"{float(np.max(np.abs(np.asarray(a.adversarial) - np.asarray(b.adversarial)))):.2g}")
  _pass_costs(fn, jnp.asarray(x), min(_CANDIDATES.value, 10))


def _pass_costs(fn, x, k, repeats=3):
  """What one iteration costs: a forward pass, and the k - 1 gradients of logit differences as
  one vmapped backward pass (ours) or as k - 1 eager value_and_grad calls (Foolbox's way)."""
  num_classes = jax.eval_shape(fn, x[:1]).shape[1]
  eye = jnp.eye(num_classes, dtype=x.dtype)
  cot = jnp.broadcast_to((eye[1:k] - eye[0])[:, None], (k - 1, len(x), num_classes))

  @jax.jit
  def forward(fn, x):
    return fn(x)

  @jax.jit
  def vmapped(fn, x, cot):
    _, vjp = jax.vjp(fn, x)
    return jax.vmap(vjp)(cot)[0]

  def eager():
    return [jax.value_and_grad(lambda z, c=c: jnp.sum(fn(z) * c))(x) for c in cot]

  costs = {}
  for name, f in (("forward", lambda: forward(fn, x)), ("vmapped", lambda: vmapped(fn, x, cot)),
                  ("eager", eager)):
    jax.block_until_ready(f())
    t0 = time.perf_counter()
    for _ in range(repeats):
      jax.block_until_ready(f())
    costs[name] = (time.perf_counter() - t0) / repeats * 1e3
  print(f"per iteration on {len(x)} images: forward {costs['forward']:.0f} ms; the {k - 1} "
        f"logit-difference gradients: one vmapped backward pass {costs['vmapped']:.0f} ms, "
        f"{k - 1} eager value_and_grad calls (Foolbox) {costs['eager']:.0f} ms")


if __name__ == "__main__":
  app.run(main)
