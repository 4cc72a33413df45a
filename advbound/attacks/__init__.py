"""Adversarial attacks: pure functions of a `logits_fn` (one module per family)."""

from advbound.attacks.cw import carlini_wagner_l2
from advbound.attacks.fgsm import fgsm, fgsm_epsilon_search
from advbound.attacks.optmargin import ensemble_perturbations, optmargin
from advbound.attacks.pgd import pgd
from advbound.attacks.result import AttackResult

__all__ = ["AttackResult", "carlini_wagner_l2", "ensemble_perturbations", "fgsm",
           "fgsm_epsilon_search", "optmargin", "pgd"]
