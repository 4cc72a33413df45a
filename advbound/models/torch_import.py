"""PyTorch classifiers as pure JAX functions: our own interpreter of torch.export graphs.

`from_torch(module, input_shape=(3, 32, 32))` exports the module (eval mode, a dynamic batch
dimension), decomposes the program to core ATen, checks that every op of the graph has a JAX
translation here (an unknown one raises NotImplementedError naming the op and the node, before
anything is traced), and returns an `advbound.models.Imported` whose `apply(params, x)` walks the
graph once per trace, mapping each ATen op to jax.numpy / jax.lax. The parameters, buffers and
lifted constants are the `params` dict (keyed by their torch names, float32; integer and bool
buffers keep an integer / bool dtype), so jit sees them as arguments and `sharding.replicate`
copies them like our own models' state.

Images come in NHWC (our data's layout) and are transposed to the module's layout (NCHW unless
`layout="NHWC"`). torch's semantics are kept op by op: eval batch norm from the running
statistics, dropout off (export in eval mode removes it), torch's pooling windows (ceil_mode,
count_include_pad), and torch's subgradients at kinks (relu, hardtanh, clamp, leaky_relu), so
input gradients equal torch autograd's.

torchax (torch -> JAX) was the obvious tool, but its 0.0.13 release fails at import with the
CPU torch 2.13 wheel ("The underlying op of 'aten.prod' has no overload name 'dim_Dimname'"),
hence this converter over the core ATen op set.

The op table is advbound.models.torch_ops, one module per family of ops (elementwise, nn,
reduce, shape, and channels_last: the layout-aware variants); importing this module registers
them all. Here: the graph interpreter (`Graph`), `export` and `from_torch`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from advbound.models.imported import Imported
# the op families register their ops (and channels-last variants) on import
from advbound.models.torch_ops import _OPS, _PYTHON, _python_callables, supported_ops
from advbound.models.torch_ops import elementwise as _elementwise  # noqa: F401
from advbound.models.torch_ops import nn as _nn  # noqa: F401
from advbound.models.torch_ops import reduce as _reduce  # noqa: F401
from advbound.models.torch_ops import shape as _shape  # noqa: F401
from advbound.models.torch_ops.channels_last import (_CL_ALWAYS, _CL_OPS, _ChannelsLast,
                                                     _has_cl, _logical)

__all__ = ["from_torch", "export", "Graph", "supported_ops"]

LAYOUTS = ("NCHW", "NHWC")


# ----------------------------------------------------------------------------------------------
# The graph: an ExportedProgram as a plan of steps over named values.

@dataclasses.dataclass(frozen=True)
class _Ref:
  """A value of the graph, by its node's name."""
  name: str


@dataclasses.dataclass(frozen=True)
class _Step:
  name: str
  target: str
  fn: Callable[..., Any]
  args: tuple
  kwargs: dict
  module: str  # the innermost module path the node came from ("" at top level)
  cl: Callable[..., Any] | None = None  # the op on channels-last values (None: logical only)
  cl_always: bool = False  # use `cl` even when no argument is channels last (convolutions)

  def __call__(self, args, kwargs):
    if self.cl is not None and (self.cl_always or _has_cl(args)):
      out = self.cl(*args, **kwargs)
      if out is not NotImplemented:
        return out
    return self.fn(*_logical(args), **_logical(kwargs) if kwargs else {})


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("from_torch needs PyTorch (pip install torch)") from e
  _python_callables(torch)
  return torch


def _dtype(torch, dtype):
  table = {torch.float32: jnp.float32, torch.float64: jnp.float32, torch.float16: jnp.float16,
           torch.bfloat16: jnp.bfloat16, torch.int64: jnp.int32, torch.int32: jnp.int32,
           torch.int16: jnp.int16, torch.int8: jnp.int8, torch.uint8: jnp.uint8,
           torch.bool: jnp.bool_}
  if dtype not in table:
    raise NotImplementedError(f"tensor dtype {dtype} is not supported")
  return table[dtype]


