"""Shared fixtures: a quickstart natural model trained once per test session."""

import os

import pytest

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture(scope="session")
def quickstart_natural(tmp_path_factory):
  """(model, train Dataset, test Dataset) of configs/quickstart.py's natural variant."""
  from advbound import data, training
  from configs import quickstart

  config = quickstart.get_config()
  train_data = data.load("mnist", source="embedded", split="train")
  test_data = data.load("mnist", source="embedded", split="test")
  workdir = str(tmp_path_factory.mktemp("quickstart") / "natural")
  model = training.train(train_data, config.model, config.models.natural, workdir)
  return model, train_data, test_data


@pytest.fixture
def tiny_config():
  """A fresh configs/smoke.py: a tiny MNIST-5k config with every pipeline section, for
  end-to-end tests (a natural MnistCNN trained 60 steps, 4 attacked images with 2 x 20 CW
  iterations); each test adjusts what it needs."""
  from configs import smoke

  return smoke.get_config()
