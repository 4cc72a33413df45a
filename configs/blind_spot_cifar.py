"""The blind-spot study on CIFAR-10: Madry et al.'s WRN-32-10, naturally and PGD-trained
(epsilon 8 of 255), Table 1's CIFAR-10 column and Figure 3 (the paper ran its scale-and-shift
attack on MNIST and Fashion-MNIST only, so the grid here is the untransformed test set alone).

  python -m experiments.blind_spot --config=configs/blind_spot_cifar.py --workdir=runs/bs_cifar

Settings: the models as configs/cifar.py trains them (Madry et al.'s recipe); the global
average pool as feature extractor; all 10,000 test images (tfds); C&W L-inf with the released
defaults on a seeded draw of 1,000 test images at epsilon 8 on the 0-255 scale. A GPU job (the
WRN trains for hours; not run yet, see WORKSPACE.md).

On the files in ../shared/data instead of tfds, only the first 1,000 test images are exact
(1,000-9,999 were recovered from JPEG copies, whose artefacts would inflate exactly the
distances measured here), so the study must keep to them, and Table 1's divergence then cannot
draw its 800 test images per class (validation says so); lowering divergence.test_per_class
makes the KL incomparable with the MNIST and Fashion-MNIST configs':
  python -m experiments.blind_spot --config=configs/blind_spot_cifar.py --workdir=runs/bs_cifar \
      --config.data.source=npz --config.data.path='../shared/data/cifar10_{split}*.npz' \
      --config.study.test_images=1000 --config.divergence.test_per_class=80

Remaining departures from the paper: (1) the models are trained here with Madry et al.'s
recipe; the paper attacked Madry's released CIFAR-10 model. (2) Table 1's divergence uses
exactly 4,500 training and 800 test embeddings per class, as every data set's config (the paper
does not state its counts, presumably every point: 5,000 / 1,000 per class); equal counts make
the data sets' KLs comparable, and our KL is not at the paper's counts. (3) The t-SNE settings
the paper leaves open are ours (scikit-learn Barnes-Hut, perplexity 30, random initialisation,
"auto" learning rate, 1,000 iterations, a 200 x 200 KL grid); the spread over 5 t-SNE maps and
the bootstrap over 100 resamples of the points are beyond the paper. (4) The attack runs on a
seeded draw of 1,000 test images (the paper does not say how many). (5) Success is distortion
<= epsilon in float32 (the paper: "less than"). (6) The training set and the reference set of
the kNN distances and of the divergence is our 45,000-image training split (5,000 held out for
validation; the paper's model was trained on all 50,000). (7) No scale-and-shift grid: the
paper ran its blind-spot attack on MNIST and Fashion-MNIST only.

With the fast-trained models of configs/cifar_fast.py instead (Page's ResNet-9, natural, and
Wong et al.'s FGSM-trained PreAct ResNet-18 at the same epsilon 8; minutes instead of hours):
  python -m experiments.blind_spot --config=configs/blind_spot_cifar.py:fast \
      --workdir=runs/bs_cifar_fast
Their feature extractors: ResNet-9's global max pool, PreAct ResNet-18's global average pool.
"""

from ml_collections import config_dict

from configs import cifar, cifar_fast, common

MODELS = ("madry", "fast")


def get_config(models: str = "madry") -> config_dict.ConfigDict:
  if models not in MODELS:
    raise ValueError(f"blind_spot_cifar: the models must be one of {MODELS}, got {models!r} "
                     "(use --config=configs/blind_spot_cifar.py:fast)")
  base = cifar.get_config() if models == "madry" else cifar_fast.get_config()
  config = config_dict.ConfigDict()
  config.data = base.data
  config.model = base.model
  config.models = base.models
  config.update(common.blind_spot_study(
      epsilon=8.0, alphas=(1.0,), num_images=1000, attack_batch_size=250,
      histogram_pair=None))
  config.study.batch_size = 200
  config.note = " ".join(__doc__[__doc__.index("Remaining departures"):].split())
  return config
