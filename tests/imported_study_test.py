"""Studies on imported models, end to end: He et al.'s study (configs/smoke.py) on a PyTorch
CNN trained here in torch, and the blind-spot study (configs/blind_spot_smoke.py) with a Keras
CNN trained here with Keras' own fit, each given to the study through `models.<variant>.source`.
The report's clean accuracy is checked against the source framework's own predictions."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest
from ml_collections import config_dict

from advbound import data as data_lib
from advbound.runtime import io
from advbound.studies.blind_spot import pipeline as blind_spot
from advbound.studies.decision_boundary import pipeline as decision_boundary
from configs import blind_spot_smoke, smoke
from tests.study_reads import assert_declared_reads

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")
nn = torch.nn


def torch_cnn() -> "nn.Module":
  """A small MNIST CNN (NCHW), importable as 'tests.imported_study_test:torch_cnn'."""
  torch.manual_seed(0)
  return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


def _embedded(split):
  return data_lib.load("mnist", source="embedded", split=split)


def _torch_weights(path: str) -> "nn.Module":
  """torch_cnn trained 150 Adam steps on the embedded MNIST train split; its state_dict saved."""
  train = _embedded("train")
  net = torch_cnn()
  opt = torch.optim.Adam(net.parameters(), lr=3e-3)
  x = torch.from_numpy(train.images).permute(0, 3, 1, 2)
  y = torch.from_numpy(train.labels.astype(np.int64))
  gen = torch.Generator().manual_seed(0)
  net.train()
  for _ in range(150):
    idx = torch.randint(0, len(x), (64,), generator=gen)
    opt.zero_grad()
    nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
    opt.step()
  net.eval()
  torch.save(net.state_dict(), path)
  return net


def test_decision_boundary_study_on_a_torch_model(tmp_path):
  weights = str(tmp_path / "cnn.pth")
  net = _torch_weights(weights)
  config = smoke.get_config()
  config.models.natural = config_dict.ConfigDict({
      "source": {"kind": "torch", "factory": "tests.imported_study_test:torch_cnn",
                 "weights": weights},
      "eval": {**config.eval.to_dict(),
               "autoattack": {"epsilon": 0.3, "examples": 10}}})
  del config["model"]  # no variant trains
  workdir = str(tmp_path / "run")
  results = decision_boundary.run(config, workdir)
  assert_declared_reads(decision_boundary.STUDY, workdir, config)
  test = _embedded("test")
  with torch.no_grad():
    torch_pred = net(torch.from_numpy(test.images).permute(0, 3, 1, 2)).argmax(1).numpy()
  m = results["models"]["natural"]
  assert m["imported"] and "torch tests.imported_study_test:torch_cnn" in m["source"]
  assert m["test_correct"] == int(np.sum(torch_pred == test.labels))  # torch's own count
  assert m["test_accuracy"] > 0.5  # trained: far from chance
  # AutoAttack beside PGD on the same first 10 test images: never weaker
  a = m["autoattack"]
  assert a["n"] == 10 and a["order"] == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
  assert a["robust"] == a["robust_count"]["square"]
  assert a["robust"] <= round(m["pgd_accuracy"] * m["pgd_examples"])
  report = open(os.path.join(workdir, "report.md")).read()
  assert "## Imported models" in report and "torch tests.imported_study_test:torch_cnn" in report
  assert "standard L-inf eps 0.3" in report  # the AutoAttack cell
  assert results["table1"]["natural"]["optbrittle"]["n"] == config.attack.num_images


def keras_cnn():
  """A small Keras CNN with a named penultimate layer input ('logits' takes the embedding)."""
  keras.utils.set_random_seed(0)
  return keras.Sequential([
      keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
      keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
      keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, name="logits")])


def test_blind_spot_study_on_a_keras_model(tmp_path):
  train, test = _embedded("train"), _embedded("test")
  net = keras_cnn()
  net.compile(optimizer=keras.optimizers.Adam(1e-2),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  net.fit(train.images, train.labels, batch_size=64, epochs=1, verbose=0)
  path = str(tmp_path / "cnn.keras")
  net.save(path)
  config = blind_spot_smoke.get_config()
  config.models.natural = config_dict.ConfigDict({
      "source": {"kind": "keras", "path": path, "embedding": "logits"},
      "eval": {"seed": 0, "batch_size": 500, "pgd_examples": 50,
               "pgd": {"epsilon": 0.3, "step_size": 0.1, "num_steps": 2,
                       "random_start": False}}})
  workdir = str(tmp_path / "run")
  results = blind_spot.run(config, workdir)
  assert_declared_reads(blind_spot.STUDY, workdir, config)
  keras_pred = np.argmax(net.predict(test.images, verbose=0), -1)
  m = results["imported"]["natural"]
  assert f"keras {path}" in m["source"]
  assert m["test_correct"] == int(np.sum(keras_pred == test.labels))
  report = open(os.path.join(workdir, "report.md")).read()
  assert "## Imported models" in report and "natural (imported (keras:" in report
  # the study measured the imported model's embeddings: its distances are finite
  assert io.read_json(os.path.join(workdir, "results.json"))["mean_distance"]
