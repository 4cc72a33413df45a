"""--estimate over every config in configs/ on CPU, so that no config rots at its true sizes.

Every config (and every variant a config file offers) is validated and its kernels built and
compiled at their true shapes (the memory check `--estimate` starts with: each stage's
training steps, attack gradients and forward passes at the config's batch sizes, on every
trained model). The smoke configs go through the whole `--estimate` probe, every stage run at
its true shapes (decision boundary's here, the blind spot's through the entry point, as a user
runs it; the region-defense and training-dynamics smokes in the slow tier). Paper-scale probes take from minutes to hours on 2 CPU cores (WORKSPACE.md, "Issue
29", records them); their kernels are what this test compiles.
"""

import importlib
import json
import os
import subprocess
import sys
import time

import pytest

from advbound.runtime import estimate, memory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "configs"))
                 if f.endswith(".py") and f not in ("__init__.py", "common.py"))
# the variants config files offer beside their default (--config=configs/<file>.py:<variant>)
VARIANTS = {"blind_spot_cifar": ("fast",), "blind_spot_quickstart": ("fashion_mnist",),
            "imagenet": ("toy",), "training_dynamics_quickstart": ("fashion_mnist",),
            "training_dynamics": ("cifar_reduced", "cifar_convnet", "fashion_mnist")}
SPECS = [(c, None) for c in CONFIGS] + [(c, v) for c in sorted(VARIANTS) for v in VARIANTS[c]]
# probed in-process here; blind_spot_smoke through the entry point below; the region-defense
# and training-dynamics smokes (~3 min and ~1.5 min of probe) in the slow tier, to keep CI
# within its budget (their kernels are compiled above in both tiers)
SMOKES = ("smoke", pytest.param("training_dynamics_smoke", marks=pytest.mark.slow),
          pytest.param("region_defense_smoke", marks=pytest.mark.slow))
# seconds allowed: the kernels of one config (a WRN-32-10's compile the longest, ~20 s
# measured); the probe of one smoke config (22-130 s measured)
KERNELS_WITHIN = 180
PROBE_WITHIN = 600


def study_of(name: str):
  for prefix in ("region_defense", "blind_spot", "training_dynamics"):
    if name.startswith(prefix):
      return importlib.import_module(f"advbound.studies.{prefix}.pipeline").STUDY
  return importlib.import_module("advbound.studies.decision_boundary.pipeline").STUDY


def config_of(name: str, variant: str | None):
  module = importlib.import_module(f"configs.{name}")
  return module.get_config(variant) if variant else module.get_config()


def test_every_config_file_is_covered():
  for name, variants in VARIANTS.items():
    assert name in CONFIGS
    module = importlib.import_module(f"configs.{name}")
    assert module.get_config.__code__.co_argcount == 1, name
  takes_argument = [c for c in CONFIGS
                    if importlib.import_module(f"configs.{c}").get_config.__code__.co_argcount]
  assert sorted(takes_argument) == sorted(VARIANTS)


@pytest.mark.parametrize("name,variant", SPECS)
def test_every_config_builds_its_kernels_at_true_sizes(name, variant):
  config = config_of(name, variant)
  study = study_of(name)
  t0 = time.time()
  if config.data.name != "imagenet":  # its files are the user's: tests/imagenet_config_test.py
    study.validate(config)
  result = memory.check(study, config, raise_on_excess=False)
  seconds = time.time() - t0
  assert seconds < KERNELS_WITHIN, f"{name}: {seconds:.0f} s"
  assert not result["problems"], result["problems"]
  imported = [v for v in config.models if "source" in config.models[v]]
  built = [k for k in result["kernels"] if k["peak_bytes"] is not None]
  not_built = [n for n in result["notes"] if "not built" in n]
  assert not not_built, not_built
  if imported:
    assert any("imported variant" in n for n in result["notes"]), result["notes"]
  if len(imported) < len(config.models):
    # every trained variant's training step, and the attack's or evaluation's gradients
    kinds = {k["kind"] for k in built}
    assert "train" in kinds and "gradient" in kinds, (name, kinds)
    trained = set(config.models) - set(imported)
    assert {k["variant"] for k in built if k["kind"] == "train"} == trained
    for k in built:
      assert k["peak_bytes"] > 0


@pytest.mark.parametrize("name", SMOKES)
def test_the_smoke_configs_are_probed_end_to_end(name, tmp_path):
  config = config_of(name, None)
  t0 = time.time()
  est = estimate.estimate_study(study_of(name), config, str(tmp_path / "w"),
                                print_table=False)
  assert time.time() - t0 < PROBE_WITHIN
  names = [s.name for s in study_of(name).stages]
  assert [r["name"] for r in est["stages"]] == names
  for row in est["stages"]:
    assert not row["done"]
    # projected: the probe's own time plus what it skipped; never less than what it ran
    assert row["projected_seconds"] >= row["probe_seconds"] - 1e-6
  assert est["total_seconds"] == pytest.approx(sum(r["projected_seconds"]
                                                   for r in est["stages"]))
  on_disk = json.load(open(tmp_path / "w" / estimate.FILE))
  assert on_disk["total_seconds"] == pytest.approx(est["total_seconds"])
  # the probe worked in a scratch folder: the workdir holds the estimate alone
  assert os.listdir(tmp_path / "w") == [estimate.FILE]


def test_the_entry_point_estimates_without_running(tmp_path):
  workdir = str(tmp_path / "bs")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.blind_spot", "--config=configs/blind_spot_smoke.py",
       f"--workdir={workdir}", "--estimate"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
      timeout=PROBE_WITHIN)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "estimate of blind_spot" in proc.stdout and "total" in proc.stdout
  for stage in ("train", "distance", "divergence", "attacks", "score", "report"):
    assert f"\n{stage}" in proc.stdout, stage
  assert os.listdir(workdir) == [estimate.FILE]
  # a bad setting ends as it does for a real run: one message, exit status 2
  bad = subprocess.run(
      [sys.executable, "-m", "experiments.blind_spot", "--config=configs/blind_spot_smoke.py",
       f"--workdir={workdir}", "--estimate", "--config.attack.batch_size=0"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
      timeout=PROBE_WITHIN)
  assert bad.returncode == 2 and "batch_size" in bad.stderr
