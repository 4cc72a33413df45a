"""Beyond the paper: an attacker who knows the defence (stage "adaptive").

EOT-PGD (`attacks.eot_pgd`, after Athalye et al. 2018) optimises through the region classifier's
noise: L-inf PGD on the cross-entropy averaged over `adaptive.num_samples` fresh draws from the
cube per step, `adaptive.num_steps` steps of step_factor * epsilon / num_steps, from the clean
image. It runs at each L-inf budget of `adaptive.epsilons` (fractions of the data range),
targeted on every evaluated (image, target) pair and untargeted on every image, against the
deployed region classifier (its radius and m samples judge success). Artifacts:
`adaptive/eot_<targeted|untargeted>_<epsilon>.json`, one per budget (a killed run keeps them).

With `adaptive.autoattack`, AutoAttack's rand version (`attacks.autoattack`: APGD-CE and
APGD-DLR, each averaging its gradient over 20 draws) runs untargeted at each budget on the
randomised classifier f(x + u), u uniform in the cube of the region radius (one draw per
query), and the deployed region classifier (m samples) judges the clean and adversarial
inputs: `adaptive/autoattack_rand_<epsilon>.json`.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from absl import logging

from advbound import region
from advbound.attacks import autoattack, eot_pgd
from advbound.runtime import io
from advbound.studies import variants as variants_lib
from advbound.studies.region_defense import attacks as attacks_lib, protocol, settings


def run(config, workdir: str, *, data: dict, fns: dict, radius: float) -> dict:
  """{"targeted": {eps: rates}, "untargeted": {eps: rates}} with noise in L-inf on the [0, 1]
  scale; empty when adaptive.epsilons is empty."""
  acfg = config.adaptive
  test = data["test"]
  point = config.study.point
  span = float(test.bounds[1] - test.bounds[0])
  chosen = attacks_lib.load_chosen(workdir)
  base = {"adaptive": acfg.to_dict(), "radius": radius, "region": config.region.to_dict(),
          "indices": chosen["indices"].tolist(), "model": variants_lib.model_stamp(config, point)}
  out = {"targeted": {}, "untargeted": {}}
  key = jax.random.key(acfg.seed)
  for i, fraction in enumerate(acfg.epsilons):
    eps = float(fraction) * span
    for j, kind in enumerate(("targeted", "untargeted")):
      path = os.path.join(workdir, "adaptive", f"eot_{kind}_{fraction:g}.json")
      stamp = json.dumps({**base, "epsilon": float(fraction), "kind": kind}, sort_keys=True,
                         default=str)
      cached = io.read_json_if_current(path, stamp)
      if cached is not None:
        out[kind][f"{fraction:g}"] = cached["result"]
        continue
      x, y, target = attacks_lib.evaluated(chosen, test, targeted=kind == "targeted")
      goal = target if kind == "targeted" else y
      r = eot_pgd(fns[point], jax.random.fold_in(key, 2 * i + j), x, goal, epsilon=eps,
                  step_size=float(acfg.step_factor) * eps / int(acfg.num_steps),
                  num_steps=int(acfg.num_steps), radius=radius,
                  num_samples=int(acfg.num_samples), bounds=test.bounds,
                  targeted=kind == "targeted", vote_samples=int(config.region.num_samples),
                  batch_size=int(acfg.batch_size))
      d = protocol.noise(x, np.asarray(r.adversarial), "linf") / span
      out[kind][f"{fraction:g}"] = protocol.rates(np.asarray(r.success), d)
      io.write_json(path, {"settings": stamp, "result": out[kind][f"{fraction:g}"]})
      logging.info("EOT-PGD %s, epsilon %g: success %.3f", kind, fraction,
                   out[kind][f"{fraction:g}"]["success_rate"])
  if settings.Adaptive.of(acfg).autoattack:
    out["autoattack_rand"] = _autoattack_rand(config, workdir, test, chosen, fns[point], radius,
                                              base, key)
  return out


def noisy_fn(point_fn, radius: float, bounds):
  """The region classifier's randomness as a stochastic classifier: `fn(x [B, *S], key) ->
  point_fn(clip(x + u))`, u uniform in the cube of half-width `radius` (one draw)."""
  low, high = bounds
  # a Partial: the point classifier's weights stay arguments of the jitted attacks
  return jax.tree_util.Partial(_noisy, point_fn, float(radius), float(low), float(high))


def _noisy(point_fn, radius, low, high, x, key):
  u = jax.random.uniform(key, x.shape, x.dtype, -radius, radius)
  return point_fn(jax.numpy.clip(x + u, low, high))


def _autoattack_rand(config, workdir, test, chosen, point_fn, radius, base, key) -> dict:
  """{epsilon: rates} of AutoAttack-rand, untargeted, judged by the region classifier."""
  acfg, out = config.adaptive, {}
  span = float(test.bounds[1] - test.bounds[0])
  fn = noisy_fn(point_fn, radius, test.bounds)
  vote_key = jax.random.fold_in(key, 1_000_001)

  def judge(v):
    labels, _ = region.classify(point_fn, vote_key, v, radius=radius,
                                num_samples=int(config.region.num_samples), bounds=test.bounds)
    return np.asarray(labels)

  for i, fraction in enumerate(acfg.epsilons):
    eps = float(fraction) * span
    path = os.path.join(workdir, "adaptive", f"autoattack_rand_{fraction:g}.json")
    stamp = json.dumps({**base, "epsilon": float(fraction), "kind": "autoattack_rand"},
                       sort_keys=True, default=str)
    cached = io.read_json_if_current(path, stamp)
    if cached is not None:
      out[f"{fraction:g}"] = cached["result"]
      continue
    x, y, _ = attacks_lib.evaluated(chosen, test, targeted=False)
    r = autoattack(fn, jax.random.fold_in(key, 1_000 + i), x, y, norm="linf",
                              epsilon=eps, bounds=test.bounds, version="rand", stochastic=True,
                              judge_fn=judge, batch_size=int(acfg.batch_size))
    d = protocol.noise(x, r.adversarial, "linf") / span
    out[f"{fraction:g}"] = {**protocol.rates(~r.robust, d), "autoattack": r.summary()}
    io.write_json(path, {"settings": stamp, "result": out[f"{fraction:g}"]})
    logging.info("AutoAttack-rand, epsilon %g: success %.3f", fraction,
                 out[f"{fraction:g}"]["success_rate"])
  return out
