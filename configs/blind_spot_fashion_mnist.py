"""The blind-spot study on Fashion-MNIST with the paper's settings: the MNIST CNN, naturally and
PGD-trained at epsilon 0.1, Table 1's Fashion-MNIST column, Table 3, Figures 2, 4 and 5.

  python -m experiments.blind_spot --config=configs/blind_spot_fashion_mnist.py --workdir=runs/bs_fashion

On the files in ../shared/data instead of tfds:
  python -m experiments.blind_spot --config=configs/blind_spot_fashion_mnist.py \
      --workdir=runs/bs_fashion --config.data.source=npz \
      --config.data.path='../shared/data/fashion_mnist_{split}.npz'

Settings: the paper trained its own Fashion-MNIST model "with the same model structure and
parameters as the robust MNIST model, except that the iterative adversary is allowed to perturb
each pixel by at most 0.1": Madry's recipe (Adam 1e-4, 100,000 steps of 50, PGD-40 of 0.01,
random start) at epsilon 0.1; the rest as configs/blind_spot_mnist.py (2,000 attacked test
images, C&W L-inf with the released defaults, t-SNE of every embedding), with the paper's
Fashion-MNIST grid alpha 1.0, 0.95, 0.9. A GPU job.
"""

from ml_collections import config_dict

from advbound.attacks import blind_spot
from configs import common, mnist


def get_config() -> config_dict.ConfigDict:
  base = mnist.get_config()
  config = config_dict.ConfigDict()
  config.data = common.data("fashion_mnist", "tfds")
  config.model = base.model
  config.models = base.models
  config.models.adversarial.attack.epsilon = 0.1
  config.update(common.blind_spot_study(
      epsilon=0.1, alphas=blind_spot.FASHION_MNIST_ALPHAS, num_images=2000,
      attack_batch_size=500, histogram_pair=(0.9, 0.0)))
  return config
