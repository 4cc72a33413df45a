"""The blind-spot paper's numbers, keyed as our results are."""

# Table 1: average KL(train || test) over classes, C&W L-inf success on the (correctly
# classified) test images at epsilon, test accuracy of the adversarially trained model.
TABLE1 = {
    "fashion_mnist": dict(kl_divergence=0.046, success_rate=0.064, test_accuracy=0.861),
    "mnist": dict(kl_divergence=0.119, success_rate=0.097, test_accuracy=0.982),
    "cifar10": dict(kl_divergence=0.571, success_rate=0.379, test_accuracy=0.870),
}

# Tables 2 (MNIST, epsilon 0.3) and 3 (Fashion-MNIST, epsilon 0.1): (alpha, beta on the paper's
# [-0.5, 0.5] scale) -> (accuracy, success at epsilon, success at alpha * epsilon). At
# (1.0, 0.0) both thresholds are epsilon.
SCALE_SHIFT = {
    "mnist": {
        (1.0, 0.0): (0.982, 0.0970, 0.0970),
        (0.9, 0.0): (0.983, 0.7520, 0.1520),
        (0.9, 0.05): (0.985, 0.9365, 0.8250),
        (0.8, 0.0): (0.984, 0.9485, 0.5230),
        (0.8, 0.1): (0.985, 0.9955, 0.9545),
        (0.7, 0.0): (0.984, 0.9860, 0.8245),
        (0.7, 0.15): (0.981, 0.9995, 0.9995),
    },
    "fashion_mnist": {
        (1.0, 0.0): (0.861, 0.0640, 0.0640),
        (0.95, 0.0): (0.861, 0.1125, 0.0905),
        (0.95, 0.025): (0.864, 0.2255, 0.1855),
        (0.9, 0.0): (0.861, 0.2570, 0.1915),
        (0.9, 0.05): (0.862, 0.6260, 0.5595),
    },
}

# Figure 4: the L-inf distortion of the shown example at each (alpha, beta).
FIGURE4 = {
    "fashion_mnist": {(1.0, 0.0): 0.218, (0.9, 0.0): 0.099, (0.9, 0.05): 0.070},
    "mnist": {(1.0, 0.0): 0.338, (0.8, 0.0): 0.229, (0.8, 0.1): 0.129},
}

# Figure 5's pairs
FIGURE5 = {"mnist": (0.7, 0.0), "fashion_mnist": (0.9, 0.0)}


def pair_key(alpha: float, beta: float) -> str:
  """The results' key of a pair: "alpha=0.9,beta=0.05"."""
  return f"alpha={alpha:g},beta={beta:g}"
