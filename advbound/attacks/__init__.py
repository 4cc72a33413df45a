"""Adversarial attacks: pure functions of a `logits_fn` (one module per family).

He et al.'s attacks by name: `presets`; Cao & Gong's suite by name: `cao_gong`.
"""

from advbound.attacks.apgd import apgd, apgd_targeted, dlr_loss, targeted_dlr_loss
from advbound.attacks.autoattack import AutoAttackResult, autoattack
from advbound.attacks.bim import bim_epsilon_search
from advbound.attacks.compose import amplify, combine, untargeted
from advbound.attacks.cw import carlini_wagner_l2
from advbound.attacks.cw_l0 import carlini_wagner_l0
from advbound.attacks.cw_linf import carlini_wagner_linf
from advbound.attacks.deepfool import deepfool
from advbound.attacks.eot import eot_pgd
from advbound.attacks.fab import fab
from advbound.attacks.fgsm import fgsm, fgsm_epsilon_search
from advbound.attacks.jsma import jsma
from advbound.attacks.optmargin import ensemble_perturbations, optmargin
from advbound.attacks.pgd import pgd
from advbound.attacks.result import AttackResult
from advbound.attacks.square import square

__all__ = ["AttackResult", "AutoAttackResult", "amplify", "apgd", "apgd_targeted", "autoattack",
           "bim_epsilon_search", "carlini_wagner_l0", "carlini_wagner_l2", "carlini_wagner_linf",
           "combine", "deepfool", "dlr_loss", "ensemble_perturbations", "eot_pgd", "fab", "fgsm",
           "fgsm_epsilon_search", "jsma", "optmargin", "pgd", "square", "targeted_dlr_loss",
           "untargeted"]
