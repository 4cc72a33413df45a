"""Stage "destruction": the destruction rate (Kurakin et al.; Section 3.3, Appendix F, Figures
5, 14, 15) of the stored BI, FGSM and DeepFool examples of the study's test inputs under
additive brightness, multiplicative contrast, Gaussian blur and additive Gaussian noise, at the
epochs of `destruction.epochs`, on the eval draw (the whole test split at the paper's
settings). Each rate cell is transforms.destruction_rate's {rate, destroyed, effective} plus a
`stats.proportion` cell "interval" (destroyed of effective, 95% Wilson). The levels are
settings on the data's scale; each noise level draws one fixed noise per input (the same at
every epoch and for every attack, so epochs are compared on equal draws). Brightness and noise
levels are reported in `study.paper_unit`s, the data's stand-in for one step of the paper's
0-255 CIFAR-10 scale.
"""

from __future__ import annotations

import jax
import numpy as np

from advbound import stats
from advbound.analysis import transforms
from advbound.studies.training_dynamics import epochs as epochs_lib, examples

ATTACK_FIELDS = {"bi": "bi_eval", "fgsm": "fgsm_eval", "deepfool": "deepfool_eval"}


def run(config, workdir: str, *, data: dict, models: epochs_lib.Models) -> dict:
  d = config.destruction
  xt, yt = epochs_lib.inputs(config, data)["eval"]
  bounds, batch = data["test"].bounds, int(config.study.batch_size)
  out = {}
  for epoch in epochs_lib.resolve(config, d.epochs):
    fn = models(epoch)
    stored = examples.load(workdir, epoch, [ATTACK_FIELDS[a] for a in d.attacks])
    row = {}
    for attack in d.attacks:
      x_adv = stored[ATTACK_FIELDS[attack]]
      effective = transforms.effective_examples(fn, xt, x_adv, yt, batch_size=batch)
      rates = {}
      for kind in transforms.KINDS:
        rates[kind] = []
        for i, level in enumerate(d[kind]):
          key = jax.random.fold_in(jax.random.key(int(d.seed)), i) if kind == "noise" else None
          moved = transforms.apply(kind, x_adv, float(level), bounds=bounds, key=key)
          cell = transforms.destruction_rate(fn, xt, x_adv, yt, np.asarray(moved),
                                             effective=effective, batch_size=batch)
          cell["interval"] = stats.proportion(cell["destroyed"], cell["effective"])
          rates[kind].append(cell)
      row[attack] = dict(effective=int(effective.sum()), inputs=int(len(yt)),
                         effective_rate=stats.of(effective), rates=rates)
    out[epochs_lib.label(config, epoch)] = dict(epoch=epoch, **row)
  return dict(levels={k: [float(v) for v in d[k]] for k in transforms.KINDS},
              paper_unit=float(config.study.paper_unit), epochs=out)
