"""Quickstart of the blind-spot study (Zhang et al., "The Limitations of Adversarial Training and
the Blind-Spot Attack"): Madry et al.'s MNIST CNN, naturally and PGD-trained, every part of the
paper's evaluation, budgeted to at most 15 minutes on 2 CPU cores.

  python -m experiments.blind_spot --config=configs/blind_spot_quickstart.py --workdir=/tmp/bs

runs MNIST on the embedded MNIST-5k. Fashion-MNIST (tfds, or the .npz files in ../shared/data):
  python -m experiments.blind_spot --config=configs/blind_spot_quickstart.py:fashion_mnist \
      --workdir=/tmp/bs_fashion --config.data.source=npz \
      --config.data.path='../shared/data/fashion_mnist_{split}.npz'

Reduced from the paper (configs/blind_spot_mnist.py and blind_spot_fashion_mnist.py have its
settings; their docstrings list the departures that remain there), to fit the budget:
- data: MNIST: the 3,500 training / 1,000 test digits of MNIST-5k (not 55,000 / 10,000);
  Fashion-MNIST: the 55,000 training images, the first 1,000 test images.
- training: natural 300 Adam steps of 64; PGD-trained 300 steps of 64 on PGD of 5 steps
  (epsilon ramped up over the first 30%) instead of 100,000 steps of 50 on PGD-40.
- divergence: t-SNE of 350 training and 80 test embeddings per class in both data sets (not
  the paper configs' 4,500 / 800: MNIST-5k holds 350 / 100 per class, the first 1,000
  Fashion-MNIST test images at least 87), 500 iterations instead of 1,000, 3 t-SNE maps and 50
  bootstrap resamples (not 5 and 100), the KL on a 100 x 100 grid (not 200 x 200). The KL is
  comparable between the two quickstarts, not with a paper-scale run's (other counts).
- attack: a seeded draw of 100 test images (not 2,000, the paper's count judging by Table 2's steps
  of 0.05%); C&W L-inf with 20 Adam iterations per c (lr 0.02), c from 1 (not 1,000 of lr
  0.005 from 1e-5), tau shrinking by 0.8 (not 0.9), and each search ended at its first example
  within alpha * epsilon (`attack.stop_at_threshold`): success at both thresholds is exact for
  the search made, the distortions are upper bounds of what the full search would reach.
"""

from ml_collections import config_dict

from advbound.analysis import scale_shift
from configs import common

_QUICK_CW = dict(max_iterations=20, learning_rate=0.02, initial_const=1.0, decrease_factor=0.8)


def get_config(dataset: str = "mnist") -> config_dict.ConfigDict:
  if dataset not in ("mnist", "fashion_mnist"):
    raise ValueError(f"blind_spot_quickstart: dataset must be mnist or fashion_mnist, got "
                     f"{dataset!r} (use --config=configs/blind_spot_quickstart.py:fashion_mnist)")
  mnist = dataset == "mnist"
  epsilon = 0.3 if mnist else 0.1
  config = config_dict.ConfigDict()
  config.data = common.data("mnist", "embedded") if mnist else common.data("fashion_mnist",
                                                                           "tfds")
  config.model = config_dict.ConfigDict(dict(name="mnist_cnn"))
  quick = dict(num_steps=300, batch_size=64, learning_rate=1e-3, schedule="cosine",
               warmup_fraction=0.02, log_every=50, checkpoint_every=100)
  config.models = config_dict.ConfigDict()
  config.models.natural = common.train(**quick)
  config.models.adversarial = common.train(
      **quick, adversarial=True,
      attack=dict(epsilon=epsilon, step_size=epsilon / 3, num_steps=5,
                  epsilon_warmup_fraction=0.3))
  config.update(common.blind_spot_study(
      epsilon=epsilon,
      alphas=scale_shift.MNIST_ALPHAS if mnist else scale_shift.FASHION_MNIST_ALPHAS,
      num_images=100, attack_batch_size=100, test_images=None if mnist else 1000,
      train_per_class=350, test_per_class=80, tsne_seeds=3, resamples=50, kl_grid=100,
      tsne_iterations=500, stop_at_threshold=True,
      histogram_pair=(0.7, 0.0) if mnist else (0.9, 0.0), cw=_QUICK_CW))
  config.note = ("Reduced from the paper to fit 15 minutes on 2 CPU cores (beyond the "
                 "departures configs/blind_spot_mnist.py lists): "
                 + " ".join(__doc__[__doc__.index("- data:"):].split()))
  return config
