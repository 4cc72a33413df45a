"""Wall time of Cao & Gong's targeted attacks: N MNIST test images x their 9 other classes.

  python -m benchmarks.targeted --workdir=/tmp/qs --images=10 --attacks=T-JSMA,T-CW-Linf
  python -m benchmarks.targeted --images=100 --attacks=T-JSMA,T-CW-L0,T-CW-Linf   # the issue's set (GPU)

Each attack runs once on all N x 9 (image, target) pairs in compiled chunks of --batch_size,
with the settings of advbound.attacks.cao_gong (the released code's defaults) unless
--max_iterations overrides the CW attacks' iterations. Prints, per attack, the wall time
(compilation included: one compile per attack and chunk shape), seconds per image per target,
the success rate (checked against the model's prediction) and the median noise in the attack's
norm. The model is the quickstart natural
MnistCNN under --workdir (trained there first if missing).
"""

import time

import jax
import numpy as np
from absl import app, flags

from advbound.attacks import cao_gong
from advbound.studies.decision_boundary import attack_study
from configs import quickstart

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/qs", "quickstart workdir holding models/natural")
_IMAGES = flags.DEFINE_integer("images", 10, "test images (each attacked toward its 9 others)")
_ATTACKS = flags.DEFINE_list("attacks", ["T-JSMA", "T-CW-Linf", "T-CW-L0"], "targeted attacks")
_MAX_ITER = flags.DEFINE_integer("max_iterations", None, "override the CW attacks' iterations")
_BATCH = flags.DEFINE_integer("batch_size", 90, "pairs per compiled call")


def main(argv):
  del argv
  config = quickstart.get_config()
  data, fns = attack_study.load_models(config, _WORKDIR.value, variants=["natural"])
  fn, test = fns["natural"], data["test"]
  pred = np.asarray(jax.numpy.argmax(fn(test.images[:1000]), -1))
  idx = np.flatnonzero(pred == test.labels[:1000])[:_IMAGES.value]
  x, y = test.images[idx], test.labels[idx]
  k = test.num_classes
  xs = np.repeat(x, k - 1, 0)
  ts = np.concatenate([[t for t in range(k) if t != yi] for yi in y]).astype(np.int32)
  ys = np.repeat(y, k - 1)
  print(f"device: {jax.default_backend()}; quickstart natural MnistCNN; {len(idx)} images x "
        f"{k - 1} targets = {len(xs)} pairs; batch {_BATCH.value}")
  for name in _ATTACKS.value:
    overrides = {"batch_size": _BATCH.value}
    if _MAX_ITER.value and "CW" in name:
      overrides["max_iterations"] = _MAX_ITER.value
    t0 = time.time()
    r = cao_gong.run(name, fn, xs, ys, bounds=test.bounds, num_classes=k, target=ts,
                     **overrides)
    seconds = time.time() - t0
    ok = np.asarray(r.success)
    agrees = np.all((np.argmax(np.asarray(fn(np.asarray(r.adversarial))), -1) == ts) == ok)
    noise = np.asarray(r.distortion[cao_gong.norm(name)])
    median = float(np.median(noise[ok])) if ok.any() else float("nan")
    print(f"{name}: {seconds:.1f} s for {len(xs)} pairs = {seconds / len(xs):.2f} s per image "
          f"per target (compilation included); success {ok.mean():.3f} (model agrees: "
          f"{agrees}); median {cao_gong.norm(name)} {median:.4g}; settings "
          f"{ {**{k_: v for k_, v in cao_gong.settings(name, test.bounds).items() if k_ != 'epsilons'}, **overrides} }")


if __name__ == "__main__":
  app.run(main)
