"""A tiny blind-spot run (well under a minute of work on 2 CPU cores) for tests and a first look:
the quickstart with 20-step models, 12 attacked images, 5 C&W iterations per c, a short t-SNE.

  python -m experiments.blind_spot --config=configs/blind_spot_smoke.py --workdir=/tmp/bs_smoke
"""

from ml_collections import config_dict

from configs import blind_spot_quickstart


def get_config() -> config_dict.ConfigDict:
  config = blind_spot_quickstart.get_config()
  for v in config.models:
    config.models[v].update(dict(num_steps=20, log_every=10, checkpoint_every=20))
  config.study.alphas = (1.0, 0.8)
  config.divergence.update(dict(train_per_class=60, test_per_class=20, max_iter=300, grid=60,
                                seeds=2, resamples=10))
  config.attack.update(dict(num_images=12, batch_size=8))
  config.attack.cw.update(dict(max_iterations=5, initial_const=2.0, largest_const=8.0))
  config.figures.histogram_pair = (0.8, 0.0)
  return config
