"""RobustBench zoo models as `Imported` JAX models, from a local exported file when there is
one (no network, no `robustbench` package needed), else through the `robustbench` package.

  from_robustbench("Carmon2019Unlabeled", dataset="cifar10", threat_model="Linf")

Order:
  (a) `<model_dir>/<dataset>/<threat_model>/<name>.pt2`, written by torch.export.save (for
      instance by this module's entry point, below), imported by `from_torch`;
  (b) else, when `robustbench` is importable: `robustbench.utils.load_model(...)`, which
      downloads the checkpoint into `<model_dir>/<dataset>/<threat_model>/<name>.pt` when it is
      not there yet. Before a download, one TCP connection to the checkpoint host is tried
      (3 s), so that an offline machine gets the error below at once instead of a long hang;
  (c) else one FileNotFoundError that names the model, the folder searched and how to make the
      file on a machine with network:

  python -m advbound.models.robustbench_import NAME --dataset=cifar10 --threat_model=Linf \
      --model_dir=models

which loads the model through robustbench, exports it (eval mode, dynamic batch), writes
`<model_dir>/<dataset>/<threat_model>/<NAME>.pt2`, and checks the imported logits against
torch's on random images. Copy that file to the offline machine.

RobustBench models take images in [0, 1] (NCHW) and normalise inside themselves: the import
has input_range (0, 1) and no mean/std; input shape (3, 32, 32) for CIFAR, (3, 224, 224) for
ImageNet unless given.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
from typing import Sequence

from advbound.models.imported import Imported

__all__ = ["from_robustbench", "DATASETS", "THREAT_MODELS", "exported_path", "export"]

# RobustBench's names (robustbench.model_zoo.enums: BenchmarkDataset, ThreatModel).
DATASETS = {"cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100),
            "imagenet": ((3, 224, 224), 1000)}
THREAT_MODELS = ("Linf", "L2", "corruptions", "corruptions_3d")
# Where robustbench downloads its checkpoints from (Google Drive; timm models: the HF hub).
PROBE = ("drive.google.com", 443)
PROBE_TIMEOUT = 3.0


def _check_names(dataset: str, threat_model: str) -> None:
  if dataset not in DATASETS:
    raise ValueError(f"unknown RobustBench dataset {dataset!r}; expected one of "
                     f"{sorted(DATASETS)}")
  if threat_model not in THREAT_MODELS:
    raise ValueError(f"unknown RobustBench threat model {threat_model!r}; expected one of "
                     f"{list(THREAT_MODELS)}")


def _folder(model_dir, dataset: str, threat_model: str) -> str:
  # robustbench keeps corruptions_3d models in the corruptions folder
  return os.path.join(os.fspath(model_dir), dataset, threat_model.replace("_3d", ""))


def exported_path(name: str, *, dataset: str, threat_model: str, model_dir="models") -> str:
  """`<model_dir>/<dataset>/<threat_model>/<name>.pt2`: where the exported model is looked
  for and written."""
  _check_names(dataset, threat_model)
  return os.path.join(_folder(model_dir, dataset, threat_model), f"{name}.pt2")


def _reachable(host: str, port: int, timeout: float) -> bool:
  """Whether a TCP connection to host:port opens within `timeout` seconds (name resolution
  included: it runs in a daemon thread that is abandoned when it takes too long)."""
  result = []

  def probe():
    try:
      with socket.create_connection((host, port), timeout=timeout):
        result.append(True)
    except OSError:
      result.append(False)

  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(timeout + 0.5)
  return bool(result and result[0])


def _has_checkpoint(name: str, folder: str) -> bool:
  # one checkpoint, or an ensemble's members (<name>.pt_m0.pt, ...)
  return any(os.path.isfile(os.path.join(folder, f)) for f in (f"{name}.pt", f"{name}.pt_m0.pt"))


def _robustbench_module(name: str, *, dataset: str, threat_model: str, model_dir,
                        probe=None):
  """The torch module from robustbench.utils.load_model, or None when robustbench is not
  installed or its checkpoint host cannot be reached (and no checkpoint is on disk)."""
  try:
    from robustbench import utils as rb_utils  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  folder = _folder(model_dir, dataset, threat_model)
  if not _has_checkpoint(name, folder):
    host, port = probe or PROBE
    if not _reachable(host, port, PROBE_TIMEOUT):
      return None
  try:
    return rb_utils.load_model(model_name=name, model_dir=os.fspath(model_dir), dataset=dataset,
                               threat_model=threat_model)
  except KeyError as e:
    raise ValueError(f"RobustBench has no model {name!r} for {dataset} / {threat_model} "
                     f"({e})") from e


def _source(name: str, dataset: str, threat_model: str) -> str:
  return f"RobustBench {name} ({dataset}, {threat_model})"


def from_robustbench(name: str, *, dataset: str, threat_model: str, model_dir="models",
                     probe: tuple[str, int] | None = None, **kwargs) -> Imported:
  """A RobustBench zoo model as an `Imported` model (see the module docstring for the order
  in which it is looked for).

  Args:
    name: the zoo's model name, e.g. "Carmon2019Unlabeled".
    dataset: "cifar10", "cifar100" or "imagenet".
    threat_model: "Linf", "L2", "corruptions" (or "corruptions_3d").
    model_dir: the folder of RobustBench checkpoints and of our exported `.pt2` files.
    probe: (host, port) tried before robustbench downloads (default: its checkpoint host).
    **kwargs: passed to `from_torch` (input_shape, embedding, num_classes, source, ...).

  Raises:
    ValueError: an unknown dataset or threat model (or a model robustbench does not have).
    FileNotFoundError: no exported file, and robustbench is not installed or offline.
  """
  _check_names(dataset, threat_model)
  from advbound.models import torch_import  # pylint: disable=g-import-not-at-top
  shape, classes = DATASETS[dataset]
  options = dict(input_shape=shape, input_range=(0.0, 1.0), num_classes=classes,
                 source=_source(name, dataset, threat_model))
  options.update(kwargs)
  path = exported_path(name, dataset=dataset, threat_model=threat_model, model_dir=model_dir)
  if os.path.isfile(path):
    return torch_import.from_torch(path, **options)
  module = _robustbench_module(name, dataset=dataset, threat_model=threat_model,
                               model_dir=model_dir, probe=probe)
  if module is not None:
    return torch_import.from_torch(module, **options)
  raise FileNotFoundError(
      f"RobustBench model {name!r} ({dataset}, {threat_model}) is not available here: no "
      f"exported file {path!r} in {_folder(model_dir, dataset, threat_model)!r}, and "
      + ("robustbench cannot download it (no network)" if _installed() else
         "the robustbench package is not installed")
      + ". On a machine with network, make the file with\n  python -m "
      f"advbound.models.robustbench_import {name} --dataset={dataset} "
      f"--threat_model={threat_model} --model_dir={os.fspath(model_dir)}\n"
      "(pip install robustbench first) and copy it to that path.")


def _installed() -> bool:
  try:
    import robustbench  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
    return True
  except ImportError:
    return False


def export(module, path: str, *, input_shape: Sequence[int]) -> str:
  """`module` exported (eval mode, dynamic batch) and saved to `path` with torch.export.save;
  the caller's training flags are kept. Returns the path."""
  import torch  # pylint: disable=g-import-not-at-top
  from advbound.models import torch_import  # pylint: disable=g-import-not-at-top
  program = torch_import.export(module, input_shape)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  torch.export.save(program, tmp)
  os.replace(tmp, path)  # atomic: a killed export leaves no half-written .pt2
  return path


