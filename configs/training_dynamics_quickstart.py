"""Quickstart of the training-dynamics study ("Universality, Robustness, and Detectability of
Adversarial Perturbations under Adversarial Training"): every measurement of the paper, on a
reduced pre-activation ResNet, budgeted to at most 15 minutes on 2 CPU cores.

  python -m experiments.training_dynamics --config=configs/training_dynamics_quickstart.py \
      --workdir=/tmp/td

runs on the embedded MNIST-5k. Fashion-MNIST (tfds, or the .npz files in ../shared/data):
  python -m experiments.training_dynamics \
      --config=configs/training_dynamics_quickstart.py:fashion_mnist --workdir=/tmp/td_fashion \
      --config.data.source=npz --config.data.path='../shared/data/fashion_mnist_{split}.npz'

Reduced from the paper (configs/training_dynamics.py has its settings), to fit the budget:
- data and scale: MNIST-5k's 3,500 training / 1,000 test digits (Fashion-MNIST: the 55,000 /
  10,000 images) instead of CIFAR-10. An epoch is one pass over MNIST-5k's 3,500 training
  digits, 3,500 // 64 = 54 steps (training.steps_per_epoch); on Fashion-MNIST an "epoch" is
  declared as 54 steps (study.partial_epoch_steps: 3,456 of the 55,000 images, 6% of a pass). One paper unit (1 on
  CIFAR-10's 0-255 scale) is 0.025 here, so BI's epsilon 4 is 0.1 on [0, 1] MNIST (4/255 would
  barely move a digit) and the universal perturbation's epsilon 10 is 0.25.
- model: a pre-activation ResNet with one block per level and 8-64 feature maps (the paper's:
  two blocks, 64-512); natural training 4 epochs of Adam (not 200 of SGD), then 8 epochs of
  adversarial training (not 250), 55 steps of 64 each.
- measured: every epoch 0-8; the paper's fixed epochs 5 / 15 / 51 become 2 / 4 / 5.
- test sets: Figures 3, 5, 6, 8 and 16 on 300 test inputs (study.eval_images; paper: the
  whole test split), the profiles and Figures 1, 9, 10 on the same 300 (paper: 256) and 200
  training inputs (paper: 256).
- detectors: trained on 300 training inputs (detect.train_images; paper: the training data);
  Metzen's architecture at widths 8-16-16 (paper: 96-192-192), 150 Adam steps of 32 + 32 at
  learning rate 1e-3 (XLA's CPU convolutions make wider detectors cost ~5 s each). Figure 16
  adds an FGSM detector per epoch and a DeepFool one at the destruction epochs.
- Figure 2: 100 test perturbations, 500 training inputs (paper: 1,000 and 10,000); Appendix C:
  60 perturbations transferred to 240 other test inputs (paper: 1,024 to 5,000).
- universal perturbations: 10 iterations of K = 4 batches of 32 (paper: 200 of 10 of 128).
- DeepFool: at most 20 iterations, 3 candidate classes.
"""

from ml_collections import config_dict

from advbound import data as data_lib, training
from configs import common

_UNIT = 0.025


def get_config(dataset: str = "mnist") -> config_dict.ConfigDict:
  if dataset not in ("mnist", "fashion_mnist"):
    raise ValueError(f"training_dynamics_quickstart: dataset must be mnist or fashion_mnist, "
                     f"got {dataset!r} (use "
                     "--config=configs/training_dynamics_quickstart.py:fashion_mnist)")
  config = config_dict.ConfigDict()
  config.data = (common.data("mnist", "embedded") if dataset == "mnist"
                 else common.data("fashion_mnist", "tfds"))
  config.model = config_dict.ConfigDict(dict(name="preact_resnet", width=8, blocks=(1, 1, 1, 1),
                                             in_channels=1))
  # one pass over MNIST-5k's 3,500 training digits; Fashion-MNIST declares as long a part
  mnist_train = data_lib.split_sizes("mnist", source="embedded")["train"]
  epoch_steps, epochs = training.steps_per_epoch(mnist_train, 64), 8
  natural = common.train(num_steps=4 * epoch_steps, batch_size=64, learning_rate=2e-3,
                         schedule="cosine", warmup_fraction=0.05, log_every=epoch_steps,
                         checkpoint_every=2 * epoch_steps)
  config.models = common.training_dynamics_models(
      natural=natural, epoch_steps=epoch_steps, epochs=epochs, unit=_UNIT, batch_size=64,
      learning_rate=1e-3, log_every=epoch_steps, checkpoint_every=2 * epoch_steps)
  config.update(common.training_dynamics_study(
      unit=_UNIT, test_images=300, train_images=200, batch_size=300,
      fixed_universal=(0, 2, 5), ratio_epochs=(0, 1, 4, -1), transfer_sources=(0, 2, 4, 5, -1),
      destruction_epochs=(0, 1, 4, -1), detect_fixed=(0, 1, -1),
      figure_epochs=(0, 1, 2, 4, 5, -1),
      sharedness=dict(perturbations=100, train_inputs=500, ratio_inputs=300,
                      ratio_perturbations=60),
      universal=dict(batch_size=32, batches_per_step=4, iterations=10),
      detect=dict(features=(8, 16, 16), steps=150, batch_size=32, learning_rate=1e-3),
      deepfool=dict(max_iterations=20, candidates=3)))
  config.study.eval_images = 300
  config.study.partial_epoch_steps = (config_dict.placeholder(int) if dataset == "mnist"
                                      else epoch_steps)
  config.detect.train_images = 300
  return config
