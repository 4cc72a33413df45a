"""The blind-spot study on CIFAR-10: Madry et al.'s WRN-32-10, naturally and PGD-trained
(epsilon 8 of 255), Table 1's CIFAR-10 column and Figure 3 (the paper ran its scale-and-shift
attack on MNIST and Fashion-MNIST only, so the grid here is the untransformed test set alone).

  python -m experiments.blind_spot --config=configs/blind_spot_cifar.py --workdir=runs/bs_cifar

On the files in ../shared/data instead of tfds (their test images 1,000-9,999 were recovered
from JPEG copies, whose artefacts would inflate exactly the distances measured here, so the
study uses only the first 1,000, which are exact; keep study.test_images at 1,000 there):
  python -m experiments.blind_spot --config=configs/blind_spot_cifar.py --workdir=runs/bs_cifar \
      --config.data.source=npz --config.data.path='../shared/data/cifar10_{split}*.npz'

Settings: the models as configs/cifar.py trains them (Madry et al.'s recipe; the paper used
Madry's released adversarially trained model); the global average pool as feature extractor;
the first 1,000 test images throughout (with tfds all 10,000 may be used:
--config.study.test_images=10000); t-SNE of every training embedding and the 100 test
embeddings per class; C&W L-inf with the released defaults on all 1,000 images at epsilon 8 on
the 0-255 scale. A GPU job (the WRN trains for hours; not run yet, see WORKSPACE.md).

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
      epsilon=8.0, alphas=(1.0,), num_images=1000, attack_batch_size=250, test_images=1000,
      histogram_pair=None))
  config.study.batch_size = 200
  return config
