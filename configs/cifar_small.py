"""CIFAR-10 (tfds) with the small CIFAR model, for verification runs on a CPU.

Run (tfds CIFAR-10: needs the prepared data set, or network access and TensorFlow to prepare
it once; see the README's 'Data' section):
  python -m experiments.train --config=configs/cifar_small.py --workdir=runs/cifar_small

On .npz files of CIFAR-10 instead (e.g. this workspace's ../shared/data):
  python -m experiments.train --config=configs/cifar_small.py --workdir=runs/cifar_small \
      --config.data.source=npz --config.data.path='../shared/data/cifar10_{split}*.npz'

Natural model only (about 20 minutes on 2 CPU cores):
  python -m experiments.train --config=configs/cifar_small.py --workdir=runs/cifar_small \
      --only=natural

SmallCifarCNN (width 16, ~0.1M parameters) instead of WRN-32-10; pixels in [0, 255] as in the
paper. Natural: SGD Nesterov momentum 0.9, one-cycle lr peaking at 0.1, batch 128, 5,500 steps
(15.6 epochs of the 45,000 training images), weight decay 5e-4, crop and flip. PGD-trained:
the paper's eps 8 with 3 steps of 4 (instead of 7 of 2) for 4,000 steps. On 2 CPU cores
`--estimate` projects the training at 2.0 h: natural 12 min (5,500 steps of 132 ms), PGD-trained
1.8 h (4,000 steps of 1.6 s). Evaluation: PGD eps 8, 7 steps of 2 on the first 1,000 test
images, the exact ones (in ../shared/data's copy, 1,000-9,999 were recovered from JPEG copies;
its README).

The whole study (models, Tables 1-4, Figures 1-3, report), resumable stage by stage:
  python -m experiments.decision_boundary --config=configs/cifar_small.py --workdir=runs/cifar_small
It took 4.4 minutes on one H100 with 100 attacked images (WORKSPACE.md); with the paper's 450
(Tables 1-2 on the first 100, the boundary classifier on 350 + 100) expect about 11 minutes
there. On 2 CPU cores `--estimate` projects (WORKSPACE.md, "Issue 29"): training 2.0 h, the
attacks at most 14.8 h (OPTMARGIN's CW-L2 4.4 h per model), the region stage at most 2.7 h; its
probe did not reach the boundary stage in 6 minutes. Measure it on your device first:
  python -m experiments.decision_boundary --config=configs/cifar_small.py \
      --workdir=runs/cifar_small --estimate
"""

from ml_collections import config_dict

from configs import common


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.data = common.data("cifar10", "tfds")
  config.model = config_dict.ConfigDict(dict(name="small_cifar", width=16))
  recipe = dict(batch_size=128, optimizer="sgd", learning_rate=0.1, momentum=0.9,
                nesterov=True, weight_decay=5e-4, schedule="onecycle", warmup_fraction=0.25,
                augment="crop_flip", log_every=100, checkpoint_every=500)
  config.models = config_dict.ConfigDict()
  config.models.natural = common.train(num_steps=5500, **recipe)
  config.models.adversarial = common.train(
      num_steps=4000, **recipe, adversarial=True,
      attack=dict(epsilon=8.0, step_size=4.0, num_steps=3, epsilon_warmup_fraction=0.2))
  config.eval = common.evaluation(common.pgd(8.0, 2.0, 7), pgd_examples=1000)
  # Tables 1-2 on 100 images; the boundary classifier on 350 + 100 (paper, section 5.2)
  config.attack = common.attack(num_images=450, batch_size=150, binary_search_steps=4,
                                 max_iterations=1000, table_images=100,
                                 pool=1000)  # the exact test images (data README)
  config.boundary = common.boundary(num_directions=1000, both_signs=False, step=2.0,
                                    max_distance=126.0, region_radius=5.1, batch_size=2048)
  config.region = common.region(radius=5.1, step=1.275, validation_images=1000,
                                certify_sigma=63.75, batch_size=2048)
  config.detect = common.detect(offset=16.0, scale=127.5, batch_size=150, steps=3400,
                                train_fraction=350 / 450)
  return config
