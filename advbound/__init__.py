"""advbound: adversarial examples studied through the decision boundaries around them."""

__version__ = "0.1.0"