def _static(torch, value, where: str):
  """A node argument as plain Python: nodes -> _Ref, dtypes -> jnp dtypes, devices, layouts
  and memory formats -> None."""
  fx = torch.fx
  if isinstance(value, fx.Node):
    return _Ref(value.name)
  if isinstance(value, (list, tuple)):
    return type(value)(_static(torch, v, where) for v in value)
  if isinstance(value, torch.dtype):
    return _dtype(torch, value)
  if isinstance(value, (torch.device, torch.layout, torch.memory_format)):
    return None
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  raise NotImplementedError(f"argument {value!r} of type {type(value).__name__} at {where}")


def _bind(target, args, kwargs) -> tuple:
  """The op's arguments in schema order, defaults filled in."""
  out = []
  for i, a in enumerate(target._schema.arguments):  # pylint: disable=protected-access
    if not a.kwarg_only and i < len(args):
      out.append(args[i])
    elif a.name in kwargs:
      out.append(kwargs[a.name])
    elif a.has_default_value():
      out.append(a.default_value)
    else:
      raise NotImplementedError(f"{target}: missing argument {a.name!r}")
  return tuple(out)


def _module_path(node) -> str:
  stack = node.meta.get("nn_module_stack") or {}
  paths = [v[0] for v in stack.values() if isinstance(v, tuple) and v and v[0]]
  return paths[-1] if paths else ""


def _module_paths(node) -> set[str]:
  stack = node.meta.get("nn_module_stack") or {}
  return {v[0] for v in stack.values() if isinstance(v, tuple) and v and isinstance(v[0], str)}


def _host_array(torch, tensor) -> np.ndarray:
  """A torch tensor as an owned numpy array: floats as float32, integers and bools kept."""
  t = tensor.detach().cpu()
  if t.is_floating_point():
    t = t.to(torch.float32)
  elif t.dtype == torch.int64:
    t = t.to(torch.int32)  # JAX's default integer (64-bit types need jax_enable_x64)
  return np.array(t.numpy(), copy=True)


