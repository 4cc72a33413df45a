"""A classifier from elsewhere (PyTorch, Keras, Flax, the RobustBench zoo) described as pure JAX
functions of its parameters, with its input range and normalisation made explicit.

The importers (`advbound.models.from_torch`, `from_keras`, `from_flax`, `from_robustbench`)
return an `Imported`; `advbound.models.as_logits_fn` and `as_embedding_fn` accept it like one of
our own Flax models. The functions they return take NHWC float32 images in the *model's own*
input range (`Imported.input_range`, [0, 1] unless stated), or in the units of `input_bounds`
when that is given (the study's data units, e.g. CIFAR-10 in [0, 255]): the map between the two
is linear and part of the function, so attacks, radii and distances stay in the caller's units.

Order of operations inside the function, for x [N, H, W, C] in `input_bounds` units:
  1. x_model = lo + (x - low) * (hi - lo) / (high - low)   (identity when the ranges agree)
  2. x_model = (x_model - mean) / std, per channel          (when mean/std are given)
  3. logits = apply(params, x_model)                         (the framework's own network)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from advbound.runtime import sharding

__all__ = ["Imported", "logits_fn", "embedding_fn", "input_map"]

# (params, x [N, H, W, C] float, preprocessed) -> [N, K] logits (or [N, D] features)
ApplyFn = Callable[[Any, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True, eq=False)
class Imported:
  """A classifier as pure functions of its parameters.

  Attributes:
    apply: `apply(params, x [N, H, W, C]) -> logits [N, K]`, pure (eval mode: batch norm uses
      its running statistics, dropout is off), traceable by jit, grad and vmap. `x` is already
      in the model's input range and normalised (see the module docstring).
    params: the pytree of arrays `apply` reads (weights, batch statistics, constants).
    input_shape: (H, W, C), the image shape the model takes (channels last, as our data).
    num_classes: K, the number of logits.
    input_range: (lo, hi), the pixel range the model was trained on before normalisation.
    mean, std: per-channel normalisation applied before `apply` (None: none), C values each.
    embed: `embed(params, x) -> features [N, D]` (the representation the blind-spot study
      measures, e.g. the penultimate layer), or None when the model has no embedding hook.
    source: what the model is and where it came from, as the reports name it.
  """
  apply: ApplyFn
  params: Any
  input_shape: tuple[int, int, int]
  num_classes: int
  input_range: tuple[float, float] = (0.0, 1.0)
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None
  embed: ApplyFn | None = None
  source: str = ""

  def __post_init__(self):
    if not callable(self.apply):
      raise TypeError(f"apply must be callable, got {type(self.apply).__name__}")
    shape = tuple(int(s) for s in self.input_shape)
    if len(shape) != 3 or min(shape) < 1:
      raise ValueError(f"input_shape must be (H, W, C) with positive sizes, got "
                       f"{self.input_shape!r}")
    object.__setattr__(self, "input_shape", shape)
    if int(self.num_classes) < 2:
      raise ValueError(f"num_classes must be at least 2, got {self.num_classes!r}")
    object.__setattr__(self, "input_range", check_range(self.input_range, "input_range"))
    channels = shape[-1]
    for name in ("mean", "std"):
      value = getattr(self, name)
      if value is None:
        continue
      value = tuple(float(v) for v in np.ravel(value))
      if len(value) == 1:
        value = value * channels
      if len(value) != channels or not all(math.isfinite(v) for v in value):
        raise ValueError(f"{name} must be {channels} finite values (one per channel), got "
                         f"{getattr(self, name)!r}")
      if name == "std" and min(value) <= 0:
        raise ValueError(f"std must be positive, got {value}")
      object.__setattr__(self, name, value)
    if (self.mean is None) != (self.std is None):
      raise ValueError("give both mean and std, or neither")
    if self.embed is not None and not callable(self.embed):
      raise TypeError(f"embed must be callable or None, got {type(self.embed).__name__}")

  def describe(self) -> str:
    """One line: the source, the input range and the normalisation."""
    norm = f", normalised by mean {self.mean} std {self.std}" if self.mean is not None else ""
    return (f"{self.source or 'imported model'} (inputs {self.input_shape} in "
            f"[{self.input_range[0]:g}, {self.input_range[1]:g}]{norm})")


def check_range(value: Sequence[float], name: str) -> tuple[float, float]:
  """(lo, hi) as floats; ValueError naming `name` unless finite with lo < hi."""
  try:
    lo, hi = (float(v) for v in value)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a pair (lo, hi), got {value!r}") from None
  if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
    raise ValueError(f"{name} must be finite with lo < hi, got {value!r}")
  return lo, hi


def input_map(model: Imported,
              input_bounds: Sequence[float] | None) -> tuple[float, float]:
  """(scale, shift) with x_model = x * scale + shift mapping `input_bounds` onto the model's
  input range ((1, 0) when `input_bounds` is None or equal to it)."""
  lo, hi = model.input_range
  if input_bounds is None:
    return 1.0, 0.0
  low, high = check_range(input_bounds, "input_bounds")
  scale = (hi - lo) / (high - low)
  return scale, lo - low * scale


@dataclasses.dataclass(frozen=True)
class _Call:
  """The function part of the Partial that `logits_fn` returns: equal calls compare equal, so
  kernels jitted over one are not recompiled for another made from the same model."""
  fn: ApplyFn
  scale: float
  shift: float
  mean: tuple[float, ...] | None
  std: tuple[float, ...] | None
  dtype: str | None

  def __call__(self, params, x):
    x = jnp.asarray(x, jnp.float32)
    if (self.scale, self.shift) != (1.0, 0.0):
      x = x * self.scale + self.shift
    if self.mean is not None:
      x = (x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(self.std, jnp.float32)
    if self.dtype not in (None, "float32"):
      dtype = jnp.dtype(self.dtype)
      params = jax.tree_util.tree_map(
          lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, params)
      x = x.astype(dtype)
    return self.fn(params, x).astype(jnp.float32)


def _pure(model: Imported, fn: ApplyFn, compute_dtype, input_bounds) -> jax.tree_util.Partial:
  if compute_dtype not in (None, "float32", "bfloat16"):
    raise ValueError(f"unknown compute_dtype {compute_dtype!r}; expected float32 or bfloat16")
  scale, shift = input_map(model, input_bounds)
  call = _Call(fn, scale, shift, model.mean, model.std, compute_dtype)
  params = jax.tree_util.tree_map(jnp.asarray, model.params)
  return jax.tree_util.Partial(call, sharding.replicate(params))


def logits_fn(model: Imported, compute_dtype: str | None = None, *,
              input_bounds: Sequence[float] | None = None) -> jax.tree_util.Partial:
  """`fn(x [N, H, W, C] float) -> logits float32 [N, K]`, a pytree (its leaves the parameters,
  replicated over the devices) usable as an argument of jitted functions. `x` is in
  `input_bounds` units (None: the model's own input range)."""
  return _pure(model, model.apply, compute_dtype, input_bounds)


def embedding_fn(model: Imported, compute_dtype: str | None = None, *,
                 input_bounds: Sequence[float] | None = None) -> jax.tree_util.Partial:
  """`fn(x [N, H, W, C]) -> features float32 [N, D]` through the model's embedding hook, with
  the same input handling as `logits_fn`."""
  if model.embed is None:
    raise ValueError(f"{model.source or 'the imported model'} has no embedding hook: import it "
                     "with embedding=<layer name> to name the layer whose output is the "
                     "embedding")
  return _pure(model, model.embed, compute_dtype, input_bounds)
