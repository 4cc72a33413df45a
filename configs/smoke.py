"""Smoke: the whole of He et al.'s study at toy size on the embedded MNIST-5k (about a minute or
two on 2 CPU cores). For tests, the Colab notebook's self-check and trying a setup; its numbers
mean nothing.

  python -m experiments.decision_boundary --config=configs/smoke.py --workdir=/tmp/smoke

A natural MnistCNN trained 60 steps of 32; 4 attacked images with 2 x 20 CW iterations;
24 boundary directions (and their negatives); 20 region samples.
"""


def get_config():
  from ml_collections import config_dict

  from configs import common

  config = config_dict.ConfigDict()
  config.data = common.data("mnist", "embedded")
  config.model = config_dict.ConfigDict(dict(name="mnist_cnn"))
  config.models = config_dict.ConfigDict()
  config.models.natural = common.train(num_steps=60, batch_size=32, log_every=30,
                                       checkpoint_every=60)
  config.eval = common.evaluation(common.pgd(0.3, 0.1, 2), pgd_examples=10)
  config.attack = common.attack(num_images=4, batch_size=4, binary_search_steps=2,
                                max_iterations=20)
  config.attack.names = ("optbrittle", "fgsm")
  config.region = common.region(radius=0.3, step=0.1, validation_images=20, certify_sigma=0.25,
                                num_samples=20, measurement_samples=200, batch_size=512)
  config.region.certify_estimate = 100
  config.region.attacks = ("optbrittle", "fgsm")
  config.boundary = common.boundary(num_directions=24, both_signs=True, step=0.05,
                                    max_distance=0.5, region_radius=0.3, chunk_images=2,
                                    batch_size=256)
  config.boundary.examples = ("optbrittle", "fgsm")
  config.detect = common.detect(batch_size=8, steps=20, train_fraction=0.5)
  config.detect.attacks = ("fgsm", "optbrittle")
  config.detect.train_attacks = ("optbrittle",)
  return config
