"""The memory check: XLA's memory analysis of the kernels a study's batch sizes make, against
what the device offers, before any work.

Each `Stage` declares the settings that size its kernels (`Stage.kernels`: (setting, kind)):
- "train": a training step of every trained variant at `models.<variant>.batch_size` (the
  setting "models.*.batch_size"), with its optimizer and adversarial training as configured;
- "gradient": the input gradient of the cross-entropy at that many rows (an attack iteration,
  an evaluation under attack), for every variant's model;
- "forward": the logits at that many rows (boundary probes, region votes, embeddings).

Each is compiled at abstract shapes (nothing is trained or loaded: the models are built with
`nnx.eval_shape`) and its `memory_analysis()` read: the peak is the arguments, outputs and
temporaries less what aliases. The device offers `bytes_limit` of its memory statistics (GPU,
TPU), or the host's physical memory on CPU. A kernel over the limit is a problem naming its
setting: `check(..., raise_on_excess=True)` raises `MemoryCheckError` with every one.

Imported variants (weights read from files) are left out (their kernels are not built without
loading them); so are stages' smaller kernels (a detector's, a kNN's), below the model's.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import optax
from absl import logging
from flax import nnx

KINDS = ("train", "gradient", "forward")


class MemoryCheckError(ValueError):
  """A stage's kernel needs more memory than the device offers."""


def available() -> tuple[int | None, str]:
  """(bytes the first device offers, where the figure comes from)."""
  device = jax.devices()[0]
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except
    stats = None
  if stats and stats.get("bytes_limit"):
    return int(stats["bytes_limit"]), f"{device.device_kind} bytes_limit"
  try:
    return (int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")),
            "host physical memory")
  except (ValueError, OSError, AttributeError):
    return None, "unknown"


def peak_bytes(compiled) -> int | None:
  """The peak device memory of a compiled executable (XLA's memory analysis), or None."""
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if m is None:
    return None
  peak = int(getattr(m, "peak_memory_in_bytes", 0) or 0)
  total = int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
              - m.alias_size_in_bytes)
  return max(peak, total)


def _setting(config, path: str):
  node = config
  for key in path.split("."):
    if node is None or key not in node:
      return None
    node = node[key]
  return node


def _abstract_model(model_cfg, seed: int):
  from advbound.training.step import build_model  # pylint: disable=g-import-not-at-top
  return nnx.eval_shape(lambda: build_model(model_cfg, seed))


def _model_kernel(model_cfg, seed, rows: int, image_shape, kind: str):
  """The compiled forward or input-gradient kernel of an eval-mode model at `rows` rows."""
  model = _abstract_model(model_cfg, seed)
  model.eval()
  graphdef, state = nnx.split(model)
  x = jax.ShapeDtypeStruct((rows,) + tuple(image_shape), jnp.float32)
  y = jax.ShapeDtypeStruct((rows,), jnp.int32)

  def logits(state, x):
    return nnx.merge(graphdef, state)(x).astype(jnp.float32)

  if kind == "forward":
    return jax.jit(logits).lower(state, x).compile()

  def grad(state, x, y):
    loss = lambda z: optax.softmax_cross_entropy_with_integer_labels(logits(state, z), y).sum()
    return jax.grad(loss)(x)

  return jax.jit(grad).lower(state, x, y).compile()


def _train_kernel(model_cfg, train_cfg, image_shape, num_classes, bounds):
  """The compiled training step of a variant at its batch size."""
  from advbound.training.optimizers import make_optimizer  # pylint: disable=g-import-not-at-top
  from advbound.training.step import init_state, make_train_step  # pylint: disable=g-import-not-at-top
  tx = make_optimizer(train_cfg)
  model = _abstract_model(model_cfg, train_cfg.seed)
  model.train()
  graphdef = nnx.graphdef(model)
  state = jax.eval_shape(lambda m: init_state(m, tx), model)
  b = int(train_cfg.batch_size)
  batch = {"image": jax.ShapeDtypeStruct((b,) + tuple(image_shape), jnp.float32),
           "label": jax.ShapeDtypeStruct((b,), jnp.int32)}
  if train_cfg.get("distill_from"):
    batch["soft"] = jax.ShapeDtypeStruct((b, num_classes), jnp.float32)
  key = jax.eval_shape(lambda: jax.random.key(0))
  step = make_train_step(graphdef, tx, train_cfg, bounds)
  return step.lower(state, batch, key).compile()


