"""Flax NNX classifiers as `Imported` models: a user's own module, or one of our trained models
from a study's workdir.

  imported = models.from_flax(my_module, input_shape=(32, 32, 3), input_range=(0, 1))
  imported = models.from_flax(workdir="runs/mnist", variant="natural")

A module becomes `apply(state, x) = nnx.merge(graphdef, state)(x)` on a snapshot of its state
taken in eval mode (batch norm on its running averages, dropout off): pure, traceable by jit,
grad and vmap, and unaffected by later changes to the module. A module with an `embed` method
gets it as the embedding hook.

A workdir model is the one `advbound.training.loop.train` left under
`<workdir>/models/<variant>/`: its `settings.json` records the data set (name, image shape), the
architecture (`model`: the registry name and its arguments) and the training settings; the
latest orbax checkpoint holds the weights and batch statistics (`loop.load_model`, which also
takes the state the overfitting guard kept when it stopped the run). Our models are trained in
their data's units, so the input range defaults to that data set's bounds
(`advbound.data.INFO[name].bounds`: [0, 1] for MNIST, [0, 255] for CIFAR-10).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from ml_collections import config_dict

from advbound import data as data_lib
from advbound.models.imported import Imported

__all__ = ["from_flax", "load_workdir_model"]


def from_flax(model: nnx.Module | None = None, *, workdir: str | None = None,
              variant: str = "natural", input_range: Sequence[float] | None = None,
              mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
              source: str | None = None,
              input_shape: Sequence[int] | None = None) -> Imported:
  """A Flax NNX classifier as an `Imported` model.

  Args:
    model: a user's NNX module, `model(x [N, H, W, C]) -> logits [N, K]`; `input_shape` is then
      required (K comes from an abstract evaluation at that shape).
    workdir, variant: instead of `model`, our model variant trained under
      `<workdir>/models/<variant>/` (any study's workdir).
    input_range: the model's input range; default (0, 1) for a user module, the bounds of the
      training data for a workdir model.
    mean, std: per-channel normalisation applied before the module (None: none).
    source: how reports name the model (default: the module's class, or the workdir, variant
      and architecture).
    input_shape: (H, W, C) of a user module's inputs (a workdir model's comes from its data).

  Returns:
    `Imported` whose params are the module's whole state (parameters and batch statistics).
  """
  if (model is None) == (workdir is None):
    raise ValueError("from_flax: pass either a Flax NNX module or workdir= (with variant=), "
                     f"not {'both' if model is not None else 'neither'}")
  if workdir is not None:
    model, info, described = load_workdir_model(workdir, variant)
    if input_shape is not None and tuple(input_shape) != info.image_shape:
      raise ValueError(f"input_shape {tuple(input_shape)} differs from the {info.name} images "
                       f"{info.image_shape} the model under {workdir} was trained on")
    input_shape = info.image_shape
    input_range = info.bounds if input_range is None else input_range
    source = described if source is None else source
  else:
    if not isinstance(model, nnx.Module):
      raise TypeError(f"from_flax: expected a flax.nnx.Module, got {type(model).__name__}")
    if input_shape is None:
      raise ValueError(f"from_flax: pass input_shape=(H, W, C) for {type(model).__name__} "
                       "(the image shape it takes, channels last)")
    input_range = (0.0, 1.0) if input_range is None else input_range
    source = f"flax {type(model).__name__}" if source is None else source
  shape = tuple(int(s) for s in input_shape)
  if len(shape) != 3:
    raise ValueError(f"input_shape must be (H, W, C), got {input_shape!r}")

  snapshot = nnx.merge(*nnx.split(model), copy=True)  # later changes to `model` do not leak in
  snapshot.eval()
  graphdef, state = nnx.split(snapshot)
  state = jax.tree.map(jnp.array, state)
  apply = functools.partial(_apply, graphdef, "__call__", False)
  try:
    out = jax.eval_shape(apply, state, jax.ShapeDtypeStruct((1,) + shape, jnp.float32))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"from_flax: {source} does not run on inputs of shape (N,) + {shape}: "
                     f"{type(e).__name__}: {e}") from e
  if len(out.shape) != 2:
    raise ValueError(f"from_flax: {source} returns shape {out.shape} for inputs (1,) + {shape}; "
                     "expected logits (N, K)")
  embed = (functools.partial(_apply, graphdef, "embed", True)
           if callable(getattr(snapshot, "embed", None)) else None)
  return Imported(apply=apply, params=state, input_shape=shape, num_classes=int(out.shape[1]),
                  input_range=input_range, mean=mean, std=std, embed=embed, source=source)


def _apply(graphdef: nnx.GraphDef, method: str, flatten: bool, state: nnx.State,
           x: jax.Array) -> jax.Array:
  """`graphdef`'s module with `state`, its `method` on x (the output [N, ...] as [N, D] when
  `flatten`)."""
  out = getattr(nnx.merge(graphdef, state, copy=True), method)(x)
  return out.reshape(out.shape[0], -1) if flatten else out


def load_workdir_model(workdir: str, variant: str = "natural"
                       ) -> tuple[nnx.Module, data_lib.DatasetInfo, str]:
  """(model, info of the data it was trained on, a description) of the finished training run
  under `<workdir>/models/<variant>/`; FileNotFoundError or ValueError naming that folder when
  there is no finished model there."""
  from advbound.training import loop  # pylint: disable=g-import-not-at-top
  folder = os.path.join(workdir, "models", variant)
  settings_path = os.path.join(folder, "settings.json")
  if not os.path.isfile(settings_path):
    models_dir = os.path.join(workdir, "models")
    found = sorted(d for d in (os.listdir(models_dir) if os.path.isdir(models_dir) else [])
                   if os.path.isfile(os.path.join(models_dir, d, "settings.json")))
    raise FileNotFoundError(f"no trained model in {folder} (no settings.json); the model "
                            f"variants under {models_dir}: {found or 'none'}")
  with open(settings_path) as f:
    settings = json.load(f)
  try:
    name = settings["data"]["name"]
    model_cfg = config_dict.ConfigDict(settings["model"])
    train_cfg = config_dict.ConfigDict(settings["train"])
  except (KeyError, TypeError) as e:
    raise ValueError(f"{settings_path} does not record data, model and train settings "
                     f"({e!r})") from None
  if name not in data_lib.INFO:
    raise ValueError(f"{settings_path}: the model was trained on {name!r}, not a data set "
                     f"advbound knows ({sorted(data_lib.INFO)}); pass the model itself")
  try:
    model = loop.load_model(model_cfg, train_cfg, folder)
  except (FileNotFoundError, ValueError) as e:
    raise type(e)(f"no finished model in {folder}: {e}") from e
  arguments = {k: v for k, v in settings["model"].items() if k != "name"}
  arch = settings["model"]["name"] + (
      "(" + ", ".join(f"{k}={v}" for k, v in sorted(arguments.items())) + ")" if arguments
      else "")
  return model, data_lib.INFO[name], (f"advbound {variant} model {arch} trained on {name}, "
                                      f"from {folder}")
