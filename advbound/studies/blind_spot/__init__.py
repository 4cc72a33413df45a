"""The blind-spot study (Zhang et al., "The Limitations of Adversarial Training and the
Blind-Spot Attack"): embedding-space distance of test inputs to the training set (Figures 1-3),
train/test divergence of t-SNE embeddings (Table 1), and the scale-and-shift blind-spot attack
(Tables 2-3, Figures 4-5). `python -m experiments.blind_spot` runs it (pipeline.py)."""
