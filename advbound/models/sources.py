"""An imported model from its description in a config (`models.<variant>.source`, declared by
`advbound.training.settings.Source`): `load(spec, image_shape=..., bounds=...)` dispatches to
`from_torch`, `from_keras`, `from_flax` or `from_robustbench` and, when the spec says
`rescale`, returns the model taking the data's units (`rebased`).

`files(spec)` lists the files a source reads and `digest(spec)` fingerprints them (size and
SHA-256), so that a changed weights file invalidates what was computed from the model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
from typing import Any, Mapping, Sequence

import jax.numpy as jnp

from advbound.models import imported as imported_lib
from advbound.models.imported import Imported

__all__ = ["load", "rebased", "files", "digest", "factory"]


def _get(spec: Mapping[str, Any], key: str, default=None):
  value = spec.get(key, default) if hasattr(spec, "get") else getattr(spec, key, default)
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  return default if value is None else value


def factory(name: str):
  """The callable named 'package.module:callable' (ValueError naming it when absent)."""
  module, _, attr = name.partition(":")
  if not module or not attr:
    raise ValueError(f"factory must be 'package.module:callable', got {name!r}")
  try:
    found = importlib.import_module(module)
  except ImportError as e:
    raise ValueError(f"factory {name!r}: cannot import {module!r}: {e}") from e
  out = found
  for part in attr.split("."):
    if not hasattr(out, part):
      raise ValueError(f"factory {name!r}: {module!r} has no {attr!r}")
    out = getattr(out, part)
  if not callable(out):
    raise ValueError(f"factory {name!r} is not callable")
  return out


def _tuple(value) -> tuple | None:
  return None if value is None else tuple(value)


def load(spec: Mapping[str, Any], *, image_shape: Sequence[int],
         bounds: Sequence[float] | None = None) -> Imported:
  """The model `spec` describes (a `Source` section or a dict with its keys), checked against
  the data it will see: `image_shape` (H, W, C) and, when `spec` says `rescale`, `bounds`
  (the data's (low, high), onto which the returned model's input range is rebased).

  Raises ValueError naming the source when the model does not take `image_shape` images.
  """
  kind = _get(spec, "kind")
  common = {"mean": _tuple(_get(spec, "mean")), "std": _tuple(_get(spec, "std"))}
  rng = _tuple(_get(spec, "input_range"))
  where, make = os.path.expanduser(_get(spec, "path", "")), _get(spec, "factory", "")
  kwargs = dict(_get(spec, "kwargs", {}) or {})
  weights = os.path.expanduser(_get(spec, "weights", ""))
  embedding = _get(spec, "embedding")
  h, w, ch = (int(s) for s in image_shape)
  if kind == "torch":
    from advbound.models import torch_import  # pylint: disable=g-import-not-at-top
    layout = _get(spec, "layout", "NCHW")
    shape = _tuple(_get(spec, "input_shape")) or ((ch, h, w) if layout == "NCHW" else (h, w, ch))
    if make:
      module = factory(make)(**kwargs)
      if weights:
        import torch  # pylint: disable=g-import-not-at-top
        module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
      what = f"torch {make}" + (f" with weights {weights}" if weights else " (random weights)")
    else:
      module, what = where, f"torch {where}"
    model = torch_import.from_torch(module, input_shape=shape, input_range=rng or (0.0, 1.0),
                                    layout=layout, embedding=embedding, source=what, **common)
  elif kind == "keras":
    from advbound.models import keras_import  # pylint: disable=g-import-not-at-top
    if make:
      net = factory(make)(**kwargs)
      if weights:
        net.load_weights(weights)
      what = f"keras {make}" + (f" with weights {weights}" if weights else " (random weights)")
    else:
      net, what = where, f"keras {where}"
    model = keras_import.from_keras(net, input_range=rng or (0.0, 1.0), embedding=embedding,
                                    source=what, **common)
  elif kind == "flax":
    from advbound.models import flax_import  # pylint: disable=g-import-not-at-top
    if make:
      model = flax_import.from_flax(factory(make)(**kwargs), input_shape=(h, w, ch),
                                    input_range=rng or (0.0, 1.0), source=f"flax {make}",
                                    **common)
    else:
      model = flax_import.from_flax(workdir=where, variant=_get(spec, "variant", "natural"),
                                    input_range=rng, **common)
  elif kind == "robustbench":
    from advbound.models import robustbench_import  # pylint: disable=g-import-not-at-top
    model = robustbench_import.from_robustbench(
        _get(spec, "name"), dataset=_get(spec, "dataset"),
        threat_model=_get(spec, "threat_model", "Linf"),
        model_dir=os.path.expanduser(_get(spec, "model_dir", "models")))
  else:
    raise ValueError(f"unknown source kind {kind!r}; expected torch, keras, flax or robustbench")
  if tuple(model.input_shape) != (h, w, ch):
    raise ValueError(f"{model.source}: takes images of shape {model.input_shape}, the data's "
                     f"are {(h, w, ch)}")
  if bounds is not None and _get(spec, "rescale", False):
    return rebased(model, bounds)
  if bounds is not None and tuple(map(float, bounds)) != model.input_range:
    raise ValueError(f"{model.source}: takes inputs in {model.input_range}, the data is in "
                     f"{tuple(bounds)}; set rescale to map one onto the other")
  return model


@dataclasses.dataclass(frozen=True)
class _Rebased:
  """`fn` preceded by the affine input map and normalisation of `imported.logits_fn`."""
  fn: Any
  scale: float
  shift: float
  mean: tuple[float, ...] | None
  std: tuple[float, ...] | None

  def __call__(self, params, x):
    x = x * self.scale + self.shift
    if self.mean is not None:
      x = (x - jnp.asarray(self.mean, x.dtype)) / jnp.asarray(self.std, x.dtype)
    return self.fn(params, x)


def rebased(model: Imported, bounds: Sequence[float]) -> Imported:
  """`model` taking inputs in `bounds` (the data's units): the linear map onto its own input
  range and its normalisation move into its functions, so `as_logits_fn` of the result needs
  no `input_bounds` and attacks, radii and distances stay in the data's units."""
  bounds = imported_lib.check_range(bounds, "bounds")
  if bounds == model.input_range:
    return model
  scale, shift = imported_lib.input_map(model, bounds)
  wrap = lambda fn: None if fn is None else _Rebased(fn, scale, shift, model.mean, model.std)
  lo, hi = model.input_range
  return dataclasses.replace(
      model, apply=wrap(model.apply), embed=wrap(model.embed), input_range=bounds, mean=None,
      std=None, source=f"{model.source}; data in [{bounds[0]:g}, {bounds[1]:g}] mapped onto "
      f"its [{lo:g}, {hi:g}]")


def files(spec: Mapping[str, Any]) -> list[str]:
  """The files the source reads (its path when a file, its weights file, RobustBench's local
  export when present)."""
  out = []
  for key in ("path", "weights"):
    where = os.path.expanduser(_get(spec, key, ""))
    if where and os.path.isfile(where):
      out.append(where)
  if _get(spec, "kind") == "robustbench":
    from advbound.models import robustbench_import  # pylint: disable=g-import-not-at-top
    exported = robustbench_import.exported_path(
        str(_get(spec, "name", "")), dataset=str(_get(spec, "dataset", "")),
        threat_model=str(_get(spec, "threat_model", "Linf")),
        model_dir=os.path.expanduser(_get(spec, "model_dir", "models")))
    for where in (exported, exported[:-len(".pt2")] + ".pt"):
      if os.path.isfile(where):
        out.append(where)
  if _get(spec, "kind") == "flax" and _get(spec, "path"):
    folder = os.path.join(os.path.expanduser(_get(spec, "path")), "models",
                          _get(spec, "variant", "natural"))
    for name in ("settings.json",):
      if os.path.isfile(os.path.join(folder, name)):
        out.append(os.path.join(folder, name))
  return out


_DIGESTS: dict[tuple, str] = {}


def digest(spec: Mapping[str, Any]) -> dict[str, str]:
  """{file: "<size>:<sha256>"} of `files(spec)`, hashed once per process per file version."""
  out = {}
  for where in files(spec):
    st = os.stat(where)
    key = (os.path.abspath(where), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
      sha = hashlib.sha256()
      with open(where, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          sha.update(block)
      _DIGESTS[key] = f"{st.st_size}:{sha.hexdigest()}"
    out[where] = _DIGESTS[key]
  return out
