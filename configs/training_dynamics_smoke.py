"""A seconds-long run of the training-dynamics study for tests: the quickstart's shape at toy
sizes (3 "epochs" of 5 steps, declared by study.partial_epoch_steps: a pass over MNIST-5k is
109 steps of 32; 60 eval inputs, 40 of them the profiles' test draw, 40 training inputs inside a
detector draw of 50; 2 universal iterations, 20 detector steps). Its numbers mean nothing.

  python -m experiments.training_dynamics --config=configs/training_dynamics_smoke.py \
      --workdir=/tmp/td_smoke
"""

from ml_collections import config_dict

from configs import common

_UNIT = 0.025


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.data = common.data("mnist", "embedded")
  config.model = config_dict.ConfigDict(dict(name="preact_resnet", width=4, blocks=(1, 1),
                                             in_channels=1))
  natural = common.train(num_steps=20, batch_size=32, learning_rate=3e-3, log_every=10,
                         checkpoint_every=10)
  config.models = common.training_dynamics_models(
      natural=natural, epoch_steps=5, epochs=3, unit=_UNIT, batch_size=32, log_every=5,
      checkpoint_every=5)
  config.update(common.training_dynamics_study(
      unit=_UNIT, test_images=40, train_images=40, batch_size=40,
      fixed_universal=(0, 2), ratio_epochs=(0, -1), transfer_sources=(0, 1, -1),
      destruction_epochs=(0, -1), detect_fixed=(0, 1, -1), figure_epochs=(0, 1, -1),
      sharedness=dict(perturbations=10, train_inputs=30, ratio_inputs=30,
                      ratio_perturbations=6),
      universal=dict(batch_size=16, batches_per_step=2, iterations=2),
      detect=dict(features=(4, 8, 8), steps=20, batch_size=8, learning_rate=1e-3),
      deepfool=dict(max_iterations=5, candidates=3)))
  config.study.eval_images = 60
  config.study.partial_epoch_steps = 5
  config.detect.train_images = 50
  config.destruction.brightness = (-16 * _UNIT, 16 * _UNIT)
  config.destruction.contrast = (0.8, 1.2)
  config.destruction.blur = (0.5,)
  config.destruction.noise = (3 * _UNIT, 8 * _UNIT)
  return config
