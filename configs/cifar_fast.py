"""CIFAR-10 at the paper's detection scale with fast-trained models: He et al.'s study on a
natural model trained in about a minute and a robust model trained in minutes, instead of
Madry's WRN-32-10 (configs/cifar.py, GPU-days).

Run (tfds CIFAR-10; needs the prepared data set, and a GPU):
  python -m experiments.decision_boundary --config=configs/cifar_fast.py --workdir=runs/cifar_fast

On the files in ../shared/data instead of tfds:
  python -m experiments.decision_boundary --config=configs/cifar_fast.py \
      --workdir=runs/cifar_fast --config.data.source=npz \
      --config.data.path='../shared/data/cifar10_{split}*.npz'

The models alone (test accuracy, and PGD-20 accuracy at epsilon 8, step 2):
  python -m experiments.train --config=configs/cifar_fast.py --workdir=runs/cifar_fast

Natural model: Page's ResNet-9 recipe ("How to train your ResNet", 2018, the DAWNBench
network; 94% in 24 epochs on the 50,000 training images). Model `resnet9` (6.6M parameters,
logits scaled by 0.125); SGD with Nesterov momentum 0.9, batch 512, weight decay 5e-4 on the
kernels; a linear ramp of the learning rate from 0 to 0.4 over the first fifth of the run, then
linearly down to 0 ("cyclic"); label smoothing 0.2; random crop (pad 4, reflected), flip and
an 8x8 cutout. 30 epochs of our 45,000 training images (5,000 are held out for validation)
instead of Page's 24 of 50,000: 10% less data, so a few more epochs. No test-time augmentation
(the attacks must see the same function as the evaluation).

Robust model: Wong, Rice & Kolter's FGSM with random start ("Fast is better than free", 2020; 83.8%
clean, 46.1% under PGD-50 with 10 restarts, in 15 epochs). PreAct ResNet-18 (`preact_resnet`, width
64); epsilon 8 on [0, 255], a uniform random start in the epsilon ball and one FGSM step of 10 (1.25
epsilon), projected back onto the ball; SGD momentum 0.9, batch 128, weight decay 5e-4; cyclic
learning rate 0 -> 0.2 at mid-run -> 0; crop and flip; 15 epochs. Guarded against catastrophic
overfitting (`guard`, advbound/training/guard.py): after every epoch, PGD (epsilon 8, 5 steps of 2,
random start) on 512 fixed training images; a drop of more than 20 points below the best check so
far stops training and keeps the model of the last check that passed (Wong et al.'s early stopping;
guard.json records every check).

Both models train with bfloat16 compute (float32 parameters and batch statistics,
`compute_dtype`) and are evaluated, attacked and searched in float32 (see WORKSPACE.md,
"Mixed precision", for what bfloat16 changes in the boundary search and CW).

The study's sections are configs/cifar.py's, the paper's scale: 450 attacked images drawn from
the first 1,000 (exact) test images, Tables 1-2 on the first 100, the boundary classifier on 350
+ 100; 1,000 random orthogonal directions; CW with 4 x 1,000 iterations.

Times: not measured on a GPU yet. No GPU was lent to the sessions that wrote this config
(WORKSPACE.md, "Issue 17"). The issue's goals are under 1 minute (natural), under 10 minutes
(robust) and under 30 minutes for the whole study on one H100. On 2 CPU cores `--estimate`
projects the training at 19.6 hours: natural 8.0 h (2,610 steps of 11.1 s), robust 10.1 h (5,265
steps of 6.9 s), and the evaluations about 1.5 h (WORKSPACE.md, "Issue 29"). Measure it on your
device first:
  python -m experiments.train --config=configs/cifar_fast.py --workdir=runs/cifar_fast --estimate
"""

from ml_collections import config_dict

from configs import cifar, common

TRAIN_IMAGES = 45_000  # CIFAR-10's 50,000 less the 5,000 held out for validation


def steps(epochs: int, batch_size: int) -> int:
  """Training steps of `epochs` epochs (the trainer drops each epoch's remainder)."""
  return epochs * (TRAIN_IMAGES // batch_size)


def natural(epochs: int = 30, batch_size: int = 512) -> config_dict.ConfigDict:
  """Page's ResNet-9 recipe (the natural model)."""
  cfg = common.train(
      num_steps=steps(epochs, batch_size), batch_size=batch_size, optimizer="sgd",
      learning_rate=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="cyclic",
      warmup_fraction=0.2, augment="crop_flip", log_every=100, checkpoint_every=1000)
  cfg.model = config_dict.ConfigDict(dict(name="resnet9", width=64))
  cfg.compute_dtype = "bfloat16"
  cfg.label_smoothing = 0.2
  cfg.cutout = 8
  return cfg


def robust(epochs: int = 15, batch_size: int = 128) -> config_dict.ConfigDict:
  """Wong et al.'s FGSM with random start, cyclic schedule and overfitting guard."""
  per_epoch = TRAIN_IMAGES // batch_size
  cfg = common.train(
      num_steps=epochs * per_epoch, batch_size=batch_size, optimizer="sgd",
      learning_rate=0.2, momentum=0.9, weight_decay=5e-4, schedule="cyclic",
      warmup_fraction=0.5, augment="crop_flip", adversarial=True,
      attack=dict(epsilon=8.0, step_size=10.0, num_steps=1, random_start=True),
      log_every=100, checkpoint_every=1000)
  cfg.compute_dtype = "bfloat16"
  cfg.guard = config_dict.ConfigDict(dict(
      every=per_epoch, examples=512, max_drop=0.2, seed=0, pgd=common.pgd(8.0, 2.0, 5)))
  return cfg


def get_config() -> config_dict.ConfigDict:
  config = cifar.get_config()  # the paper's study sections; the models are replaced
  config.model = config_dict.ConfigDict(dict(name="preact_resnet", width=64))
  config.models = config_dict.ConfigDict()
  config.models.natural = natural()
  config.models.adversarial = robust()
  # PGD-20 (epsilon 8, step 2), the robustness figure, on the whole test split
  config.eval = common.evaluation(common.pgd(8.0, 2.0, 20), pgd_examples=10_000,
                                  autoattack_examples=1000)
  config.eval.batch_size = 1000
  config.attack.batch_size = 150
  return config