def main(argv: Sequence[str] | None = None) -> str:
  """Loads a zoo model through robustbench, writes its `.pt2`, checks the import's logits."""
  parser = argparse.ArgumentParser(
      prog="python -m advbound.models.robustbench_import",
      description="Export a RobustBench model to <model_dir>/<dataset>/<threat_model>/"
                  "<name>.pt2 for offline use by advbound.models.from_robustbench.")
  parser.add_argument("name", help="RobustBench model name, e.g. Carmon2019Unlabeled")
  parser.add_argument("--dataset", default="cifar10", choices=sorted(DATASETS))
  parser.add_argument("--threat_model", default="Linf", choices=THREAT_MODELS)
  parser.add_argument("--model_dir", default="models")
  parser.add_argument("--input_shape", default=None,
                      help="C,H,W (default: 3,32,32 for CIFAR, 3,224,224 for ImageNet)")
  args = parser.parse_args(argv)
  try:
    from robustbench import utils as rb_utils  # pylint: disable=g-import-not-at-top
  except ImportError:
    parser.exit(2, "robustbench is not installed: pip install robustbench\n")
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  shape = (tuple(int(s) for s in args.input_shape.split(",")) if args.input_shape
           else DATASETS[args.dataset][0])
  module = rb_utils.load_model(model_name=args.name, model_dir=args.model_dir,
                               dataset=args.dataset, threat_model=args.threat_model)
  path = export(module, exported_path(args.name, dataset=args.dataset,
                                      threat_model=args.threat_model,
                                      model_dir=args.model_dir), input_shape=shape)
  imported = from_robustbench(args.name, dataset=args.dataset, threat_model=args.threat_model,
                              model_dir=args.model_dir, input_shape=shape)
  x = np.random.default_rng(0).uniform(0, 1, (2,) + imported.input_shape).astype(np.float32)
  module.eval()
  with torch.no_grad():
    want = module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
  got = np.asarray(imported.apply(imported.params, x))
  gap = float(np.abs(got - want).max())
  print(f"wrote {path} ({imported.describe()}, {imported.num_classes} classes); imported "
        f"logits vs torch on 2 random images: max |diff| {gap:.2e}")
  if gap > 1e-3 * max(1.0, float(np.abs(want).max())):
    print("warning: the imported logits disagree with torch's", file=sys.stderr)
  return path


if __name__ == "__main__":
  main()
