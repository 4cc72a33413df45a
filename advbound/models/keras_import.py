"""Keras 3 classifiers (on the JAX backend) as `Imported` models: pure JAX functions of their
weights, for the attacks and analyses of advbound.

  from advbound import models
  from advbound.models import keras_import

  net = keras_import.application("InceptionResNetV2", weights="irv2.weights.h5")
  model = models.from_keras(net, **keras_import.preprocessing("InceptionResNetV2"),
                            embedding="predictions")
  logits_fn = models.as_logits_fn(model, input_bounds=(0., 255.))   # x in [0, 255], RGB

The network runs through `keras.Model.stateless_call` with the weights as explicit arguments
(`Imported.params` = {"trainable": [...], "non_trainable": [...]}, copies of the model's
values when imported, in the order of `model.trainable_variables` and
`model.non_trainable_variables`), always with training=False: batch normalisation uses its
moving statistics and dropout is off. The function is traceable by jit, grad and vmap.

Input handling. Keras applications preprocess their inputs with `preprocess_input`; the same
maps are `Imported`'s input range and normalisation (`preprocessing(name)` returns them):
  - "tf" mode (InceptionResNetV2, InceptionV3, Xception, MobileNet, MobileNetV2, NASNet,
    ResNetV2): x / 127.5 - 1, i.e. `input_range=(-1, 1)`;
  - "torch" mode (DenseNet): x / 255, then ImageNet mean/std: `input_range=(0, 1),
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)`;
  - "caffe" mode (ResNet50/101/152, VGG16/19): RGB -> BGR, minus the ImageNet BGR means, in
    [0, 255]: `input_range=(0, 255), mean=(123.68, 116.779, 103.939), std=(1, 1, 1),
    channel_order="bgr"` (the mean in RGB order: it is subtracted before the flip);
  - preprocessing inside the model (EfficientNet, EfficientNetV2, ConvNeXt, MobileNetV3):
    `input_range=(0, 255)`.
Inputs are channels last (N, H, W, C); a channels-first model gets them transposed inside
`apply`.

Logits. A network whose output layer applies a softmax (Keras applications and the usual
`Dense(K, activation="softmax")` head) would give probabilities, not logits: by default
(`strip_softmax=True`) `apply` returns the output layer's pre-softmax values, whose softmax is
the network's output. `application` builds its models with `classifier_activation=None`.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from advbound.models.imported import Imported

__all__ = ["from_keras", "application", "preprocessing", "keras_module"]


def keras_module():
  """The `keras` module on the JAX backend. Sets KERAS_BACKEND=jax (unless the environment says
  otherwise) when keras is not imported yet; ValueError when keras runs on another backend."""
  if "keras" not in sys.modules:
    os.environ.setdefault("KERAS_BACKEND", "jax")
  import keras  # pylint: disable=g-import-not-at-top
  backend = keras.backend.backend()
  if backend != "jax":
    raise ValueError(
        f"Keras runs on the {backend!r} backend; advbound imports Keras models on the JAX "
        f"backend only: set KERAS_BACKEND=jax before keras is imported (the environment has "
        f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r})")
  return keras


def from_keras(model, *, input_range: Sequence[float] = (0.0, 1.0),
               mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
               embedding: str | None = None, source: str | None = None,
               data_format: str | None = None, channel_order: str = "rgb",
               strip_softmax: bool = True,
               input_shape: Sequence[int] | None = None) -> Imported:
  """A Keras 3 image classifier as an `Imported` model.

  Args:
    model: a `keras.Model` (functional or sequential, built on one image input; a subclassed
      model with `input_shape`), or the path of a `.keras` file (`keras.saving.load_model`).
    input_range, mean, std: the model's input range and per-channel normalisation (module
      docstring; `preprocessing(name)` gives those of Keras applications).
    embedding: the name of a layer (`model.get_layer`) whose *input* is the embedding, e.g. the
      classifier head "predictions": `Imported.embed(params, x)` -> that input flattened to
      [N, D], computed by a sub-model sharing the model's weights.
    source: how reports name the model (default: "keras <model name>" and the file).
    data_format: "channels_last" or "channels_first" (default: what the model's layers say,
      else `keras.config.image_data_format()`). Inputs are (N, H, W, C) either way.
    channel_order: "rgb", or "bgr" to reverse the channels inside `apply` (caffe-mode models).
    strip_softmax: return the pre-softmax values of an output layer that applies a softmax
      (functional and sequential models; a subclassed model's output is taken as it is).
    input_shape: (H, W, C), required for a model without an input graph (subclassed; K then
      comes from an abstract evaluation at that shape); else checked against the graph's.

  Returns:
    `Imported` with params {"trainable": [...], "non_trainable": [...]} (jnp copies of the
    model's current values), input_shape (H, W, C), num_classes K from the output shape.
  """
  keras = keras_module()
  path = None
  if isinstance(model, (str, os.PathLike)):
    path = os.fspath(model)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"from_keras: no model file {path!r} (for a Keras application by "
                              f"name use keras_import.application(name, ...))")
    model = keras.saving.load_model(path)
  if not isinstance(model, keras.Model):
    raise TypeError(f"from_keras: expected a keras.Model or the path of a .keras file, got "
                    f"{type(model).__name__}")
  if channel_order not in ("rgb", "bgr"):
    raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
  first = _data_format(keras, model, data_format) == "channels_first"
  variables = list(model.trainable_variables) + list(model.non_trainable_variables)
  params = {"trainable": [jnp.array(v.value) for v in model.trainable_variables],
            "non_trainable": [jnp.array(v.value) for v in model.non_trainable_variables]}
  inputs = _graph_input(model)
  if inputs is None:  # a subclassed model: no layer graph
    if input_shape is None:
      raise ValueError(f"from_keras: {model.name} ({type(model).__name__}) has no input graph; "
                       f"pass input_shape=(H, W, C) or build it on keras.Input((H, W, C))")
    if embedding is not None:
      raise ValueError(f"from_keras: embedding= needs a functional or sequential model; "
                       f"{model.name} has no layer graph")
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3:
      raise ValueError(f"input_shape must be (H, W, C), got {input_shape!r}")
    if not model.built or not variables:
      raise ValueError(f"from_keras: {model.name} is not built (it has no weights yet): call it "
                       f"once on a batch of images first")
    apply = _Stateless(model, variables, first, channel_order)
    out = jax.eval_shape(apply, params, jax.ShapeDtypeStruct((1,) + input_shape, jnp.float32))
    out_shape = tuple(out.shape)
  else:
    shape = tuple(inputs.shape)
    if len(shape) != 4 or any(s is None for s in shape[1:]):
      raise ValueError(f"from_keras: {model.name} takes inputs of shape {shape}, not a batch of "
                       f"images of a fixed size (N, H, W, C); build it on keras.Input((H, W, C)) "
                       f"or pass input_shape=")
    graph_shape = (shape[2], shape[3], shape[1]) if first else shape[1:]
    if input_shape is not None and tuple(input_shape) != graph_shape:
      raise ValueError(f"from_keras: input_shape {tuple(input_shape)} differs from the (H, W, C) "
                       f"{graph_shape} {model.name} is built on")
    input_shape = graph_shape
    outputs = _single(_graph_tensors(model, "outputs"), model, "output")
    out_shape = tuple(outputs.shape)
    head = _output_layer(keras, outputs) if strip_softmax else None
    if head is not None and isinstance(head, keras.layers.Softmax):
      # the logits are the input of a final Softmax layer: run the sub-model that ends there
      apply = _Stateless(keras.Model(inputs, head.input), variables, first, channel_order)
    else:
      softmax = head is not None and _is_softmax(getattr(head, "activation", None))
      apply = _Stateless(model, variables, first, channel_order,
                         linear=head if softmax else None)
  if len(out_shape) != 2 or out_shape[1] is None:
    raise ValueError(f"from_keras: {model.name}'s output has shape {out_shape}; expected logits "
                     f"(N, K)")
  embed = None
  if embedding is not None:
    embed = _Stateless(_embedding_model(keras, model, inputs, embedding), variables, first,
                       channel_order, flatten=True)
  if source is None:
    source = f"keras {model.name}" + (f" ({path})" if path else "")
  return Imported(apply=apply, params=params, input_shape=input_shape,
                  num_classes=int(out_shape[1]), input_range=input_range, mean=mean, std=std,
                  embed=embed, source=source)


class _Stateless:
  """`fn(params, x [N, H, W, C]) -> [N, K]` (or [N, D] flattened): `model.stateless_call` in
  inference mode with the values of `params` for the model's variables."""

  _lock = threading.Lock()  # guards the temporary linear activation of a softmax head

  def __init__(self, model, variables: list, channels_first: bool, channel_order: str, *,
               flatten: bool = False, linear=None):
    where = {id(v): i for i, v in enumerate(variables)}
    def index(vs):
      missing = [v.path for v in vs if id(v) not in where]
      if missing:
        raise ValueError(f"{model.name} has variables outside the imported model: {missing}")
      return [where[id(v)] for v in vs]
    self.model = model
    self.trainable = index(model.trainable_variables)
    self.non_trainable = index(model.non_trainable_variables)
    self.channels_first = channels_first
    self.bgr = channel_order == "bgr"
    self.flatten = flatten
    self.linear = linear

  def __call__(self, params, x: jax.Array) -> jax.Array:
    flat = list(params["trainable"]) + list(params["non_trainable"])
    if self.bgr:
      x = x[..., ::-1]
    if self.channels_first:
      x = jnp.transpose(x, (0, 3, 1, 2))
    trainable = [flat[i] for i in self.trainable]
    non_trainable = [flat[i] for i in self.non_trainable]
    if self.linear is None:
      out = self.model.stateless_call(trainable, non_trainable, x, training=False)[0]
    else:
      with self._lock:
        activation = self.linear.activation
        self.linear.activation = _identity
        try:
          out = self.model.stateless_call(trainable, non_trainable, x, training=False)[0]
        finally:
          self.linear.activation = activation
    return out.reshape(out.shape[0], -1) if self.flatten else out


def _identity(x):
  return x


def _graph_input(model):
  """The model's single input KerasTensor, or None when it has no graph (subclassed)."""
  try:
    tensors = model.inputs
  except (AttributeError, ValueError):
    return None
  if tensors is None:
    return None
  return _single(tensors, model, "input")


def _graph_tensors(model, what: str):
  try:
    return getattr(model, what)
  except (AttributeError, ValueError) as e:
    raise ValueError(f"from_keras: {model.name} has no {what} graph ({e}); build it on "
                     f"keras.Input((H, W, C)) (a functional or sequential model)") from None


def _single(tensors, model, what: str):
  if tensors is None or not isinstance(tensors, (list, tuple)) or len(tensors) != 1:
    count = "none" if not tensors else (len(tensors) if isinstance(tensors, (list, tuple))
                                        else type(tensors).__name__)
    raise ValueError(f"from_keras: {model.name} must have one image {what}, it has {count}")
  return tensors[0]


def _layers(model):
  for layer in model.layers:
    yield layer
    if hasattr(layer, "layers"):
      yield from _layers(layer)


def _data_format(keras, model, data_format: str | None) -> str:
  formats = ("channels_last", "channels_first")
  if data_format is not None:
    if data_format not in formats:
      raise ValueError(f"data_format must be one of {formats}, got {data_format!r}")
    return data_format
  said = {getattr(layer, "data_format", None) for layer in _layers(model)} & set(formats)
  if len(said) > 1:
    raise ValueError(f"from_keras: {model.name}'s layers mix channels_last and channels_first; "
                     f"pass data_format=")
  return said.pop() if said else keras.config.image_data_format()


def _is_softmax(activation) -> bool:
  return getattr(activation, "__name__", None) == "softmax"


def _output_layer(keras, output):
  """The layer making the model's output when it applies a softmax (its activation, or a
  Softmax layer), else None."""
  history = getattr(output, "_keras_history", None)
  layer = history[0] if history else None
  if isinstance(layer, keras.layers.Softmax) or (
      isinstance(layer, keras.layers.Layer) and _is_softmax(getattr(layer, "activation", None))):
    return layer
  return None


def _embedding_model(keras, model, inputs, name: str):
  """keras.Model(inputs, <layer name>.input), sharing `model`'s variables."""
  names = [layer.name for layer in model.layers]
  if name not in names:
    raise ValueError(f"from_keras: {model.name} has no layer {name!r} (embedding= names the "
                     f"layer whose input is the embedding); its layers: {names}")
  layer = model.get_layer(name)
  try:
    features = layer.input
  except (AttributeError, ValueError) as e:
    raise ValueError(f"from_keras: layer {name!r} of {model.name} has no single input ({e})"
                     ) from None
  if isinstance(features, (list, tuple, dict)):
    raise ValueError(f"from_keras: layer {name!r} of {model.name} has several inputs; name a "
                     f"layer with one")
  return keras.Model(inputs, features, name=f"{model.name}_embedding")


def _applications(keras) -> dict[str, Any]:
  return {n: getattr(keras.applications, n) for n in dir(keras.applications)
          if n[:1].isupper() and callable(getattr(keras.applications, n))}


def _find_application(keras, name: str):
  apps = _applications(keras)
  key = name.replace("_", "").lower()
  found = [n for n in apps if n.lower() == key]
  if not found:
    raise ValueError(f"unknown Keras application {name!r}; expected one of {sorted(apps)}")
  return found[0], apps[found[0]]


def application(name: str, *, weights: str | None = None,
                input_shape: tuple[int, int, int] | None = None, classes: int = 1000,
                **kwargs):
  """A `keras.applications` network by name (case and underscores ignored:
  "InceptionResNetV2" or "inception_resnet_v2"), with logits as its output.

  Args:
    weights: None (random initialisation), the path of a weights file (loaded by Keras), or
      "imagenet" (downloaded by Keras on first use, then cached under ~/.keras/models; where
      there is no network, download it elsewhere and pass the file).
    input_shape: (H, W, C) (default: the application's own, e.g. 299x299x3; each has a
      minimum, 75x75 for InceptionResNetV2).
    classes: the number of classes of the head (1000 for the ImageNet weights).
    kwargs: the application's other arguments; `classifier_activation` defaults to None here
      (logits; Keras' default is a softmax).
  Returns:
    The `keras.Model`, for `from_keras` (with `**preprocessing(name)`).
  """
  keras = keras_module()
  full, build = _find_application(keras, name)
  if "classifier_activation" in inspect.signature(build).parameters:
    kwargs.setdefault("classifier_activation", None)
  if weights not in (None, "imagenet"):
    weights = os.fspath(weights)
    if not os.path.isfile(weights):
      raise FileNotFoundError(f"application {full}: no weights file {weights!r}")
  try:
    return build(weights=weights, input_shape=input_shape, classes=classes, **kwargs)
  except (ValueError, TypeError):
    raise
  except Exception as e:  # pylint: disable=broad-except
    if weights != "imagenet":
      raise
    raise RuntimeError(
        f"application {full}: the ImageNet weights could not be loaded ({type(e).__name__}: "
        f"{e}). Keras downloads them on first use; without network access, download the "
        f"weights file elsewhere and pass its local path as weights=") from e


# Keras applications' preprocess_input as Imported's input range and normalisation, by module.
_TF = {"input_range": (-1.0, 1.0)}
_TORCH = {"input_range": (0.0, 1.0), "mean": (0.485, 0.456, 0.406),
          "std": (0.229, 0.224, 0.225)}
_CAFFE = {"input_range": (0.0, 255.0), "mean": (123.68, 116.779, 103.939),
          "std": (1.0, 1.0, 1.0), "channel_order": "bgr"}
_INSIDE = {"input_range": (0.0, 255.0)}
_PREPROCESSING = {
    "inception_resnet_v2": _TF, "inception_v3": _TF, "xception": _TF, "mobilenet": _TF,
    "mobilenet_v2": _TF, "nasnet": _TF, "resnet_v2": _TF, "densenet": _TORCH,
    "resnet": _CAFFE, "vgg16": _CAFFE, "vgg19": _CAFFE, "efficientnet": _INSIDE,
    "efficientnet_v2": _INSIDE, "convnext": _INSIDE, "mobilenet_v3": _INSIDE,
}


def preprocessing(name: str) -> dict[str, Any]:
  """The `from_keras` keyword arguments (input_range, and mean, std, channel_order where
  needed) equivalent to the `preprocess_input` of Keras application `name`, e.g.
  {"input_range": (-1.0, 1.0)} for InceptionResNetV2 (module docstring). For the models that
  preprocess inside the network (EfficientNet, ConvNeXt, MobileNetV3) this holds with their
  default include_preprocessing=True."""
  keras = keras_module()
  full, build = _find_application(keras, name)
  module = build.__module__.rsplit(".", 1)[-1]
  if module not in _PREPROCESSING:
    raise ValueError(f"no known preprocessing for Keras application {full} (module {module}); "
                     f"pass input_range/mean/std to from_keras yourself")
  return dict(_PREPROCESSING[module])
