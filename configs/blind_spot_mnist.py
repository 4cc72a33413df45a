"""The blind-spot study on MNIST with the paper's settings: Madry et al.'s MNIST CNN, naturally
and PGD-trained (epsilon 0.3), Table 1's MNIST column, Table 2, Figures 1, 4 and 5.

  python -m experiments.blind_spot --config=configs/blind_spot_mnist.py --workdir=runs/bs_mnist

On the files in ../shared/data instead of tfds:
  python -m experiments.blind_spot --config=configs/blind_spot_mnist.py --workdir=runs/bs_mnist \
      --config.data.source=npz --config.data.path='../shared/data/mnist_{split}.npz'

Settings: the models as configs/mnist.py trains them (Madry et al.'s released MNIST recipe: Adam
1e-4, 100,000 steps of 50, PGD-40 of 0.01 at epsilon 0.3 with a random start; the paper used
Madry's "secret" model itself); the 55,000 training and all 10,000 test images; k = 5; t-SNE of
every training and test embedding per class (perplexity 30, 1,000 iterations); C&W L-inf with
the released defaults (1,000 Adam iterations per c, lr 5e-3, c from 1e-5 doubling up to 20, tau
shrinking by 0.9, down to 1/256 of the range) on 2,000 test images (Table 2's rates move in
steps of 0.05%), from the two starts. A GPU job: PGD-40 training costs about 4 days on 2 CPU
cores (configs/mnist.py), and the released C&W L-inf about 16 s per image there (WORKSPACE.md).
"""

from ml_collections import config_dict

from advbound.attacks import blind_spot
from configs import common, mnist


def get_config() -> config_dict.ConfigDict:
  base = mnist.get_config()
  config = config_dict.ConfigDict()
  config.data = base.data
  config.model = base.model
  config.models = base.models
  config.update(common.blind_spot_study(
      epsilon=0.3, alphas=blind_spot.MNIST_ALPHAS, num_images=2000, attack_batch_size=500,
      histogram_pair=(0.7, 0.0)))
  return config
