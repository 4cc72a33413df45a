"""He, Li & Song, "Decision Boundary Analysis of Adversarial Examples" (ICLR 2018): the whole
study, resumable.

  python -m experiments.decision_boundary --config=configs/quickstart.py --workdir=DIR

Modules: attack_study (Table 1), region_study (Table 2, the radius, certification and the
measurement study), boundary_study (boundary information, Figures 1-3), pipeline (the stages
and the boundary classifier's Tables 3-4), report (report.md, results.json).
"""
