"""Cao & Gong's published numbers (the extended version, all 9 targets per image), for the
report's side-by-side tables: (success rate, mean noise) per classifier row and attack; noise
L0 in changed pixels, L2 / L-inf on the [0, 1] scale."""

ROWS = ("point", "adversarial_training", "distillation", "region")
ROW_NAMES = {"point": "Point-based", "adversarial_training": "Adversarial training",
             "distillation": "Distillation", "region": "Region-based"}

TABLE3 = {"mnist": {"point": 0.994, "adversarial_training": 0.993, "distillation": 0.992,
                    "region": 0.994},
          "cifar10": {"point": 0.901, "adversarial_training": 0.881, "distillation": 0.883,
                      "region": 0.901}}
RADIUS = {"mnist": 0.3, "cifar10": 0.02}

_T4_COLS = ("T-JSMA", "T-CW-L0", "T-FGSM", "T-IGSM", "T-CW-Linf", "T-CW-L2")
_T5_COLS = ("U-JSMA", "U-CW-L0", "U-FGSM", "U-IGSM", "U-CW-Linf", "U-CW-L2", "DeepFool")
_T6_COLS = ("T-CA-L0", "T-CA-Linf", "T-CA-L2", "U-CA-L0", "U-CA-Linf", "U-CA-L2")


def _table(cols, rows):
  return {row: dict(zip(cols, cells)) for row, cells in zip(ROWS, rows)}


TABLE4 = {
    "mnist": _table(_T4_COLS, (
        ((1.00, 72.3), (1.00, 18.8), (0.38, 0.276), (0.999, 0.183), (1.00, 0.188), (1.00, 2.01)),
        ((1.00, 108.5), (1.00, 17.5), (0.45, 0.257), (0.999, 0.139), (1.00, 0.143),
         (1.00, 1.41)),
        ((0.98, 45.3), (1.00, 21.0), (0.52, 0.232), (1.00, 0.162), (1.00, 0.163), (1.00, 1.96)),
        ((0.53, 53.1), (0.191, 11.9), (0.11, 0.339), (0.001, 0.086), (0.001, 0.089),
         (0.002, 0.912)))),
    "cifar10": _table(_T4_COLS, (
        ((1.00, 79.7), (1.00, 30.5), (0.72, 0.024), (1.00, 0.008), (1.00, 0.007), (1.00, 0.192)),
        ((1.00, 84.3), (1.00, 28.9), (0.70, 0.056), (1.00, 0.008), (1.00, 0.01), (1.00, 0.215)),
        ((1.00, 105.2), (1.00, 32.6), (0.64, 0.027), (1.00, 0.009), (1.00, 0.011),
         (1.00, 0.251)),
        ((0.78, 85.6), (0.063, 22.9), (0.50, 0.025), (0.29, 0.007), (0.027, 0.004),
         (0.026, 0.079)))),
}
TABLE5 = {
    "mnist": _table(_T5_COLS, (
        ((1, 21.4), (1, 8.1), (1, 0.188), (1, 0.133), (1, 0.138), (1, 1.35), (1, 2.17)),
        ((1, 36.9), (1, 8.2), (1, 0.151), (1, 0.098), (1, 0.101), (1, 0.932), (1, 1.39)),
        ((1, 13.64), (1, 9.2), (1, 0.137), (1, 0.107), (1, 0.111), (1, 1.26), (1, 1.74)),
        ((0.98, 23.1), (0.95, 11.8), (0.80, 0.288), (0.18, 0.222), (0.12, 0.182), (0.19, 2.42),
         (0.34, 2.39)))),
    "cifar10": _table(_T5_COLS, (
        ((1, 28.2), (1, 12.5), (1, 0.0065), (1, 0.005), (1, 0.010), (1, 0.11), (1, 0.16)),
        ((1, 24.9), (1, 12.3), (1, 0.007), (1, 0.005), (1, 0.006), (1, 0.12), (0.94, 0.19)),
        ((1, 39.1), (1, 14.4), (0.99, 0.0079), (1, 0.006), (1, 0.007), (1, 0.136), (0.84, 0.19)),
        ((1, 34.8), (0.41, 20.8), (1, 0.0079), (0.85, 0.006), (0.17, 0.009), (0.16, 0.13),
         (0.20, 0.15)))),
}
TABLE6 = {
    "mnist": _table(_T6_COLS, (
        ((1, 18.8), (1, 0.18), (1, 2.01), (1, 8.0), (1, 0.13), (1, 1.35)),
        ((1, 17.5), (1, 0.14), (1, 1.41), (1, 8.2), (1, 0.10), (1, 0.93)),
        ((1, 21.0), (1, 0.16), (1, 1.95), (1, 9.2), (1, 0.11), (1, 1.26)),
        ((0.55, 36.1), (0.11, 0.34), (1, 2.65), (1, 11.8), (0.84, 0.28), (1, 1.58)))),
    "cifar10": _table(_T6_COLS, (
        ((1, 29.9), (1, 0.007), (1, 0.18), (1, 11.9), (1, 0.005), (1, 0.11)),
        ((1, 29.7), (1, 0.009), (1, 0.22), (1, 12.8), (1, 0.005), (1, 0.12)),
        ((1, 34.9), (1, 0.009), (1, 0.25), (1, 15.2), (1, 0.006), (1, 0.14)),
        ((0.76, 85.5), (0.58, 0.019), (1, 0.26), (1, 29.3), (1, 0.007), (1, 0.19)))),
}

# Numbers stated in the text (Figures 6 and 8).
CLAIMS = {
    "mnist": ["high-confidence T-CW-L2 reaches 100% against region classification at kappa "
              "about 20, with 70% more noise than at kappa = 0 (Figure 6)",
              "T-CW-L2-A is the best adapted attack: 64% at alpha = 1, 50% at alpha = 0.25 "
              "(Figure 8)"],
    "cifar10": ["high-confidence T-CW-L2 needs 100% more noise for 100% success against "
                "region classification (Figure 6)",
                "T-CW-Linf-A is the best adapted attack: 85% at alpha = 1.8, 50% at alpha = "
                "0.75 (Figure 8)"],
}

# Success rates against region classification stated in the text, by alpha (Figure 8) and
# kappa (Figure 6; "around 20"), for the paper's mark beside ours.
FIGURE8 = {"mnist": {"T-CW-L2-A": {"1": 0.64, "0.25": 0.50}},
           "cifar10": {"T-CW-Linf-A": {"1.8": 0.85, "0.75": 0.50}}}
FIGURE6 = {"mnist": {"region": {"20": 1.00}}, "cifar10": {}}
