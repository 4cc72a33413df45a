"""One package per paper's study, each built on the library below it (never the reverse).

- `region_defense`: Cao & Gong's region-based classification and its evaluation
  (`python -m experiments.region_defense`).

He et al.'s decision-boundary study (`python -m experiments.decision_boundary`) is
`advbound.pipeline` with its stage modules (attack_study, region_study, boundary_study, report).
Every study runs on the shared stage machinery of `advbound.stages`.
"""
