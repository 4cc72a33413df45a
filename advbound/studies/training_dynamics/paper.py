"""The numbers the paper states in its text (it has no tables; every result is a curve). CIFAR-10,
pre-activation ResNet-18, BI with epsilon 4, step 1, 10 iterations on the 0-255 scale; 200
natural epochs (SGD), then 250 epochs of adversarial training with predicted labels."""

NATURAL = dict(test_accuracy=0.941, bi_accuracy=0.005)                     # Section 3
LEARNING = dict(test_accuracy=0.90, fgsm_accuracy=0.68, bi_accuracy=0.62,   # Appendix A
                train_bi_accuracy=0.977)
PEARSON_R = -0.293                                                          # Section 3.1
UNIVERSAL = dict(epoch0_accuracy=0.12, after_epoch=3, later_accuracy_at_least=0.80)  # 3.2
# Appendix C: mean share of other test inputs a perturbation is effective on, per epoch
# ("last" is their epoch 251); at epoch 0 the least shared one still reaches 3.3%, after the
# last epoch the most shared one stays below 1%.
SHAREDNESS_MEAN = {"0": 0.063, "1": 0.011, "15": 0.008, "last": 0.005}
SHAREDNESS_EPOCH0_MIN = 0.033
SHAREDNESS_LAST_MAX_BELOW = 0.01
DETECTABILITY_ABOVE = 0.90                                                  # Section 3.4
DETECTOR_MAXIMISER_PROBABILITY_AT_MOST = 0.12                               # Figure 7, epoch >= 1
TRANSFER_LATER_ERROR_AT_LEAST = 0.20        # Appendix A: BI from epochs 5 / 15 on later models
NOISE_SIGMA_WEAK, NOISE_SIGMA_STRONG = 5.0, 7.0                             # Section 3.3
