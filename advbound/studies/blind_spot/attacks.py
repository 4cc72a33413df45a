"""Stage "attacks": Carlini & Wagner's L-inf attack (advbound.attacks.cw_linf, untargeted) on the
attacked model, for every (alpha, beta) of the grid, on attack.num_images of the study's test
images (a seeded draw, the same at every pair: `chosen`) after the transformation, from each
start (protocol.start). Only images the model still classifies correctly after the
transformation are attacked.

Per pair, DIR/attacks/<pair key>.npz holds
  chosen int32 [N]         test indices of the drawn images (ascending)
  correct bool [N]         which of them the model classifies correctly after the transform
  index int32 [n]          test indices of the attacked ones: chosen[correct]
  found_<start> bool [n], linf_<start> float32 [n]   each start's outcome (L-inf from the
                           transformed image; inf where it found nothing)
  best float32 [n]         the smallest distortion over the starts (inf: none)
  adversarial float32 [n, ...]  the example of that distortion (the input where none)
computed in resumable parts of attack.batch_size images.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
from absl import logging

from advbound import models
from advbound.analysis import evaluate, scale_shift
from advbound.attacks import cw_linf
from advbound.runtime import io, probe
from advbound.studies.blind_spot import distances, paper, protocol, settings


def path(workdir: str, alpha: float, beta: float) -> str:
  return os.path.join(workdir, "attacks", paper.pair_key(alpha, beta) + ".npz")


def run(config, workdir: str, *, data: dict, trained: dict, stamps: dict) -> dict:
  """Returns {pair key: {"alpha", "beta", "images", "attempts", "found": {start: count}}}."""
  cfg, study = config.attack, config.study
  test = distances.test_split(config, data["test"])
  n = int(cfg.num_images)
  if n > len(test):
    raise ValueError(f"attack.num_images = {n} exceeds the {len(test)} test images")
  fn = models.as_logits_fn(trained[study.attacked])
  chosen = choose(len(test), n, int(cfg.seed))
  x, y = test.images[chosen], test.labels[chosen]
  out = {}
  for alpha, beta in protocol.pairs(study.alphas):
    key = paper.pair_key(alpha, beta)
    xt = np.asarray(scale_shift.scale_shift(x, alpha, beta, bounds=test.bounds))
    correct = evaluate.predict(fn, xt, batch_size=int(study.batch_size)) == y
    if probe.active():  # --estimate's barely trained model: attack every image, as a trained one
      correct[:] = True
    rows_ok = np.flatnonzero(correct)
    index = chosen[rows_ok]
    stop = alpha * float(study.epsilon) if cfg.stop_at_threshold else None
    stamp = json.dumps(dict(attack=cfg.to_dict(), epsilon=study.epsilon, pair=[alpha, beta],
                            test_images=study.test_images, model=stamps[study.attacked]),
                       sort_keys=True, default=str)
    target = path(workdir, alpha, beta)
    arrays = io.read_npz_if_current(target, stamp)
    if arrays is None:
      logging.info("attack at %s: %d of %d images classified correctly", key, index.size, n)
      cw = dataclasses.asdict(settings.CW.of(cfg.cw))  # the attack's defaults where unset
      starts = {s: protocol.start(s, xt, bounds=test.bounds, noise_std=float(cfg.noise_std),
                                  seed=int(cfg.seed))
                for s in cfg.starts}

      def compute(lo, hi):
        rows = rows_ok[lo:hi]
        part = {}
        for s in cfg.starts:
          r = cw_linf.carlini_wagner_linf(fn, xt[rows], y[rows], bounds=test.bounds,
                                          start=starts[s][rows], stop_below=stop,
                                          batch_size=hi - lo, **cw)
          found = np.asarray(r.success)
          part[f"found_{s}"] = found
          part[f"linf_{s}"] = np.where(found, np.asarray(r.distortion["linf"]),
                                       np.inf).astype(np.float32)
          part[f"adv_{s}"] = np.asarray(r.adversarial, np.float32)
        return part

      def finish(rows):
        linf = np.stack([rows[f"linf_{s}"] for s in cfg.starts])
        found = np.stack([rows[f"found_{s}"] for s in cfg.starts])
        best = protocol.best_of_starts(found, linf)
        which = np.argmin(np.where(found, linf, np.inf), axis=0)
        adv = np.stack([rows[f"adv_{s}"] for s in cfg.starts])[which, np.arange(len(which))]
        adv = np.where(np.isfinite(best).reshape((-1,) + (1,) * (adv.ndim - 1)), adv,
                       xt[rows_ok])
        keep = {k: v for k, v in rows.items() if not k.startswith("adv_")}
        return dict(keep, chosen=chosen, index=index, correct=correct, best=best,
                    adversarial=adv.astype(np.float32))

      if index.size:
        arrays = io.compute_npz_in_parts(target, stamp, int(index.size), int(cfg.batch_size),
                                         compute, finish=finish)
      else:  # nothing to attack: an artifact with empty rows
        empty = {f"found_{s}": np.zeros(0, bool) for s in cfg.starts}
        empty.update({f"linf_{s}": np.zeros(0, np.float32) for s in cfg.starts})
        arrays = dict(empty, chosen=chosen, index=index, correct=correct,
                      best=np.zeros(0, np.float32),
                      adversarial=np.zeros((0,) + x.shape[1:], np.float32))
        with io.atomic_path(target) as tmp:
          np.savez(tmp, settings=np.asarray(stamp), **arrays)
    out[key] = dict(alpha=alpha, beta=beta, images=n, attempts=int(arrays["index"].size),
                    found={s: int(np.sum(arrays[f"found_{s}"])) for s in cfg.starts})
    logging.info("attack at %s: %s", key, out[key])
  return out


def choose(num_test: int, n: int, seed: int) -> np.ndarray:
  """int32 [n]: a seeded draw of n of the test indices, ascending (the first n would be one
  class on data stored sorted by class, as the embedded MNIST-5k is)."""
  return np.sort(np.random.default_rng(seed).permutation(num_test)[:n]).astype(np.int32)


def load(workdir: str, alpha: float, beta: float) -> dict:
  with np.load(path(workdir, alpha, beta)) as f:
    return {k: f[k] for k in f.files if k != "settings"}
