"""Tests of advbound/studies/variants.py: train_and_evaluate through the entry point (a real
SIGKILL, then resume), distillation, the DeepFool-augmented baseline, init_from."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx
from ml_collections import config_dict

from advbound import data, models, training
from advbound.runtime import io
from advbound.studies import variants as variants_lib
from configs import common
from tiny_training import params as _params, tiny_data as _tiny_data  # tests/tiny_training.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_TINY_CONFIG = '''
from ml_collections import config_dict
from configs import common

def get_config():
  config = config_dict.ConfigDict()
  config.data = common.data("mnist", "embedded")
  config.model = config_dict.ConfigDict(dict(name="mnist_cnn"))
  config.models = config_dict.ConfigDict()
  config.models.natural = common.train(num_steps=40, batch_size=32, log_every=5,
                                       checkpoint_every=5)
  config.eval = common.evaluation(common.pgd(0.3, 0.1, 2), pgd_examples=20)
  return config
'''


def test_unknown_variant_is_an_error(tmp_path):
  from configs import quickstart
  with pytest.raises(ValueError, match=r"unknown model variant\(s\) \['robust'\]"):
    variants_lib.train_and_evaluate(quickstart.get_config(), str(tmp_path), variants=["robust"])


def _run(config, workdir, **kw):
  env = dict(os.environ, PYTHONPATH=REPO)
  return subprocess.Popen([sys.executable, "-m", "experiments.train", f"--config={config}",
                           f"--workdir={workdir}"], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def test_sigkill_then_resume_matches(tmp_path):
  """A real SIGKILL of the entry point mid-run; the rerun resumes and ends where an
  uninterrupted run ends."""
  config = tmp_path / "tiny.py"
  config.write_text(_TINY_CONFIG)
  killed_dir, ref_dir = tmp_path / "killed", tmp_path / "ref"
  proc = _run(config, killed_dir)
  ckpt = killed_dir / "models" / "natural" / "checkpoints"
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if ckpt.exists() and any(p.name.isdigit() and int(p.name) >= 10 for p in ckpt.iterdir()):
      break
    time.sleep(0.05)
  assert proc.poll() is None, "run ended before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (killed_dir / "models" / "natural" / "metrics.json").exists()
  out = _run(config, killed_dir).communicate(timeout=300)[0].decode()
  assert "resumed" in out, out[-2000:]
  metrics = io.read_json(str(killed_dir / "models" / "natural" / "metrics.json"))
  assert 0.5 < metrics["test_accuracy"] <= 1.0  # 40 steps already learn most digits
  assert 0.0 <= metrics["pgd_accuracy"] <= 1.0
  assert metrics["pgd_examples"] == 20 and metrics["test_examples"] == 1000
  ref = _run(config, ref_dir).communicate(timeout=300)[0].decode()
  assert "natural" in ref
  import importlib.util
  spec = importlib.util.spec_from_file_location("tiny", config)
  tiny = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(tiny)
  cfg = tiny.get_config()
  a = training.load_model(cfg.model, cfg.models.natural, str(killed_dir / "models" / "natural"))
  b = training.load_model(cfg.model, cfg.models.natural, str(ref_dir / "models" / "natural"))
  jax.tree.map(np.testing.assert_array_equal, _params(a), _params(b))


def _cw_mnist_config(num_steps, **variants):
  """Embedded MNIST, the cw_mnist model, and the variants {name: extra train settings}, each
  `num_steps` steps of 16."""
  config = config_dict.ConfigDict()
  config.data = common.data("mnist", "embedded")
  config.model = config_dict.ConfigDict(dict(name="cw_mnist"))
  config.models = config_dict.ConfigDict()
  for name, extra in variants.items():
    config.models[name] = common.train(num_steps=num_steps, batch_size=16,
                                       log_every=num_steps // 2, checkpoint_every=num_steps,
                                       **extra)
  return config


def _distill_config(temperature=20.0):
  return _cw_mnist_config(6, teacher=dict(temperature=temperature),
                          distilled=dict(temperature=temperature, distill_from="teacher"))


def test_distilled_student_records_its_teacher_and_rejects_a_changed_one(tmp_path):
  config = _distill_config()
  train_data = data.load("mnist", source="embedded", split="train")
  student = variants_lib.train_variant(config, "distilled", train_data, str(tmp_path))
  assert os.path.exists(tmp_path / "models" / "teacher" / "checkpoints")  # trained first
  stored = io.read_json(str(tmp_path / "models" / "distilled" / "settings.json"))
  assert stored["upstream"]["distill_from"] == variants_lib.model_stamp(config, "teacher")
  assert "distill_from" in variants_lib.model_stamp(config, "distilled")
  assert student is not None
  config.models.teacher.learning_rate = 0.5  # another teacher: its student must not resume
  with pytest.raises(ValueError, match="other settings"):
    training.train(train_data, config.model, config.models.distilled,
                   str(tmp_path / "models" / "distilled"),
                   upstream={"distill_from": variants_lib.model_stamp(config, "teacher")})
  config.models.teacher.distill_from = "distilled"
  with pytest.raises(ValueError, match="cycle of variants"):
    variants_lib.train_variant(config, "distilled", train_data, str(tmp_path / "cycle"))


def test_adversarial_training_baseline_adds_deepfool_examples_of_its_source(tmp_path):
  from advbound.attacks import deepfool
  config = _cw_mnist_config(4, natural={}, deepfool_trained=dict(augment_from="natural"))
  tiny = _tiny_data(n=40)
  model = variants_lib.train_variant(config, "deepfool_trained", tiny, str(tmp_path))
  assert model is not None
  folder = tmp_path / "models" / "deepfool_trained"
  with np.load(folder / "deepfool_train.npz") as f:
    examples = f["x"]
  source = variants_lib.train_variant(config, "natural", tiny, str(tmp_path))  # loads it
  expected = deepfool(models.as_logits_fn(source), tiny.images, tiny.labels, bounds=tiny.bounds)
  np.testing.assert_allclose(examples, np.asarray(expected.adversarial), atol=1e-5)
  assert np.asarray(expected.success).any()
  stored = io.read_json(str(folder / "settings.json"))
  assert stored["data"]["n"] == 80  # the clean images and their DeepFool examples
  assert stored["upstream"]["augment_from"] == variants_lib.model_stamp(config, "natural")
  stamp = os.path.getmtime(folder / "deepfool_train.npz")
  # resumes: no new examples
  variants_lib.train_variant(config, "deepfool_trained", tiny, str(tmp_path))
  assert os.path.getmtime(folder / "deepfool_train.npz") == stamp


def test_adversarial_training_baseline_on_the_first_m_images(tmp_path):
  from advbound.attacks import deepfool
  config = _cw_mnist_config(4, natural={}, partial=dict(augment_from="natural",
                                                        augment_examples=15))
  tiny = _tiny_data(n=40)
  variants_lib.train_variant(config, "partial", tiny, str(tmp_path))
  folder = tmp_path / "models" / "partial"
  with np.load(folder / "deepfool_train.npz") as f:
    examples = f["x"]
  source = variants_lib.train_variant(config, "natural", tiny, str(tmp_path))
  expected = deepfool(models.as_logits_fn(source), tiny.images[:15], tiny.labels[:15],
                      bounds=tiny.bounds)
  np.testing.assert_allclose(examples, np.asarray(expected.adversarial), atol=1e-5)
  stored = io.read_json(str(folder / "settings.json"))
  assert stored["data"]["n"] == 55  # 40 clean images and 15 DeepFool examples
  assert stored["upstream"]["augment_examples"] == 15


def _weights(model):  # the parameters (cw_mnist's dropout also keeps a PRNG key in its state)
  return jax.tree.map(np.asarray, nnx.state(model, nnx.Param))


def test_init_from_starts_where_the_source_variant_ended(tmp_path):
  """init_from: the variant's step-0 snapshot is its source's trained model (weights and batch
  statistics), the source is trained first, and its settings enter the variant's stamp."""
  config = _cw_mnist_config(4, natural=dict(),
                            adversarial=dict(init_from="natural", snapshot_every=2))
  train_data = data.load("mnist", source="embedded", split="train")
  tuned = variants_lib.train_variant(config, "adversarial", train_data, str(tmp_path))
  natural = training.load_model(config.model, config.models.natural,
                                str(tmp_path / "models" / "natural"))
  folder = str(tmp_path / "models" / "adversarial")
  assert training.snapshot_steps(folder) == [0, 2, 4]
  jax.tree.map(np.testing.assert_array_equal, _weights(natural),
               _weights(training.load_snapshot(config.model, config.models.adversarial, folder, 0)))
  assert any(not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(_weights(natural)), jax.tree.leaves(_weights(tuned))))
  assert variants_lib.model_stamp(config, "adversarial")["init_from"] == variants_lib.model_stamp(
      config, "natural")
  stored = io.read_json(os.path.join(folder, "settings.json"))
  assert stored["upstream"]["init_from"] == variants_lib.model_stamp(config, "natural")
