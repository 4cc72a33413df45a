"""Pre-flight (advbound.runtime.stages.preflight): bad data files and workdirs are refused
before anything is written, each with a message naming the file, the value and the fix."""

import os

import numpy as np
import pytest
from ml_collections import config_dict

from advbound import data
from advbound.runtime import stages, workdir


def _config(path, **extra):
  return config_dict.ConfigDict(dict(data=dict(name="mnist", source="npz", path=str(path), seed=0,
                                               data_dir=None, validation_size=None, **extra)))


def _save(path, x, y):
  np.savez(path, x=x, y=y)
  return path


def _good(n=40, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, size=(n, 28, 28, 1)).astype(np.uint8),
          np.arange(n) % 10)


def test_good_data_passes_and_writes_nothing(tmp_path):
  path = _save(tmp_path / "pool.npz", *_good())
  run = tmp_path / "run"
  stages.preflight(_config(path), str(run))
  assert not run.exists()


@pytest.mark.parametrize("case,expected", [
    ("not_zip", r"not a readable \.npz file"),
    ("truncated", r"not a readable \.npz file .*BadZipFile"),
    ("nan", "images contain NaN or inf"),
    ("labels", r"label 10 outside \[0, 10\)"),
    ("rank3", r"images must have rank 4 \[N, H, W, C\], got shape \(40, 28, 28\)"),
    ("bounds", r"float images span \[0.0, 2.0\], outside the bounds \(0.0, 1.0\)"),
])
def test_bad_files_are_named(tmp_path, case, expected):
  x, y = _good()
  path = tmp_path / f"{case}.npz"
  if case == "not_zip":
    path.write_text("these are not the images you are looking for")
  elif case == "truncated":  # a zip archive cut short, as by an interrupted copy
    _save(path, x, y)
    path.write_bytes(path.read_bytes()[:4000])
  elif case == "nan":
    xf = x.astype(np.float32) / 255
    xf[3, 4, 5, 0] = np.nan
    _save(path, xf, y)
  elif case == "labels":
    y = y.copy()
    y[7] = 10
    _save(path, x, y)
  elif case == "rank3":
    _save(path, x[..., 0], y)
  else:
    _save(path, x.astype(np.float32) / 255 * 2, y)
  with pytest.raises((data.DataError, ValueError), match=expected) as info:
    stages.preflight(_config(path), str(tmp_path / "run"))
  assert str(path) in str(info.value)
  assert not (tmp_path / "run").exists()


def test_every_file_of_a_split_pattern_is_checked(tmp_path):
  x, y = _good(60)
  _save(tmp_path / "d_train_a.npz", x, y)
  bad = y.copy()
  bad[0] = -1
  _save(tmp_path / "d_train_b.npz", x, bad)
  _save(tmp_path / "d_test.npz", x, y)
  cfg = _config(tmp_path / "d_{split}*.npz", )
  cfg.data.validation_size = 20
  with pytest.raises(data.DataError, match=r"d_train_b\.npz: .*label -1 outside"):
    stages.preflight(cfg, str(tmp_path / "run"))


def test_a_train_split_smaller_than_the_hold_out_names_the_setting(tmp_path):
  x, y = _good(300)
  _save(tmp_path / "s_train.npz", x, y)
  _save(tmp_path / "s_test.npz", x[:50], y[:50])
  cfg = _config(tmp_path / "s_{split}.npz")
  with pytest.raises(data.DataError, match=r"holds 300 training images, but 5000 are held out.*"
                     r"--config\.data\.validation_size below 300"):
    stages.preflight(cfg, str(tmp_path / "run"))
  cfg.data.validation_size = 30
  stages.preflight(cfg, str(tmp_path / "run"))
  # the setting sizes the split the loader returns (stratified: 3 per class)
  val = data.load("mnist", source="npz", split="validation", path=str(tmp_path / "s_{split}.npz"),
                  validation_size=30)
  train = data.load("mnist", source="npz", split="train", path=str(tmp_path / "s_{split}.npz"),
                    validation_size=30)
  assert len(val) == 30 and len(train) == 270
  np.testing.assert_array_equal(np.bincount(val.labels, minlength=10), np.full(10, 3))


def test_workdir_problems_are_named(tmp_path):
  file = tmp_path / "results.txt"
  file.write_text("x")
  with pytest.raises(workdir.WorkdirError, match="is an existing file, not a folder"):
    workdir.check_usable(str(file))
  with pytest.raises(workdir.WorkdirError, match="is a file, not a folder"):
    workdir.check_usable(str(file / "run"))
  with pytest.raises(workdir.WorkdirError, match="--workdir is empty"):
    workdir.check_usable("")
  workdir.check_usable(str(tmp_path / "new" / "deeper"))  # creatable: fine, and not created
  assert not (tmp_path / "new").exists()
  if os.geteuid() != 0:  # root writes anywhere
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(workdir.WorkdirError, match="cannot write"):
      workdir.check_usable(str(locked / "run"))


def test_the_hold_out_setting_left_at_none_keeps_existing_stamps():
  """data.validation_size came after workdirs were written: at None it stays out of the stamp
  (those workdirs stay current); set, it changes the stamp."""
  stage = stages.Stage("train", sections=("data",))
  old = config_dict.ConfigDict(dict(data=dict(name="mnist", source="embedded", path="", seed=0,
                                              data_dir=None)))
  new = config_dict.ConfigDict(dict(data=dict(old.data.to_dict(), validation_size=None)))
  assert stages.stamp(new, stage, {}) == stages.stamp(old, stage, {})
  new.data.validation_size = 100
  assert stages.stamp(new, stage, {}) != stages.stamp(old, stage, {})
