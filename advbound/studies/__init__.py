"""One package per paper's study, each built on the library below it (never the reverse).

Each study declares its config sections in `<study>/settings.py` (on `advbound.config.schema`,
with the shared sections of `advbound.training.settings`) and its stages as one
`advbound.runtime.stages.Study` named `STUDY` in `<study>/pipeline.py`, run by
`python -m experiments.<study>`:

- `decision_boundary`: He, Li & Song's decision-boundary analysis (ICLR 2018).
- `region_defense`: Cao & Gong's region-based classification and its attack suite (ACSAC 2017).
- `blind_spot`: the limitations of adversarial training and the blind-spot attack (ICLR 2019).
- `training_dynamics`: universality, robustness and detectability of adversarial perturbations
  under adversarial training (ICLR 2019 submission).

Shared by the studies: `variants` (which model variants a config trains, how they depend on
each other, their stamps, `train_variant`, `train_and_evaluate`), `plots` (the figures) and
`settings_doc` (docs/settings.md from the declarations).
"""