class Graph:
  """A decomposed ExportedProgram as a plan that JAX can run: `Graph(program)`, then
  `graph.params` (name -> array) and `graph.run(params, x, until=None)`.

  Every op is checked at construction: an op the interpreter does not translate raises
  NotImplementedError naming the op and the node.
  """

  def __init__(self, program, channels_last: bool = True):
    torch = _torch()
    self.channels_last = channels_last
    self._torch = torch
    sig = program.graph_signature
    kinds = torch.export.graph_signature.InputKind
    self.params: dict[str, np.ndarray] = {}
    self.placeholders: dict[str, str] = {}  # placeholder node name -> params key
    self.input_name = None
    for spec in sig.input_specs:
      name = spec.arg.name
      if spec.kind == kinds.USER_INPUT:
        if self.input_name is not None:
          raise NotImplementedError("the module takes several inputs; from_torch needs one "
                                    "image tensor")
        self.input_name = name
      elif spec.kind in (kinds.PARAMETER, kinds.BUFFER, kinds.CONSTANT_TENSOR):
        value = program.state_dict.get(spec.target)
        if value is None:
          value = program.constants[spec.target]
        self.params[spec.target] = _host_array(torch, value)
        self.placeholders[name] = spec.target
      else:
        raise NotImplementedError(f"graph input {name} of kind {spec.kind.name} is not "
                                  "supported")
    if self.input_name is None:
      raise NotImplementedError("the module takes no tensor input")
    outputs = [spec for spec in sig.output_specs]
    kinds_out = torch.export.graph_signature.OutputKind
    if any(spec.kind != kinds_out.USER_OUTPUT for spec in outputs):
      raise NotImplementedError(
          "the program mutates its buffers (" + ", ".join(
              f"{s.kind.name} {s.target}" for s in outputs
              if s.kind != kinds_out.USER_OUTPUT) + "): export the module in eval mode")
    if len(outputs) != 1:
      raise NotImplementedError(f"the module returns {len(outputs)} values; from_torch needs "
                                "one logits tensor")
    self.output = outputs[0].arg.name
    self.nodes = {n.name: n for n in program.graph.nodes}
    self.input_meta = self.nodes[self.input_name].meta.get("val")
    self.steps: list[_Step] = []
    unsupported = []
    for node in program.graph.nodes:
      if node.op in ("placeholder", "output"):
        continue
      where = f"node {node.name!r}" + (f" (module {_module_path(node)!r})"
                                       if _module_path(node) else "")
      if node.op != "call_function":
        unsupported.append(f"{node.op} {node.target} at {where}")
        continue
      step = self._step(node, where)
      if step is None:
        unsupported.append(f"{node.target} at {where}")
      else:
        self.steps.append(step)
    if unsupported:
      raise NotImplementedError(
          f"{len(unsupported)} op(s) of the graph have no JAX translation in "
          f"advbound.models.torch_import: " + "; ".join(unsupported[:10]) +
          ("" if len(unsupported) <= 10 else f"; and {len(unsupported) - 10} more"))
    self.index = {s.name: i for i, s in enumerate(self.steps)}

  def _step(self, node, where: str) -> _Step | None:
    torch = self._torch
    target = node.target
    args = _static(torch, node.args, where)
    kwargs = {k: _static(torch, v, where) for k, v in node.kwargs.items()}
    if isinstance(target, torch._ops.OpOverload):  # pylint: disable=protected-access
      fn = _OPS.get(str(target))
      if fn is None:
        return None
      args, kwargs = _bind(target, args, kwargs), {}
      if str(target).startswith("aten.as_strided"):
        meta = node.args[0].meta.get("val")
        stride = meta.stride() if meta is not None else None
        kwargs = {"in_stride": tuple(int(s) if _concrete(s) else -1 for s in stride)
                  if stride is not None else None}
    elif target in _PYTHON:
      fn = _PYTHON[target]
    else:
      return None
    key = str(target) if target not in _PYTHON else target
    cl = _CL_OPS.get(key) if self.channels_last else None
    return _Step(node.name, str(target), fn, args, kwargs, _module_path(node), cl,
                 key in _CL_ALWAYS)

  def ancestors(self, name: str) -> set[str]:
    """The names of the steps `name` depends on, itself included."""
    seen, todo = set(), [name]
    while todo:
      n = todo.pop()
      if n in seen or n not in self.index:
        continue
      seen.add(n)
      todo.extend(a.name for a in self.nodes[n].all_input_nodes)
    return seen

  def run(self, params: dict, x: jax.Array, until: str | None = None) -> Any:
    """The graph's output (or the value of node `until`) for input `x` in the module's own
    layout (or a `_ChannelsLast` of it); params as `self.params` (arrays of any kind)."""
    env: dict[str, Any] = {self.input_name: x}
    for name, key in self.placeholders.items():
      env[name] = params[key]
    target = self.output if until is None else until
    needed = self.ancestors(target) if until is not None else None

    def value(a):
      if isinstance(a, _Ref):
        return env[a.name]
      if isinstance(a, (list, tuple)):
        return type(a)(value(v) for v in a)
      return a

    for step in self.steps:
      if needed is not None and step.name not in needed:
        continue
      try:
        env[step.name] = step(value(step.args), {k: value(v) for k, v in
                                                 step.kwargs.items()})
      except NotImplementedError as e:
        raise NotImplementedError(f"{e} (at node {step.name!r}: {step.target})") from e
      except Exception as e:
        e.add_note(f"in advbound.models.torch_import, at node {step.name!r}: {step.target}"
                   + (f" (module {step.module!r})" if step.module else ""))
        raise
      if step.name == target:
        break
    return _logical(env[target])

  def embedding_node(self, module: str, valid: Sequence[str]) -> str:
    """The node whose value is the input of submodule `module` (its nodes' one input from
    outside it that is an activation, not a parameter or a shape)."""
    inside = {s.name for s in self.steps if module in _module_paths(self.nodes[s.name])}
    if not inside:
      names = sorted(set(valid) | {p for s in self.steps for p in
                                   _module_paths(self.nodes[s.name]) if p})
      raise ValueError(f"embedding={module!r} names no module of the graph; modules "
                       f"include {names[:30]}{' ...' if len(names) > 30 else ''}")
    inputs = []
    for name in self.index:
      if name not in inside:
        continue
      for a in self.nodes[name].all_input_nodes:
        if a.name in inside or a.name in self.placeholders or a.name in inputs:
          continue
        if _is_tensor(self._torch, a.meta.get("val")):
          inputs.append(a.name)
    if len(inputs) != 1:
      raise ValueError(f"module {module!r} has {len(inputs)} activation inputs in the graph "
                       f"({inputs}); embedding needs a module with exactly one (e.g. the "
                       "final linear layer)")
    return inputs[0]


