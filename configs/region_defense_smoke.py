"""A tiny region-defense run (about a minute on 2 CPU cores) for tests and a first look: the
quickstart with 30-step models, 1 image x 9 targets, a few attack iterations, m = 20.

  python -m experiments.region_defense --config=configs/region_defense_smoke.py --workdir=/tmp/rd_smoke
"""

from ml_collections import config_dict

from configs import region_defense_quickstart


def get_config() -> config_dict.ConfigDict:
  config = region_defense_quickstart.get_config()
  for v in config.models:
    config.models[v].update(dict(num_steps=30, log_every=10, checkpoint_every=30))
  config.radius.update(dict(step=0.1, num_samples=10, validation_images=50, max_radius=0.4))
  config.region.update(dict(num_samples=20, score_draws=2))
  ev = config.evaluation
  ev.update(dict(num_images=1, batch_size=9, kappas=(20.0,)))
  ev.overrides.cw_l2.update(dict(binary_search_steps=2, max_iterations=10))
  ev.overrides.cw_l0.max_iterations = 5
  ev.overrides.cw_linf.max_iterations = 5
  ev.overrides.jsma.gamma = 0.05
  ev.overrides.igsm.max_epsilon = 0.2
  config.adapted.alphas = (0.0, 1.0)
  config.adaptive.update(dict(epsilons=(0.2,), num_steps=3, num_samples=2))
  config.figures.histogram_samples = 50
  return config
