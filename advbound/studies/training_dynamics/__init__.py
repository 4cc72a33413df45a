"""The training-dynamics study ("Universality, Robustness, and Detectability of Adversarial
Perturbations under Adversarial Training"): `python -m experiments.training_dynamics`."""
