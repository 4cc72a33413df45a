"""Training throughput of a config's model variants, float32 against bfloat16 compute.

  python -m benchmarks.train_throughput --config=configs/cifar.py          # WRN-32-10 (GPU)
  python -m benchmarks.train_throughput --config=configs/cifar_fast.py     # ResNet-9, PreAct-18
  python -m benchmarks.train_throughput --config=configs/cifar_fast.py --steps=3 \
      --config.model.width=4 --config.models.natural.model.width=4      # a CPU smoke run

For each variant (natural, PGD- or FGSM-trained: the config's own training step, attack
included) and each compute dtype, the jitted train step of `advbound.training` runs on random
batches of the data set's shape: a few warm-up steps (compilation), then --steps timed steps.
Prints examples per second, the ratio bfloat16 / float32 taken in this run, and how long the
variant's `num_steps` would take at that rate (training alone: no data loading, checkpoints or
evaluation).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from advbound import data as data_lib, models, training
from advbound.studies import variants as variants_lib

_CONFIG = config_flags.DEFINE_config_file("config", "configs/cifar.py", "config")
_VARIANTS = flags.DEFINE_list("variants", None, "model variants (default: all)")
_DTYPES = flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "compute dtypes")
_STEPS = flags.DEFINE_integer("steps", 20, "timed steps")
_WARMUP = flags.DEFINE_integer("warmup", 2, "untimed steps first (compilation)")


def throughput(config, variant: str, dtype: str, steps: int, warmup: int) -> float:
  """Examples per second of `variant`'s train step computing in `dtype`."""
  cfg = config.models[variant]
  info = data_lib.INFO[config.data.name]
  model = training.build_model(variants_lib.variant_model(config, variant), cfg.seed)
  model.train()
  tx = training.make_optimizer(cfg)
  state = training.init_state(model, tx)
  graphdef = nnx.graphdef(models.with_compute_dtype(model, dtype))
  step = training.make_train_step(graphdef, tx, cfg, info.bounds)
  rng = np.random.default_rng(0)
  low, high = info.bounds
  batch = {"image": jnp.asarray(rng.uniform(low, high, (cfg.batch_size,) + info.image_shape),
                                jnp.float32),
           "label": jnp.asarray(rng.integers(0, info.num_classes, cfg.batch_size), jnp.int32)}
  key = jax.random.key(0)
  for i in range(warmup):
    state, metrics = step(state, batch, jax.random.fold_in(key, i))
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  for i in range(steps):
    state, metrics = step(state, batch, jax.random.fold_in(key, warmup + i))
  jax.block_until_ready(metrics)
  return steps * cfg.batch_size / (time.perf_counter() - t0)


def main(argv):
  del argv
  config = _CONFIG.value
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"{len(jax.devices())} device(s); {_STEPS.value} timed steps")
  for v in variants_lib.variant_names(config, _VARIANTS.value):
    cfg = config.models[v]
    arch = variants_lib.variant_model(config, v).to_dict()
    kind = (f"attack {cfg.attack.num_steps} step(s) of {cfg.attack.step_size}, eps "
            f"{cfg.attack.epsilon}" if cfg.adversarial else "natural")
    print(f"\n== {v}: {arch}, batch {cfg.batch_size}, {kind}")
    rates = {}
    for dtype in _DTYPES.value:
      rates[dtype] = throughput(config, v, dtype, _STEPS.value, _WARMUP.value)
      total = cfg.num_steps * cfg.batch_size / rates[dtype]
      print(f"{dtype:>9}: {rates[dtype]:10.1f} examples/s; {cfg.num_steps} steps in about "
            f"{training.hms(total)}")
    if "float32" in rates and "bfloat16" in rates:
      print(f"bfloat16 / float32 throughput: {rates['bfloat16'] / rates['float32']:.2f}")


if __name__ == "__main__":
  app.run(main)
