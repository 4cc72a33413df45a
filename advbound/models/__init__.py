"""Flax NNX models and the bridge from a model to a pure `logits_fn`."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from advbound.models.cw_mnist import CarliniWagnerMnist
from advbound.models.metzen_detector import MetzenDetector
from advbound.models.mnist_cnn import MnistCNN
from advbound.models.plain_cnn import PlainCNN
from advbound.models.preact_resnet import PreActResNet
from advbound.models.resnet9 import ResNet9
from advbound.models.resnet_cifar import ResNetCifar
from advbound.models.small_cifar import SmallCifarCNN
from advbound.models.wide_resnet import WideResNet
from advbound.models import imported
from advbound.models.imported import Imported
from advbound.runtime import sharding

LogitsFn = Callable[[jax.Array], jax.Array]

# name -> constructor(**kwargs, rngs) ; configs choose models by these names.
REGISTRY: dict[str, Callable[..., nnx.Module]] = {
    "mnist_cnn": MnistCNN,
    "wide_resnet": WideResNet,
    "small_cifar": SmallCifarCNN,
    "cw_mnist": CarliniWagnerMnist,
    "resnet_cifar": ResNetCifar,
    "metzen_detector": MetzenDetector,
    "preact_resnet": PreActResNet,
    "plain_cnn": PlainCNN,
    "resnet9": ResNet9,
}

# Compute dtypes a config may name (`compute_dtype`). Parameters and batch statistics stay
# float32 whatever the compute dtype; float16 is left out (it needs loss scaling).
COMPUTE_DTYPES = ("float32", "bfloat16")


def build(name: str, *, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
  """Builds a registered model by name, e.g. build("wide_resnet", depth=32, width=10, rngs=...)."""
  if name not in REGISTRY:
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(REGISTRY)}")
  try:
    return REGISTRY[name](**kwargs, rngs=rngs)
  except TypeError as e:
    raise ValueError(f"bad arguments {kwargs} for model {name!r}: {e}") from e


def with_compute_dtype(model: nnx.Module, compute_dtype: str | None) -> nnx.Module:
  """`model` computing in `compute_dtype` (mixed precision): a copy whose layers (every
  submodule with a `dtype`: convolutions, dense layers, batch norm) cast their inputs and
  weights to that dtype; the parameters and batch statistics stay float32 (batch norm also
  reduces its statistics in float32). The model's output is then in that dtype: cast the logits
  to float32 before a loss. "float32" or None returns `model` itself, unchanged.

  The copy has the same state tree as `model`, so its graph definition merges with `model`'s
  parameters (the trainer trains float32 parameters through a bfloat16 graph this way).
  """
  if compute_dtype in (None, "float32"):
    return model
  if compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(f"unknown compute_dtype {compute_dtype!r}; expected one of "
                     f"{COMPUTE_DTYPES}")
  dtype = jnp.dtype(compute_dtype)
  copy = nnx.merge(*nnx.split(model), copy=True)
  for _, module in nnx.iter_modules(copy):
    if hasattr(module, "dtype") and hasattr(module, "param_dtype"):
      module.dtype = dtype
  return copy


def as_logits_fn(model: nnx.Module | Imported, compute_dtype: str | None = None, *,
                 input_bounds: tuple[float, float] | None = None) -> LogitsFn:
  """Returns a pure `logits_fn(x [N, *image_shape]) -> logits [N, K]` of `model` in eval mode.

  The function closes over a snapshot of the model's current state (batch norm uses its running
  averages, dropout is off), never updates it, and can be used inside jit, vmap and grad. The
  caller's model is not modified. `compute_dtype` "bfloat16" computes the layers in bfloat16
  (`with_compute_dtype`); the logits are returned as float32 either way.

  An `Imported` model (`from_torch`, `from_keras`, `from_flax`, `from_robustbench`) gives the
  same kind of function; `input_bounds` (low, high) then says in which units `x` comes (the
  data's), mapped linearly onto the model's own input range before its normalisation
  (`advbound.models.imported`); None: `x` is already in the model's range. Our own models are
  trained in their data's units and take `x` as it comes: `input_bounds` must then be None.
  """
  if isinstance(model, Imported):
    return imported.logits_fn(model, compute_dtype, input_bounds=input_bounds)
  _no_bounds(model, input_bounds)
  return _pure(with_compute_dtype(model, compute_dtype), "__call__")


def as_embedding_fn(model: nnx.Module | Imported, compute_dtype: str | None = None, *,
                    input_bounds: tuple[float, float] | None = None
                    ) -> Callable[[jax.Array], jax.Array]:
  """Returns a pure `embed_fn(x [N, *image_shape]) -> features float32 [N, D]`: the model's
  `embed` method (the penultimate representation its logits are computed from; MnistCNN: the
  first dense layer, WideResNet: the global average pool) in eval mode, as `as_logits_fn`.
  An `Imported` model's embedding is the hook it was imported with (`embedding=<layer>`)."""
  if isinstance(model, Imported):
    return imported.embedding_fn(model, compute_dtype, input_bounds=input_bounds)
  _no_bounds(model, input_bounds)
  if not callable(getattr(model, "embed", None)):
    raise ValueError(f"{type(model).__name__} has no embed method: no feature extractor")
  return _pure(with_compute_dtype(model, compute_dtype), "embed")


def _no_bounds(model, input_bounds) -> None:
  if input_bounds is not None:
    raise ValueError(f"input_bounds={input_bounds!r} is for imported models; "
                     f"{type(model).__name__} takes its training data's units as they are")


def _pure(model: nnx.Module, method: str) -> jax.tree_util.Partial:
  graphdef, state = nnx.split(model)
  snapshot = nnx.merge(graphdef, state, copy=True)
  snapshot.eval()
  graphdef, state = nnx.split(snapshot)
  # jax arrays: numpy arrays held by a user's module would be shared by the merged copies
  state = sharding.replicate(jax.tree.map(jnp.asarray, state))  # a copy on every device of the mesh (several devices)
  # A Partial is a pytree whose leaves are the model's arrays: passed as an argument to a jitted
  # function, the weights stay device buffers instead of being baked into the program. Its
  # function (in the treedef, so in jit's cache key) compares by the architecture, so two
  # models of one architecture (a study's epochs, checkpoints) share their compiled programs.
  return jax.tree_util.Partial(StaticPartial(_apply, (graphdef, method)), state)


@dataclasses.dataclass(frozen=True)
class StaticPartial:
  """fn(*args, *rest) with `fn` and `args` hashable: as the function of a `jax.tree_util.Partial`
  (which sits in the treedef, so in jit's cache key) it compares by value, where a
  functools.partial compares by identity and makes jit compile again for every new one."""
  fn: Callable
  args: tuple

  def __call__(self, *rest):
    return self.fn(*self.args, *rest)


def _apply(graphdef: nnx.GraphDef, method: str, state: nnx.State, x: jax.Array) -> jax.Array:
  return getattr(nnx.merge(graphdef, state, copy=True), method)(x).astype(jnp.float32)


def as_pytree_fn(logits_fn: LogitsFn) -> jax.tree_util.Partial:
  """Wraps any logits_fn so it can be passed as a (non-static) argument to jax.jit.

  Results of `as_logits_fn` already are such pytrees and are returned unchanged (their arrays
  replicated over the devices when there are several); a plain Python function becomes a
  leafless Partial, compiled once per function object.
  """
  if isinstance(logits_fn, jax.tree_util.Partial):
    # with several devices, its arrays (the weights) are replicated over the mesh, so jit can
    # combine them with batches split over it; the identity on one device
    return sharding.replicate(logits_fn)
  if not callable(logits_fn):
    raise TypeError(f"logits_fn must be callable, got {type(logits_fn).__name__}")
  return jax.tree_util.Partial(logits_fn)


def from_torch(module, *, input_shape, **kwargs) -> Imported:
  """A PyTorch classifier as an `Imported` model (advbound.models.torch_import.from_torch)."""
  from advbound.models import torch_import  # pylint: disable=g-import-not-at-top
  return torch_import.from_torch(module, input_shape=input_shape, **kwargs)


def from_keras(model, **kwargs) -> Imported:
  """A Keras 3 model on the JAX backend (advbound.models.keras_import.from_keras)."""
  from advbound.models import keras_import  # pylint: disable=g-import-not-at-top
  return keras_import.from_keras(model, **kwargs)


def from_flax(model=None, **kwargs) -> Imported:
  """A Flax NNX module or one of our checkpoints (advbound.models.flax_import.from_flax)."""
  from advbound.models import flax_import  # pylint: disable=g-import-not-at-top
  return flax_import.from_flax(model, **kwargs)


def from_robustbench(name: str, *, dataset: str, threat_model: str, **kwargs) -> Imported:
  """A RobustBench zoo model by name (advbound.models.robustbench_import)."""
  from advbound.models import robustbench_import  # pylint: disable=g-import-not-at-top
  return robustbench_import.from_robustbench(name, dataset=dataset, threat_model=threat_model,
                                             **kwargs)


__all__ = ["Imported", "from_torch", "from_keras", "from_flax", "from_robustbench", "MnistCNN", "CarliniWagnerMnist", "MetzenDetector", "ResNetCifar", "WideResNet", "SmallCifarCNN",
           "PreActResNet", "PlainCNN", "ResNet9",
           "REGISTRY", "COMPUTE_DTYPES", "build", "with_compute_dtype", "as_logits_fn",
           "as_embedding_fn", "as_pytree_fn", "LogitsFn"]
