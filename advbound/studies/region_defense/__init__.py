"""Cao & Gong, "Mitigating Evasion Attacks to Deep Neural Networks via Region-based
Classification" (ACSAC 2017, extended version): the whole evaluation, resumable.

  python -m experiments.region_defense --config=configs/region_defense_quickstart.py --workdir=DIR

Modules: protocol (images, pairs, scoring), attacks, region_scores (radius and region labels),
adaptive (EOT-PGD, beyond the paper), figures, tables, report, paper (their numbers), settings
(config validation), pipeline (the stages).
"""