def _concrete(s) -> bool:
  try:
    int(s)
    return True
  except Exception:  # pylint: disable=broad-except
    return False


def _is_tensor(torch, value) -> bool:
  return isinstance(value, torch.Tensor)


# ----------------------------------------------------------------------------------------------
# from_torch

def _check_shape(input_shape) -> tuple[int, int, int]:
  try:
    shape = tuple(int(s) for s in input_shape)
  except (TypeError, ValueError):
    raise ValueError(f"input_shape must be 3 positive sizes, got {input_shape!r}") from None
  if len(shape) != 3 or min(shape) < 1:
    raise ValueError(f"input_shape must be the module's per-example image shape, 3 positive "
                     f"sizes like (3, 32, 32) for NCHW, got {input_shape!r}")
  return shape


def export(module, input_shape: Sequence[int]):
  """`module` as a torch.export.ExportedProgram: exported in eval mode with a dynamic batch
  dimension (the caller's training flags are restored, its weights untouched). ValueError
  naming the shape when torch cannot run the module on a batch of `input_shape`."""
  torch = _torch()
  shape = tuple(int(s) for s in input_shape)
  flags = [(m, m.training) for m in module.modules()]
  module.eval()
  try:
    example = torch.zeros((2,) + shape)
    batch = torch.export.Dim("batch")
    try:
      return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    except Exception as export_error:  # pylint: disable=broad-except
      try:
        with torch.no_grad():
          module(example)
      except Exception as e:  # pylint: disable=broad-except
        raise ValueError(f"input_shape {shape} is not what {type(module).__name__} takes: "
                         f"torch fails on a batch of shape {(2,) + shape}: {e}") from e
      raise export_error
  finally:
    for m, flag in flags:
      m.training = flag


def _program(torch, module, shape):
  """(decomposed ExportedProgram, default source, module names)."""
  if isinstance(module, (str, os.PathLike)):
    path = os.fspath(module)
    if not os.path.exists(path):
      raise FileNotFoundError(f"no exported program at {path!r} (write one with "
                              "torch.export.save)")
    program, source, names = torch.export.load(path), path, ()
  elif isinstance(module, torch.export.ExportedProgram):
    program, source, names = module, "torch.export.ExportedProgram", ()
  elif isinstance(module, torch.nn.Module):
    program = export(module, shape)
    source = type(module).__name__
    names = [n for n, _ in module.named_modules() if n]
  else:
    raise TypeError(f"module must be a torch.nn.Module, an ExportedProgram or a .pt2 path, "
                    f"got {type(module).__name__}")
  return program.run_decompositions(), source, names


