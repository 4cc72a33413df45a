"""Region classification throughput vs the plain jitted forward pass of the same model.

  python -m benchmarks.region --workdir=/tmp/qs

Prints samples classified per second by region.classify (noise drawn per sample on the device,
clipped, classified, votes counted) and inputs per second of the jitted forward pass + argmax at
the same batch size, and their ratio (goal >= 0.9), e.g. for 20 images x 100 samples and for
1,600 x 100:

  python -m benchmarks.region --workdir=/tmp/qs --images=20
  python -m benchmarks.region --workdir=/tmp/qs --images=1600
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from advbound import region
from advbound.runtime import sharding

from advbound.studies.decision_boundary import attack_study

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/qs", "quickstart workdir (trained if missing)")
_IMAGES = flags.DEFINE_integer("images", 160, "test images")
_SAMPLES = flags.DEFINE_integer("samples", 100, "samples per image")
_BATCH = flags.DEFINE_integer("batch_size", 4000, "model inputs per compiled call")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed repetitions")


def main(argv):
  del argv
  from configs import quickstart
  splits, fns = attack_study.load_models(quickstart.get_config(), _WORKDIR.value,
                                         variants=["natural"])
  test, fn = splits["test"], fns["natural"]
  # the test split repeated when --images exceeds it (throughput does not depend on the pixels)
  x = test.images[np.arange(_IMAGES.value) % len(test.images)]
  kw = dict(radius=0.3, num_samples=_SAMPLES.value, bounds=(0.0, 1.0),
            batch_size=_BATCH.value)
  forward = jax.jit(lambda p: jnp.argmax(fn(p), -1))
  p = jax.random.uniform(jax.random.key(0), (_BATCH.value,) + x.shape[1:])
  calls = max(1, len(x) * _SAMPLES.value // _BATCH.value)
  jax.block_until_ready(region.classify(fn, jax.random.key(0), x, **kw))  # compile both
  forward(p).block_until_ready()
  ratios, ours_rates, plain_rates = [], [], []
  for i in range(_REPEATS.value):  # alternated, so a change of machine load hits both
    t0 = time.perf_counter()
    jax.block_until_ready(region.classify(fn, jax.random.key(i), x, **kw))
    ours_rates.append(len(x) * _SAMPLES.value / (time.perf_counter() - t0))
    t0 = time.perf_counter()
    for _ in range(calls):
      forward(p).block_until_ready()
    plain_rates.append(calls * _BATCH.value / (time.perf_counter() - t0))
    ratios.append(ours_rates[-1] / plain_rates[-1])
  ours, plain = float(np.median(ours_rates)), float(np.median(plain_rates))
  print(f"{sharding.describe()}; MnistCNN, {len(x)} images x "
        f"{_SAMPLES.value} samples, batch {_BATCH.value}")
  print(f"region.classify: {ours:,.0f} samples/s; plain jitted forward: {plain:,.0f} inputs/s; "
        f"ratio (median of {_REPEATS.value} alternated runs) {float(np.median(ratios)):.2f}, "
        f"each {', '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
  app.run(main)
