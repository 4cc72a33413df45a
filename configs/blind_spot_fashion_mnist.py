"""The blind-spot study on Fashion-MNIST with the paper's settings: the MNIST CNN, naturally and
PGD-trained at epsilon 0.1, Table 1's Fashion-MNIST column, Table 3, Figures 2, 4 and 5.

  python -m experiments.blind_spot --config=configs/blind_spot_fashion_mnist.py \
      --workdir=runs/bs_fashion

On the files in ../shared/data instead of tfds:
  python -m experiments.blind_spot --config=configs/blind_spot_fashion_mnist.py \
      --workdir=runs/bs_fashion --config.data.source=npz \
      --config.data.path='../shared/data/fashion_mnist_{split}.npz'

Settings: the paper trained its own Fashion-MNIST model "with the same model structure and
parameters as the robust MNIST model, except that the iterative adversary is allowed to perturb
each pixel by at most 0.1": Madry's recipe (Adam 1e-4, 100,000 steps of 50, PGD-40 of 0.01,
random start) at epsilon 0.1; the rest as configs/blind_spot_mnist.py, with the paper's
Fashion-MNIST grid alpha 1.0, 0.95, 0.9. A GPU job: on 2 CPU cores `--estimate` projects the
training at 2.4 days (100,000 PGD-40 steps of 2.1 s; natural 38 min) and the kNN distances at
1.6 min; the rest was not probed there (WORKSPACE.md, "Issue 29"). Add --estimate to measure it
on your device.

Remaining departures from the paper: (1) the model is trained here with the paper's recipe
(its weights are not released). (2) Table 1's divergence uses exactly 4,500 training and 800
test embeddings per class, as every data set's config (the paper does not state its counts,
presumably every point: ~5,500 / 1,000 per class here); equal counts make the data sets' KLs
comparable, and our KL is not at the paper's counts. (3) The t-SNE settings the paper leaves
open are ours (scikit-learn Barnes-Hut, perplexity 30, random initialisation, "auto" learning
rate, 1,000 iterations, a 200 x 200 KL grid); the spread over 5 t-SNE maps and the bootstrap
over 100 resamples of the points are beyond the paper. (4) The attack runs on a seeded draw of
2,000 test images (the paper does not say how many or which). (5) Success is distortion <=
epsilon in float32 (the paper: "less than"). (6) The training set and the reference set of
the kNN distances and of the divergence is our 55,000-image training split (5,000 held out for
validation; the paper does not say); the feature extractor is h_fc1 after its ReLU.
"""

from ml_collections import config_dict

from advbound.analysis import scale_shift
from configs import common, mnist


def get_config() -> config_dict.ConfigDict:
  base = mnist.get_config()
  config = config_dict.ConfigDict()
  config.data = common.data("fashion_mnist", "tfds")
  config.model = base.model
  config.models = base.models
  config.models.adversarial.attack.epsilon = 0.1
  config.update(common.blind_spot_study(
      epsilon=0.1, alphas=scale_shift.FASHION_MNIST_ALPHAS, num_images=2000,
      attack_batch_size=500, histogram_pair=(0.9, 0.0)))
  config.note = " ".join(__doc__[__doc__.index("Remaining departures"):].split())
  return config
