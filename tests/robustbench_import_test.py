"""Tests of advbound/models/robustbench_import.py: the local exported-file route (a small
RobustBench-architecture WideResNet exported to tmp_path), the offline route ending in one clear
error within seconds, the robustbench route through a stand-in `robustbench` package (nothing
is downloaded: the reachability probe is pointed at a closed loopback port), the entry point
that writes the .pt2, and name checks."""

import os
import socket
import sys
import time
import types

import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from advbound.models import robustbench_import as rb  # noqa: E402
from tests import torch_import_test as ti  # noqa: E402


def _closed_port() -> tuple[str, int]:
  """A loopback port nobody listens on (connections are refused at once)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return "127.0.0.1", s.getsockname()[1]


def _wrn(seed=0):
  return ti._randomize(ti.WideResNet(depth=10, widen=1, drop=0.0), seed).eval()


def _logits(net, x):
  with torch.no_grad():
    return net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()


@pytest.fixture
def fake_robustbench(monkeypatch):
  """A stand-in robustbench package whose load_model returns a small WRN and records calls."""
  calls = []
  net = _wrn(seed=1)

  def load_model(model_name, model_dir, dataset, threat_model):
    calls.append(dict(model_name=model_name, model_dir=model_dir, dataset=dataset,
                      threat_model=threat_model))
    if model_name == "Unknown":
      raise KeyError(model_name)
    return net

  package = types.ModuleType("robustbench")
  utils = types.ModuleType("robustbench.utils")
  utils.load_model = load_model
  package.utils = utils
  monkeypatch.setitem(sys.modules, "robustbench", package)
  monkeypatch.setitem(sys.modules, "robustbench.utils", utils)
  return net, calls


def test_local_exported_file_is_imported(tmp_path):
  net = _wrn()
  path = rb.exported_path("TinyWRN", dataset="cifar10", threat_model="Linf", model_dir=tmp_path)
  assert path == os.path.join(str(tmp_path), "cifar10", "Linf", "TinyWRN.pt2")
  rb.export(net, path, input_shape=(3, 32, 32))
  imported = rb.from_robustbench("TinyWRN", dataset="cifar10", threat_model="Linf",
                                 model_dir=tmp_path, embedding="fc")
  assert imported.input_shape == (32, 32, 3) and imported.num_classes == 10
  assert imported.input_range == (0.0, 1.0) and imported.mean is None
  assert "TinyWRN" in imported.source and "cifar10" in imported.source
  x = ti._images((3, 32, 32), n=4)
  got = jax.jit(imported.apply)(imported.params, x)
  ti._assert_close(got, _logits(net, x), ti.LOGIT_TOL, "logits")
  assert jax.eval_shape(imported.embed, imported.params, x).shape == (4, 64)
  with pytest.raises(ValueError, match="num_classes=100"):  # CIFAR-100 expects 100 logits
    os.makedirs(tmp_path / "cifar100" / "Linf")
    os.replace(path, tmp_path / "cifar100" / "Linf" / "TinyWRN.pt2")
    rb.from_robustbench("TinyWRN", dataset="cifar100", threat_model="Linf",
                        model_dir=tmp_path)


def test_offline_without_the_file_is_one_clear_error_within_seconds(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "robustbench", None)  # not installed
  start = time.monotonic()
  with pytest.raises(FileNotFoundError) as info:
    rb.from_robustbench("Carmon2019Unlabeled", dataset="cifar10", threat_model="Linf",
                        model_dir=tmp_path)
  assert time.monotonic() - start < 20
  message = str(info.value)
  for part in ("Carmon2019Unlabeled", "cifar10", "Linf", str(tmp_path / "cifar10" / "Linf"),
               "not installed",
               "python -m advbound.models.robustbench_import Carmon2019Unlabeled "
               f"--dataset=cifar10 --threat_model=Linf --model_dir={tmp_path}"):
    assert part in message, (part, message)


def test_robustbench_offline_is_not_asked_to_download(tmp_path, fake_robustbench):
  _, calls = fake_robustbench
  start = time.monotonic()
  with pytest.raises(FileNotFoundError, match="cannot download it"):
    rb.from_robustbench("Carmon2019Unlabeled", dataset="cifar10", threat_model="L2",
                        model_dir=tmp_path, probe=_closed_port())
  assert time.monotonic() - start < 20
  assert calls == []


def test_robustbench_loads_a_checkpoint_on_disk(tmp_path, fake_robustbench):
  net, calls = fake_robustbench
  folder = tmp_path / "cifar10" / "Linf"
  folder.mkdir(parents=True)
  (folder / "Fake2024.pt").write_bytes(b"")  # the checkpoint robustbench would read
  imported = rb.from_robustbench("Fake2024", dataset="cifar10", threat_model="Linf",
                                 model_dir=tmp_path, probe=_closed_port())
  assert calls == [dict(model_name="Fake2024", model_dir=str(tmp_path), dataset="cifar10",
                        threat_model="Linf")]
  x = ti._images((3, 32, 32), n=2)
  ti._assert_close(imported.apply(imported.params, x), _logits(net, x), ti.LOGIT_TOL,
                   "logits")
  (folder / "Unknown.pt").write_bytes(b"")
  with pytest.raises(ValueError, match="no model 'Unknown'"):
    rb.from_robustbench("Unknown", dataset="cifar10", threat_model="Linf", model_dir=tmp_path)


def test_entry_point_writes_the_exported_file(tmp_path, fake_robustbench, capsys):
  net, _ = fake_robustbench
  path = rb.main(["Fake2024", "--dataset=cifar10", "--threat_model=Linf",
                  f"--model_dir={tmp_path}"])
  assert path == str(tmp_path / "cifar10" / "Linf" / "Fake2024.pt2") and os.path.isfile(path)
  assert "max |diff|" in capsys.readouterr().out
  # the file alone now serves the model, robustbench gone
  sys.modules["robustbench"] = None
  imported = rb.from_robustbench("Fake2024", dataset="cifar10", threat_model="Linf",
                                 model_dir=tmp_path)
  x = ti._images((3, 32, 32), n=2)
  ti._assert_close(imported.apply(imported.params, x), _logits(net, x), ti.LOGIT_TOL,
                   "logits")


def test_bad_names_are_named(tmp_path):
  with pytest.raises(ValueError, match=r"dataset 'cifar-10'.*'cifar10'"):
    rb.from_robustbench("X", dataset="cifar-10", threat_model="Linf", model_dir=tmp_path)
  with pytest.raises(ValueError, match=r"threat model 'linf'.*'Linf'"):
    rb.from_robustbench("X", dataset="cifar10", threat_model="linf", model_dir=tmp_path)
  with pytest.raises(SystemExit):
    rb.main(["X", "--dataset=mnist"])
