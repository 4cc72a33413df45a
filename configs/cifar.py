"""CIFAR-10 with the paper's settings: Madry et al.'s WRN-32-10, natural and PGD-trained.

Run (tfds CIFAR-10; needs the prepared data set or network access, and a GPU):
  python -m experiments.train --config=configs/cifar.py --workdir=runs/cifar

On the files in ../shared/data instead of tfds:
  python -m experiments.train --config=configs/cifar.py --workdir=runs/cifar \
      --config.data.source=npz --config.data.path='../shared/data/cifar10_{split}*.npz'

Settings of Madry et al.'s released CIFAR-10 model (used by He et al.): pixels in [0, 255],
SGD momentum 0.9, lr 0.1 / 0.01 / 0.001 switching at 50% / 75% of 80,000 steps, batch 128,
weight decay 2e-4 on conv and dense kernels, random crop (pad 4) and flip; adversarial training on
PGD examples (eps 8, 7 steps of 2, random start). Needs a GPU: on 2 CPU cores WRN-32-10 trains
at about 3 images/s (10 million images per run).

How long on a GPU: not measured yet (no GPU was lent to the session that added the benchmark;
WORKSPACE.md, "Issue 17"). Measure with
  python -m benchmarks.train_throughput --config=configs/cifar.py
which prints each variant's examples/s in float32 and in bfloat16 and the time of its 80,000
steps. Mixed precision (float32 parameters, bfloat16 compute) is one override away:
  --config.models.natural.compute_dtype=bfloat16 --config.models.adversarial.compute_dtype=bfloat16
The paper's models stay float32 by default. For a CIFAR-10 study of record in minutes rather
than GPU-days, configs/cifar_fast.py trains a ResNet-9 and an FGSM-trained PreAct ResNet-18.

The whole study (models, Tables 1-4, Figures 1-3, report), resumable stage by stage:
  python -m experiments.decision_boundary --config=configs/cifar.py --workdir=runs/cifar

Departure from the paper's protocol: the attacked images are a seeded draw among the test
images every model classifies correctly (the paper's 100 were an unfiltered random sample; its
Table 2 benign row is below 100%). Every attacked image is thus a correctly classified input,
as the paper's definition of an adversarial example asks; our benign point rows are 100% by
construction. Table 2's region rows use one fixed noise draw per image (region.seed).
"""

from ml_collections import config_dict

from configs import common


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.data = common.data("cifar10", "tfds")
  config.model = config_dict.ConfigDict(dict(name="wide_resnet", depth=32, width=10))
  madry = dict(num_steps=80_000, batch_size=128, optimizer="sgd", learning_rate=0.1,
               momentum=0.9, weight_decay=2e-4, schedule="piecewise",
               schedule_boundaries=(0.5, 0.75), schedule_factors=(0.1, 0.01),
               augment="crop_flip", log_every=200, checkpoint_every=2000)
  config.models = config_dict.ConfigDict()
  config.models.natural = common.train(**madry)
  config.models.adversarial = common.train(**madry, adversarial=True,
                                           attack=dict(epsilon=8.0, step_size=2.0, num_steps=7))
  config.eval = common.evaluation(common.pgd(8.0, 2.0, 7), pgd_examples=1000,
                                  autoattack_examples=1000)
  config.eval.batch_size = 200
  # Tables 1-2 on 100 images; the boundary classifier on 350 + 100 (paper, section 5.2)
  config.attack = common.attack(num_images=450, batch_size=50, binary_search_steps=4,
                                 max_iterations=1000, table_images=100,
                                 pool=1000)  # the exact test images (data README)
  config.boundary = common.boundary(num_directions=1000, both_signs=False, step=2.0,
                                    max_distance=126.0, region_radius=5.1, batch_size=2048)
  config.region = common.region(radius=5.1, step=1.275, validation_images=1000,
                                certify_sigma=63.75, batch_size=2048)
  config.detect = common.detect(offset=16.0, scale=127.5, batch_size=150, steps=3400,
                                train_fraction=350 / 450)
  return config
