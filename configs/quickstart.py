"""Quickstart: the embedded MNIST-5k, Madry et al.'s MnistCNN, natural and PGD-trained.

Run:
  python -m experiments.train --config=configs/quickstart.py --workdir=/tmp/qs

Expected runtime on 2 CPU cores: about 10 minutes (natural ~2, PGD-trained ~6, evaluation ~1).
Reduced from the paper (see configs/mnist.py): 3,500 training digits instead of 60,000;
adversarial training with PGD of 5 steps of 0.1 (instead of 40 of 0.01) for 600 steps of 64
(instead of 100,000 of 50), with epsilon ramped up over the first 30% of training. Evaluation uses the paper's attack
(eps 0.3, 40 steps of 0.01) on the first 500 test digits.

Attacks (Table 1), after training, about 9 minutes more:
  python -m experiments.attack --config=configs/quickstart.py --workdir=/tmp/qs
Reduced from the paper: 20 test images instead of 100, and 100 Adam iterations per
binary-search step instead of 1,000 (OPTMARGIN costs ~12 s per image on 2 CPU cores even so).
"""

from ml_collections import config_dict

from configs import common


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.data = common.data("mnist", "embedded")
  config.model = config_dict.ConfigDict(dict(name="mnist_cnn"))
  config.models = config_dict.ConfigDict()
  config.models.natural = common.train(num_steps=1200, batch_size=64, learning_rate=1e-3,
                                       schedule="cosine", warmup_fraction=0.02,
                                       log_every=100, checkpoint_every=300)
  config.models.adversarial = common.train(
      num_steps=600, batch_size=64, learning_rate=1e-3, schedule="cosine",
      warmup_fraction=0.02, adversarial=True,
      attack=dict(epsilon=0.3, step_size=0.1, num_steps=5, epsilon_warmup_fraction=0.3),
      log_every=50, checkpoint_every=200)
  config.eval = common.evaluation(common.pgd(0.3, 0.01, 40), pgd_examples=500)
  config.attack = common.attack(num_images=20, batch_size=20, binary_search_steps=4,
                                 max_iterations=100)
  config.boundary = common.boundary(num_directions=784, both_signs=True, step=0.02,
                                    max_distance=0.5, region_radius=0.3, method="fast")
  config.region = common.region(radius=0.3, step=0.02, validation_images=200,
                                certify_sigma=0.25)
  config.detect = common.detect()
  return config