def check(study, config, *, variants: Sequence[str] | None = None, skip: Sequence[str] = (),
          raise_on_excess: bool = True) -> dict:
  """Compiles the kernels every stage of `study` declares (except those in `skip`, e.g. stages
  complete in the workdir) for every trained variant, and compares their peaks with the
  device's memory.

  Returns:
    {"available_bytes", "available_source", "peak_bytes", "peak_setting", "kernels": [{stage,
    setting, kind, rows, variant, peak_bytes, compile_seconds}], "stages": {stage: {peak_bytes,
    setting}}, "problems": [...], "notes": [...]}.

  Raises:
    MemoryCheckError: (raise_on_excess) a kernel's peak exceeds the device's memory; the
      message names each such stage, setting, value and kernel, and the figures.
  """
  from advbound import data as data_lib  # pylint: disable=g-import-not-at-top
  from advbound.studies import variants as variants_lib  # pylint: disable=g-import-not-at-top
  limit, source = available()
  out = {"available_bytes": limit, "available_source": source, "peak_bytes": None,
         "peak_setting": None, "kernels": [], "stages": {}, "problems": [], "notes": []}
  if "data" not in config or "models" not in config:
    return out
  info = data_lib.INFO.get(config.data.name)
  if info is None:
    out["notes"].append(f"data set {config.data.name!r} has no known image shape: no check")
    return out
  names = variants_lib.variant_names(config, variants)
  imported = [v for v in names if variants_lib.is_imported(config, v)]
  if imported:
    out["notes"].append(f"imported variant(s) {imported}: their kernels are not checked")
  trained = [v for v in names if v not in imported]
  cache = {}
  for stage in study.stages:
    if stage.name in skip:
      continue
    for path, kind in stage.kernels:
      if kind not in KINDS:
        raise ValueError(f"stage {stage.name}: unknown kernel kind {kind!r} for {path} "
                         f"(expected one of {KINDS})")
      for v in trained:
        if path.startswith("models.*."):
          if kind != "train":
            continue
          setting = path.replace("*", v)
        else:
          setting = path
        rows = _setting(config, setting)
        if rows is None:
          continue
        rows = int(rows)
        key = (setting, kind, v)
        if key not in cache:
          model_cfg = variants_lib.variant_model(config, v)
          t0 = time.perf_counter()
          try:
            if kind == "train":
              compiled = _train_kernel(model_cfg, config.models[v], info.image_shape,
                                       info.num_classes, info.bounds)
            else:
              compiled = _model_kernel(model_cfg, int(config.models[v].get("seed", 0)), rows,
                                       info.image_shape, kind)
            peak = peak_bytes(compiled)
          except Exception as e:  # pylint: disable=broad-except
            logging.warning("memory check: %s %s of %s not built: %s", kind, setting, v, e)
            out["notes"].append(f"{kind} kernel at {setting} of {v} not built: "
                                f"{type(e).__name__}: {e}")
            peak = None
          cache[key] = {"stage": stage.name, "setting": setting, "kind": kind, "rows": rows,
                        "variant": v, "peak_bytes": peak,
                        "compile_seconds": time.perf_counter() - t0}
          out["kernels"].append(cache[key])
        k = cache[key]
        if k["peak_bytes"] is None:
          continue
        s = out["stages"].setdefault(stage.name, {"peak_bytes": 0, "setting": None})
        if k["peak_bytes"] > s["peak_bytes"]:
          s.update(peak_bytes=k["peak_bytes"], setting=setting)
        if out["peak_bytes"] is None or k["peak_bytes"] > out["peak_bytes"]:
          out.update(peak_bytes=k["peak_bytes"], peak_setting=setting)
  if limit:
    for k in out["kernels"]:
      if k["peak_bytes"] is not None and k["peak_bytes"] > limit:
        out["problems"].append(
            f"stage {k['stage']}: the {k['kind']} kernel of {k['variant']} at "
            f"{k['setting']}={k['rows']} needs {k['peak_bytes'] / 2**30:.2f} GiB, more than "
            f"the {limit / 2**30:.2f} GiB the device offers ({source}); lower {k['setting']}")
  if out["problems"] and raise_on_excess:
    raise MemoryCheckError("memory check: " + "; ".join(out["problems"]))
  return out


def fits_summary(result: dict) -> str:
  """One line: the largest kernel beside the device's memory."""
  peak, limit = result.get("peak_bytes"), result.get("available_bytes")
  if peak is None or not limit:
    return "memory check: nothing checked"
  return (f"memory check: largest kernel {peak / 2**20:.0f} MiB ({result['peak_setting']}) of "
          f"{limit / 2**30:.1f} GiB ({result['available_source']})")

