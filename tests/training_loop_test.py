"""Tests of advbound/training/loop.py: batching, resume after a kill, NaN handling, snapshots,
accuracy."""

import jax
import numpy as np
import pytest
from flax import nnx
from ml_collections import config_dict

from advbound import models, training
from advbound.analysis import evaluate
from advbound.training import loop
from configs import common
from tiny_training import params as _params, tiny_data as _tiny_data  # tests/tiny_training.py


def test_batch_indices_cover_each_epoch_once():
  n, bs = 50, 8
  epoch0 = np.concatenate([training.batch_indices(7, s, bs, n) for s in range(n // bs)])
  assert len(set(epoch0.tolist())) == len(epoch0) == 48
  np.testing.assert_array_equal(training.batch_indices(7, 3, bs, n),
                                training.batch_indices(7, 3, bs, n))
  assert not np.array_equal(training.batch_indices(7, 6, bs, n),
                            training.batch_indices(7, 0, bs, n))
  with pytest.raises(ValueError, match="batch_size 64 exceeds"):
    training.batch_indices(0, 0, 64, n)


class Killed(Exception):
  pass


def _kill_at(step):
  def hook(done):
    if done == step:
      raise Killed()
  return hook


@pytest.mark.parametrize("name,model_cfg,overrides", [
    ("mnist", dict(name="mnist_cnn"),
     dict(adversarial=True, attack=dict(epsilon=0.3, step_size=0.1, num_steps=2,
                                        epsilon_warmup_fraction=0.5))),
    ("cifar10", dict(name="small_cifar", width=4),
     dict(optimizer="sgd", schedule="piecewise", weight_decay=5e-4, augment="crop_flip")),
])
def test_resume_equals_uninterrupted(tmp_path, name, model_cfg, overrides):
  ds = _tiny_data(name)
  mcfg = config_dict.ConfigDict(model_cfg)
  tcfg = common.train(num_steps=9, batch_size=16, log_every=2, checkpoint_every=4,
                      learning_rate=0.01, **overrides)
  reference = training.train(ds, mcfg, tcfg, str(tmp_path / "ref"))
  with pytest.raises(Killed):
    training.train(ds, mcfg, tcfg, str(tmp_path / "run"), on_step=_kill_at(6))
  resumed = training.train(ds, mcfg, tcfg, str(tmp_path / "run"))
  jax.tree.map(np.testing.assert_array_equal, _params(reference), _params(resumed))
  # the run really trained: parameters moved away from the initialisation
  init = training.build_model(mcfg, tcfg.seed)
  assert not np.array_equal(nnx.state(init, nnx.Param)["head" if name == "cifar10" else "fc2"]
                            ["kernel"][...], nnx.state(resumed, nnx.Param)[
                                "head" if name == "cifar10" else "fc2"]["kernel"][...])
  loaded = training.load_model(mcfg, tcfg, str(tmp_path / "run"))
  jax.tree.map(np.testing.assert_array_equal, _params(reference), _params(loaded))


def test_settings_mismatch_and_unfinished(tmp_path):
  ds = _tiny_data()
  mcfg = config_dict.ConfigDict(dict(name="mnist_cnn"))
  tcfg = common.train(num_steps=4, batch_size=16, log_every=2, checkpoint_every=2)
  with pytest.raises(Killed):
    training.train(ds, mcfg, tcfg, str(tmp_path), on_step=_kill_at(3))
  with pytest.raises(ValueError, match="step 2, not 4"):
    training.load_model(mcfg, tcfg, str(tmp_path))
  other = common.train(num_steps=4, batch_size=16, log_every=2, checkpoint_every=2,
                       learning_rate=0.5)
  with pytest.raises(ValueError, match="other settings"):
    training.train(ds, mcfg, other, str(tmp_path))
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    training.load_model(mcfg, tcfg, str(tmp_path / "empty"))


def test_nan_loss_stops_with_clear_error(tmp_path):
  ds = _tiny_data()
  mcfg = config_dict.ConfigDict(dict(name="mnist_cnn"))
  tcfg = common.train(num_steps=6, batch_size=16, optimizer="sgd", learning_rate=1e30,
                      momentum=0.0, log_every=3, checkpoint_every=3)
  with pytest.raises(FloatingPointError, match="non-finite loss .* at step"):
    training.train(ds, mcfg, tcfg, str(tmp_path))
  # no checkpoint of a diverged state was written
  assert loop._checkpoint_manager(str(tmp_path)).latest_step() is None


@pytest.mark.xdist_group(name="quickstart")  # shares the session-scoped trained model
def test_quickstart_natural_accuracy(quickstart_natural):
  """configs/quickstart.py's natural MnistCNN reaches >= 97% on the held-out MNIST-5k test split."""
  model, _, test = quickstart_natural
  acc = evaluate.accuracy(models.as_logits_fn(model), test.images, test.labels)
  print(f"quickstart natural test accuracy: {acc:.4f} on {len(test)} images")
  assert acc >= 0.97


def test_snapshots_restore_the_model_of_their_step(tmp_path):
  """snapshot_every keeps parameters and batch statistics at step 0, every k steps and at the
  end; each restores equal to a run stopped at that step; a resumed run adds the rest."""
  ds = _tiny_data("cifar10")
  mcfg = config_dict.ConfigDict(dict(name="small_cifar", width=4))  # has batch statistics
  tcfg = common.train(num_steps=5, batch_size=16, log_every=5, checkpoint_every=2,
                      learning_rate=0.01, snapshot_every=2)
  with pytest.raises(Killed):
    training.train(ds, mcfg, tcfg, str(tmp_path / "run"), on_step=_kill_at(3))
  final = training.train(ds, mcfg, tcfg, str(tmp_path / "run"))
  assert training.snapshot_steps(str(tmp_path / "run")) == [0, 2, 4, 5]
  jax.tree.map(np.testing.assert_array_equal, _params(final),
               _params(training.load_snapshot(mcfg, tcfg, str(tmp_path / "run"), 5)))
  short = common.train(num_steps=4, batch_size=16, log_every=4, checkpoint_every=4,
                       learning_rate=0.01)  # constant schedule: the first 4 steps coincide
  at4 = training.train(ds, mcfg, short, str(tmp_path / "short"))
  jax.tree.map(np.testing.assert_array_equal, _params(at4),
               _params(training.load_snapshot(mcfg, tcfg, str(tmp_path / "run"), 4)))
  init = training.build_model(mcfg, tcfg.seed)
  jax.tree.map(np.testing.assert_array_equal, _params(init),
               _params(training.load_snapshot(mcfg, tcfg, str(tmp_path / "run"), 0)))
  with pytest.raises(ValueError, match="no snapshot of step 3"):
    training.load_snapshot(mcfg, tcfg, str(tmp_path / "run"), 3)
  assert training.snapshot_steps(str(tmp_path / "short")) == []
