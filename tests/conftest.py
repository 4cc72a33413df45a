"""Shared fixtures (a quickstart natural model trained once per test session, the smoke config)
and the two test tiers: the end-to-end tests get the `e2e` marker here, from the lists below.

  python -m pytest -q -n 2 --dist loadgroup          # the unit tier (not slow, not e2e)
  python -m pytest -q -n 2 --dist loadgroup -m e2e   # the end-to-end tier
  python -m pytest -q -m slow                        # the soak test, in neither tier
  python -m pytest -q -m 'not slow' tests/x_test.py  # both tiers' tests of one file

A test is end to end when it runs a whole study or entry point (a pipeline on a smoke or
quickstart config, a subprocess, a notebook, several processes), needs a model trained for
many steps, or compares several runs of the training loop; the lists were drawn from the
measured durations of the whole suite (2 cores), so that the unit tier stays a fast loop. A
test marked `slow` gets no `e2e` marker, so that `-m e2e` never selects it."""

import os

import pytest

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")

# Whole files of end-to-end tests.
E2E_FILES = (
  "attack_study_test.py",  # the attack stage of the smoke pipeline, resumed and reused
  "boundary_study_test.py",  # the boundary stage of the smoke pipeline, figures and resume
  "distributed_test.py",  # two jax.distributed processes against one (subprocesses)
  "estimate_test.py",  # --estimate: every config's kernels compiled, the smoke configs probed
  "experiments_test.py",  # the entry points in subprocesses
  "imported_study_test.py",  # two studies on imported PyTorch and Keras models
  "notebook_test.py",  # notebooks/colab_tpu.ipynb executed with the smoke config
  "pipeline_test.py",  # the decision-boundary pipeline end to end, resumed and reused
  "region_study_test.py",  # the region stage of the smoke pipeline
  "variants_test.py",  # experiments.train in subprocesses (SIGKILL, resume), trained variants
)

# Fixtures that run a whole study or train a model for many steps: every test using one is
# end to end, and the tests sharing one run on one xdist worker (--dist loadgroup), so that
# a module-scoped run is made once, not once per worker.
E2E_FIXTURES = {
  # here: configs/quickstart.py's natural model; the group its tests' own marks name
  "quickstart_natural": "quickstart",
  "smoke": None,  # blind_spot_study_test, training_dynamics_test: the study's smoke run
  "tiny_run": None,  # region_defense_study_test: the study's tiny run
  # apgd_test, fab_test, square_test: a small CNN trained in torch, attacked by ours and by
  # the reference (pyautoattack) for the agreement checks
  "cnn": None,
}

# Single end-to-end tests in files that are otherwise unit tests.
E2E_TESTS = (
  # the CIFAR fast recipes trained at a tiny size (ResNet-9, cyclic schedule, guard)
  "fast_training_test.py::test_cifar_fast_recipes_run_at_a_tiny_size",
  # a MetzenDetector trained three times (60 steps each) to show what it learns
  "perturbation_detector_test.py::test_detects_a_visible_pattern_and_not_a_relabelled_copy",
  # the kernels on 8 fake devices in a subprocess (tests/sharded_cases.py)
  "sharding_test.py::test_sharded_kernels_on_8_devices_equal_one_device",
  # an imported torch model: predictions, PGD and PGD accuracy on 8 fake devices vs one, in a
  # subprocess (~11 s)
  "torch_import_test.py::test_sharded_over_8_devices_equals_one_device",
  # the AutoAttack attacks on 8 fake devices vs one, each in a subprocess (12-26 s)
  "apgd_test.py::test_8_devices_equal_one_device",
  "fab_test.py::test_sharded_over_8_devices_equals_one_device",
  "square_test.py::test_sharded_over_8_devices_equals_one_device",
  # APGD with EOT over a noisy model (~16 s)
  "apgd_test.py::test_eot_on_a_noisy_model",
  # He et al.'s study on ImageNet-shaped data at toy size, through a tiny Keras model (~60 s)
  "imagenet_config_test.py::test_toy_study_on_a_tiny_keras_model_reports_table_5",
  # the region-defense entry point in a subprocess
  "region_defense_study_test.py::test_entry_point_reports_a_bad_flag_without_a_traceback",
  # several training runs each (with checkpoints, kills and resumes) compared with each other:
  # the slowest tests of the unit tier before they moved here (10-20 s each on a busy core)
  "fast_training_test.py::test_bfloat16_training_tracks_float32",
  "fast_training_test.py::test_guard_measures_pgd_accuracy_of_the_eval_model",
  "fast_training_test.py::test_guard_stops_at_a_collapse_and_keeps_the_last_passing_state",
  "fast_training_test.py::test_guard_resumes_with_its_history",
  "fast_training_test.py::test_variants_may_have_their_own_architecture",
  "training_loop_test.py::test_resume_equals_uninterrupted",
  "training_loop_test.py::test_snapshots_restore_the_model_of_their_step",
)


def _stale_entries(items) -> list[str]:
  """The entries of E2E_FILES and E2E_TESTS that name no file or no test function (a rename
  that the lists missed), among the files collected."""
  here = os.path.dirname(__file__)
  stale = [f for f in E2E_FILES if not os.path.exists(os.path.join(here, f))]
  modules = {os.path.basename(item.path): item.module for item in items
             if getattr(item, "module", None) is not None}
  for entry in E2E_TESTS:
    name, test = entry.split("::")
    if not os.path.exists(os.path.join(here, name)) or (
        name in modules and not hasattr(modules[name], test)):
      stale.append(entry)
  return stale


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
  """Marks the end-to-end tests `e2e` (before -m deselects, and before xdist reads the
  groups); tests already marked `slow` are left alone. Warns of list entries gone stale."""
  stale = _stale_entries(items)
  if stale:
    config.issue_config_time_warning(pytest.PytestConfigWarning(
        f"tests/conftest.py names end-to-end tests that do not exist: {stale}"), stacklevel=2)
  for item in items:
    if item.get_closest_marker("slow"):
      continue
    name = os.path.basename(item.path)
    test = f"{name}::{getattr(item, 'originalname', item.name)}"
    fixtures = [f for f in E2E_FIXTURES if f in getattr(item, "fixturenames", ())]
    if name in E2E_FILES or test in E2E_TESTS or fixtures:
      item.add_marker(pytest.mark.e2e)
    for fixture in fixtures:
      if not item.get_closest_marker("xdist_group"):
        group = E2E_FIXTURES[fixture] or f"{name[:-len('.py')]}.{fixture}"
        item.add_marker(pytest.mark.xdist_group(name=group))


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_xdist_groups(config, items):
  """Makes --dist loadgroup group again: pytest-xdist (3.8) sends a test's xdist_group by
  appending "@group" to item._nodeid, which pytest 9.2's structured node ids no longer read
  (pytest-dev/pytest-xdist#1386), so the groups were silently ignored and each worker trained
  its own quickstart model and ran its own smoke studies. On an xdist worker this appends the
  suffix to the structured id instead; a no-op where xdist's own suffix took effect."""
  if not getattr(config.option, "loadgroup", False):  # set on xdist workers only
    return
  for item in items:
    names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                    for mark in item.iter_markers("xdist_group")})
    suffix = "@" + "_".join(names)
    if names and not item.nodeid.endswith(suffix) and hasattr(item, "_id"):
      item._id = type(item._id).parse(item.nodeid + suffix)


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