def from_torch(module, *, input_shape, input_range=(0.0, 1.0), mean=None, std=None,
               embedding: str | None = None, num_classes: int | None = None,
               layout: str = "NCHW", source: str | None = None,
               channels_last: bool = True) -> Imported:
  """A PyTorch classifier as an `Imported` model of pure JAX functions.

  Args:
    module: a torch.nn.Module (exported here in eval mode with a dynamic batch; its training
      flags are restored and its weights never touched), a torch.export.ExportedProgram, or
      the path of a `.pt2` file written by torch.export.save.
    input_shape: the module's own per-example input shape, e.g. (3, 32, 32) for NCHW
      ((32, 32, 3) with layout="NHWC").
    input_range: (lo, hi), the pixel range the module takes (before mean/std).
    mean, std: per-channel normalisation applied before the module (None: the module
      normalises itself, or takes its range as is).
    embedding: the name of a submodule (as in module.named_modules(), e.g. "fc") whose input
      is the embedding; `Imported.embed(params, x)` then returns it flattened to [N, D].
    num_classes: K, checked against the graph's output when given.
    layout: "NCHW" (the module takes channels first) or "NHWC".
    source: what the model is, for reports (default: the class name or the path).
    channels_last: run convolutions, batch norm, pooling and elementwise ops on channels-last
      arrays inside (the default; faster), or interpret the graph literally in torch's layout
      (the same values up to float rounding; for comparisons).

  Returns:
    Imported with `apply(params, x [N, H, W, C]) -> logits float [N, K]` and params the dict
    of the module's parameters, buffers and constants by name.

  Raises:
    NotImplementedError: an op of the graph has no translation (naming the op and node).
    ValueError: a bad input_shape, layout, embedding name or num_classes.
  """
  if layout not in LAYOUTS:
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
  shape = _check_shape(input_shape)
  torch = _torch()
  program, default_source, names = _program(torch, module, shape)
  graph = Graph(program, channels_last=channels_last)
  meta = graph.input_meta
  batch = None
  if meta is not None:
    got = tuple(meta.shape)
    if len(got) != 4 or tuple(int(s) for s in got[1:]) != shape:
      raise ValueError(f"input_shape {shape} does not match the program's input "
                       f"{tuple(str(s) for s in got)}")
    batch = int(got[0]) if _concrete(got[0]) and not isinstance(got[0], torch.SymInt) else None
  image_shape = shape if layout == "NHWC" else (shape[1], shape[2], shape[0])
  target = graph.embedding_node(embedding, names) if embedding is not None else None
  apply = _Apply(graph, image_shape, layout, batch, None)
  params = {k: jnp.asarray(v) for k, v in graph.params.items()}
  out = jax.eval_shape(apply, params, jax.ShapeDtypeStruct((batch or 2,) + image_shape,
                                                           jnp.float32))
  if len(out.shape) != 2 or out.shape[0] != (batch or 2):
    raise ValueError(f"the module returns shape {out.shape} for a batch of {batch or 2}; "
                     "from_torch needs logits [N, K]")
  if num_classes is not None and int(num_classes) != out.shape[1]:
    raise ValueError(f"num_classes={num_classes} but the module returns {out.shape[1]} logits")
  embed = _Apply(graph, image_shape, layout, batch, target) if target is not None else None
  return Imported(apply=apply, params=params, input_shape=image_shape,
                  num_classes=int(out.shape[1]), input_range=input_range, mean=mean, std=std,
                  embed=embed, source=source or default_source)


class _Apply:
  """`apply(params, x [N, H, W, C]) -> logits` (or, with `until`, the flattened value of that
  node: [N, D]) of a Graph. Compares by identity (jit caches per Imported)."""

  def __init__(self, graph: Graph, image_shape, layout: str, batch: int | None,
               until: str | None):
    self.graph, self.image_shape, self.layout = graph, tuple(image_shape), layout
    self.batch, self.until = batch, until

  def __call__(self, params, x):
    x = jnp.asarray(x)
    if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
      raise ValueError(f"expected images [N, {', '.join(map(str, self.image_shape))}] "
                       f"(NHWC), got shape {x.shape}")
    if self.batch is not None and x.shape[0] != self.batch:
      raise ValueError(f"the program was exported with a fixed batch of {self.batch}, got "
                       f"{x.shape[0]} images: export it with a dynamic batch "
                       "(torch.export.Dim) or pass the module itself")
    if self.layout == "NCHW":  # NHWC is the channels-last storage of the module's NCHW
      x = _ChannelsLast(x) if self.graph.channels_last else jnp.transpose(x, (0, 3, 1, 2))
    out = self.graph.run(params, x, self.until)
    if self.until is not None:
      out = jnp.reshape(out, (out.shape[0], -1))
    return out
