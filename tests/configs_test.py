"""Every config loads, documents its run command, and rejects keys that do not exist."""

import importlib
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "configs"))
                 if f.endswith(".py") and f not in ("__init__.py", "common.py"))
# He et al.'s study (experiments.decision_boundary), Cao & Gong's (experiments.region_defense)
# the blind-spot study (experiments.blind_spot) and the training-dynamics study
REGION_DEFENSE = [c for c in CONFIGS if c.startswith("region_defense")]
BLIND_SPOT = [c for c in CONFIGS if c.startswith("blind_spot")]
TRAINING_DYNAMICS = [c for c in CONFIGS if c.startswith("training_dynamics")]
DECISION_BOUNDARY = [c for c in CONFIGS
                     if c not in REGION_DEFENSE + BLIND_SPOT + TRAINING_DYNAMICS]
# data sets with no tfds or embedded source here: the configs on them are checked against fake
# files (tests/imagenet_config_test.py)
NPZ_ONLY = ("imagenet",)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_and_documents_command(name):
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config()
  assert f"--config=configs/{name}.py" in module.__doc__
  # Defaults a user outside this workspace has: tfds or the embedded MNIST-5k (the .npz route
  # is a documented override, never a path into this workspace); data sets only a user can
  # supply (ImageNet's validation images) name a relative placeholder path.
  if config.data.name in NPZ_ONLY:
    assert config.data.source == "npz" and not os.path.isabs(config.data.path)
  else:
    assert config.data.source in ("tfds", "embedded") and not config.data.path
  for variant in config.models:
    if "source" not in config.models[variant]:  # imported variants are not trained
      assert config.models[variant].num_steps > 0


def test_unknown_config_key_is_an_error():
  env = dict(os.environ, PYTHONPATH=REPO)
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--config=configs/quickstart.py",
       "--workdir=/tmp/unused", "--config.models.natural.num_stepz=3"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert "num_stepz" in proc.stderr


@pytest.mark.parametrize("name", DECISION_BOUNDARY)
def test_pipeline_sections_are_consistent(name):
  """Every example type a stage reads is produced by the stage before it."""
  from advbound.attacks import presets
  config = importlib.import_module(f"configs.{name}").get_config()
  attacks = set(config.attack.names)
  assert attacks <= set(presets.NAMES)
  assert set(config.boundary.examples) <= attacks
  assert set(config.region.attacks) <= attacks
  assert set(config.detect.attacks) <= set(config.boundary.examples)
  assert set(config.detect.train_attacks) <= set(config.detect.attacks)
  assert config.boundary.step <= config.boundary.max_distance
  assert 0.0 < config.detect.train_fraction < 1.0


@pytest.mark.parametrize("name", REGION_DEFENSE)
def test_region_defense_sections_are_consistent(name):
  """The adapted attacks and the kappa sweep read examples the attacks stage makes; the region
  classifier is built on one of the compared classifiers."""
  config = importlib.import_module(f"configs.{name}").get_config()
  assert set(config.adapted.attacks) <= set(config.evaluation.attacks)
  assert config.study.point in config.study.classifiers
  assert set(config.evaluation.kappa_classifiers) <= set(config.study.classifiers)
  assert config.models.distillation.distill_from == "teacher"
  assert config.models.adversarial.augment_from == "natural"


@pytest.mark.parametrize("name", BLIND_SPOT)
def test_blind_spot_sections_are_consistent(name):
  """The attacked model is PGD-trained at the study's epsilon; the grid starts with the
  untransformed images; Figure 5's pair is on the grid."""
  from advbound.analysis import scale_shift
  config = importlib.import_module(f"configs.{name}").get_config()
  attacked = config.models[config.study.attacked]
  assert attacked.adversarial and attacked.attack.epsilon == config.study.epsilon
  assert not config.models.natural.adversarial
  assert config.study.alphas[0] == 1.0
  pair = config.figures.histogram_pair
  assert pair is None or tuple(pair) in scale_shift.grid(config.study.alphas)[1:]


@pytest.mark.parametrize("name,attacked,table,train", [("mnist", 9500, 100, 7600),
                                                       ("cifar", 450, 100, 350),
                                                       ("cifar_small", 450, 100, 350),
                                                       ("cifar_fast", 450, 100, 350)])
def test_paper_scale_detection_sets(name, attacked, table, train):
  """Tables 1-2 on the paper's 100 images; the boundary classifier on the paper's split
  (CIFAR-10: 350 train + 100 test; MNIST: 80% / 20%, as 8,000 / 2,000)."""
  config = importlib.import_module(f"configs.{name}").get_config()
  assert config.attack.num_images == attacked and config.attack.table_images == table
  assert int(round(config.detect.train_fraction * attacked)) == train
