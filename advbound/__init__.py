"""advbound: adversarial examples studied through the decision boundaries around them.

The public API (docs/design.md, "The contract") is reached from this package:
`advbound.data.load`, `advbound.models.as_logits_fn`, `advbound.attacks.pgd`,
`advbound.directions.random_orthogonal`, `advbound.boundary.search`, `advbound.region.classify`,
`advbound.metrics.rms`, `advbound.stats.proportion`, and the groups below them:

  data, directions, boundary, region, metrics, stats   the contract's modules
  attacks/     one module per attack family, presets by paper name
  models/      Flax NNX architectures and the bridge to a pure logits_fn
  analysis/    measurements beyond the contract (boundary classifier, detectors, kNN, KDE
               divergence, stability, transformations, evaluation)
  training/    optimizers, augmentation, the jitted step, the loop, the shared config sections
  runtime/     atomic I/O, the workdir lock, sharding, chunking, input checks, the stage runner
  config/      the schema every config section is declared with
  studies/     one package per paper's study, on everything above

Submodules load on first use (`import advbound` alone does not import JAX).
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("data", "directions", "boundary", "region", "metrics", "stats", "attacks",
               "models", "analysis", "training", "runtime", "config", "studies")
__all__ = list(_SUBMODULES)


def __getattr__(name: str):
  if name in _SUBMODULES:
    return importlib.import_module(f"advbound.{name}")
  raise AttributeError(f"module 'advbound' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_SUBMODULES))
