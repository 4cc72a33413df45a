"""Adversarial attacks: pure functions of a `logits_fn` (one module per family)."""

from advbound.attacks.pgd import pgd

__all__ = ["pgd"]
