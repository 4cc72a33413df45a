"""One package per paper's study, each built on the library below it (never the reverse), and
each on the shared stage machinery of `advbound.runtime.stages` and the model variants of
`variants` (which variants a config trains, their stamps, `train_variant`, `train_and_evaluate`).

- `decision_boundary`: He et al.'s decision-boundary study
  (`python -m experiments.decision_boundary`).
- `region_defense`: Cao & Gong's region-based classification and its evaluation
  (`python -m experiments.region_defense`).
"""
