"""The training-dynamics study at the paper's settings and the GPU-sized variants (GPU jobs;
none has run yet, see WORKSPACE.md):

  python -m experiments.training_dynamics --config=configs/training_dynamics.py:<variant> \
      --workdir=runs/td_<variant>

variants:
- cifar (default): the paper's Section 3. CIFAR-10, pre-activation ResNet-18 (64-128-256-512),
  200 natural epochs of SGD (lr 0.1, momentum 0.9, weight decay 5e-4, crop and flip, lr x0.1
  at 50% and 75%), then 250 epochs of adversarial training (BI epsilon 4, step 1, 10
  iterations, predicted labels, fully adversarial batches; SGD at lr 0.01, which the paper does
  not state); every epoch measured; 256 test and 256 training inputs (Figures 9-10's 256) for
  the profiles, curves and detectors; every other measurement at the paper's sizes. Expensive:
  251 epochs x (two universal perturbations of 200 x 10 x 128 gradients, a detector, a 251 x
  251 profile) is many GPU hours.
- cifar_reduced: the same dynamics within a GPU session: a pre-activation ResNet-18 at a
  quarter of the width (16-128), 30 natural and 30 adversarial epochs, 12 measured epochs;
  the fixed epochs 5 / 15 / 51 become 5 / 15 / 25.
- cifar_convnet: Appendix I's non-residual convnet (C32-C32-MP-D0.2-C64-C64-MP-D0.2-C128-C128-
  MP-D0.2-L512-D0.5) on CIFAR-10, 25 natural and 50 adversarial epochs, as cifar_reduced
  measures them. A substitute: the paper ran it on GTSRB (epsilon 8), which cannot be obtained
  here.
- fashion_mnist: the study on Fashion-MNIST, a substitute for the paper's GTSRB appendix H
  (pre-activation ResNet-18 at width 16, 25 natural + 50 adversarial epochs); one paper unit is
  0.025 on [0, 1] images, so BI's epsilon 4 is 0.1.

CIFAR-10 from the files in ../shared/data instead of tfds:
  --config.data.source=npz --config.data.path='../shared/data/cifar10_{split}*.npz'
(their test images 1,000-9,999 were recovered from JPEG copies; the study's seeded test draws
span all 10,000).
"""

from ml_collections import config_dict

from configs import common

VARIANTS = ("cifar", "cifar_reduced", "cifar_convnet", "fashion_mnist")


def _sgd(num_steps: int, lr: float, **extra) -> config_dict.ConfigDict:
  return common.train(num_steps=num_steps, batch_size=128, optimizer="sgd", learning_rate=lr,
                      momentum=0.9, weight_decay=5e-4, augment="crop_flip", log_every=352,
                      checkpoint_every=3520, **extra)


def get_config(variant: str = "cifar") -> config_dict.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f"training_dynamics: variant must be one of {VARIANTS}, got {variant!r} "
                     "(use --config=configs/training_dynamics.py:cifar_reduced)")
  config = config_dict.ConfigDict()
  cifar = variant != "fashion_mnist"
  config.data = common.data("cifar10" if cifar else "fashion_mnist", "tfds")
  unit = 1.0 if cifar else 0.025
  epoch_steps = 352 if cifar else 391   # the train splits (45,000 / 50,000; 5,000 held out) / 128
  if variant == "cifar":
    config.model = config_dict.ConfigDict(dict(name="preact_resnet", width=64,
                                               blocks=(2, 2, 2, 2)))
    natural_epochs, epochs, measured = 200, 250, None
    fixed = dict(fixed_universal=(0, 5, 51), ratio_epochs=(0, 1, 15, -1),
                 transfer_sources=(0, 5, 15, 51, -1), destruction_epochs=(0, 1, 15, 51, -1),
                 detect_fixed=(0, 1, -1), figure_epochs=(0, 1, 5, 15, 51, -1))
    sizes = dict(test_images=256, train_images=256)
  else:
    if variant == "cifar_reduced":
      config.model = config_dict.ConfigDict(dict(name="preact_resnet", width=16,
                                                 blocks=(2, 2, 2, 2)))
      natural_epochs, epochs = 30, 30
    elif variant == "cifar_convnet":
      config.model = config_dict.ConfigDict(dict(name="plain_cnn", width=32, dense=512))
      natural_epochs, epochs = 25, 50
    else:
      config.model = config_dict.ConfigDict(dict(name="preact_resnet", width=16,
                                                 blocks=(2, 2, 2, 2), in_channels=1))
      natural_epochs, epochs = 25, 50
    measured = tuple(e for e in (0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 25, 30, 40, 50) if e <= epochs)
    fixed = dict(fixed_universal=(0, 5, 15), ratio_epochs=(0, 1, 15, -1),
                 transfer_sources=(0, 5, 15, -1), destruction_epochs=(0, 1, 15, -1),
                 detect_fixed=(0, 1, -1), figure_epochs=(0, 1, 5, 15, -1))
    sizes = dict(test_images=500, train_images=1000)
  natural = _sgd(natural_epochs * epoch_steps, 0.1, schedule="piecewise")
  config.models = common.training_dynamics_models(
      natural=natural, epoch_steps=epoch_steps, epochs=epochs, unit=unit, batch_size=128,
      optimizer="sgd", learning_rate=0.01, momentum=0.9, weight_decay=5e-4,
      augment="crop_flip" if cifar else "none", log_every=epoch_steps,
      checkpoint_every=10 * epoch_steps)
  if not cifar:
    config.models.natural.augment = "none"
  config.update(common.training_dynamics_study(unit=unit, epochs=measured, batch_size=500,
                                               **sizes, **fixed))
  if variant != "cifar":
    config.sharedness.update(dict(perturbations=500, train_inputs=2000, ratio_inputs=2500,
                                  ratio_perturbations=500))
    config.detect.steps = 2000
  return config
