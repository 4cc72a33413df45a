"""Validates a blind-spot config before anything runs: every problem at once, as one
`config_check.ConfigError` (data, model and model variants as the other studies check them,
then this study's sections)."""

from __future__ import annotations

from advbound import config_check
from advbound.config_check import Checker, ConfigError

SECTIONS = ("data", "model", "models", "study", "distance", "divergence", "attack", "figures",
            "note")
REQUIRED = SECTIONS[:-1]
STARTS = ("noise", "grey")
INITS = ("random", "pca")  # split_divergence.INITS (kept here: validation imports no sklearn)
CW_KEYS = ("max_iterations", "learning_rate", "initial_const", "largest_const", "const_factor",
           "decrease_factor", "reduce_const", "abort_early")

__all__ = ["ConfigError", "validate"]


def validate(config, *, sizes: dict[str, int] | None = None) -> None:
  """Raises ConfigError listing every problem of a blind-spot config."""
  c = Checker()
  top = c.keys("config", config, SECTIONS, required=REQUIRED)
  info, sizes, variants = config_check.check_trained(c, top, sizes)
  study = _check_study(c, top.get("study"), variants, sizes, info.get("span"))
  _check_distance(c, top.get("distance"))
  _check_divergence(c, top.get("divergence"), variants, info.get("num_classes"),
                    sizes.get("train"), study.get("test_images") or sizes.get("test"))
  _check_attack(c, top.get("attack"), study.get("test_images") or sizes.get("test"))
  _check_figures(c, top.get("figures"), study.get("alphas"))
  if c.problems:
    raise ConfigError(c.problems)


def _check_study(c, cfg, variants, sizes, span) -> dict:
  if cfg is None:
    return {}
  keys = ("attacked", "extractors", "epsilon", "alphas", "batch_size", "test_images")
  s = c.keys("study", cfg, keys, required=keys)
  c.choice("study.attacked", s.get("attacked"), variants)
  c.names("study.extractors", s.get("extractors"), variants, what="model variant",
          among="models")
  c.number("study.epsilon", s.get("epsilon"), lo=0, lo_open=True,
           hi=span if span is not None else None)
  alphas = s.get("alphas")
  if (not isinstance(alphas, (tuple, list)) or not alphas
      or any(isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a <= 1
             for a in alphas)):
    c.fail("study.alphas", f"must be a non-empty tuple of scale factors in (0, 1], got "
           f"{alphas!r}")
  elif float(alphas[0]) != 1.0:
    c.fail("study.alphas", f"must start with 1.0 (the untransformed test set that Table 1, "
           f"Figures 1-3 and Figure 5 compare against), got {tuple(alphas)}")
  elif len(set(alphas)) != len(alphas):
    c.fail("study.alphas", f"names a scale factor twice: {tuple(alphas)}")
  c.count("study.batch_size", s.get("batch_size"))
  ok = c.count("study.test_images", s.get("test_images"), sizes.get("test"), "the test split",
               optional=True)
  test_images = s.get("test_images") if ok else None
  return dict(test_images=test_images, alphas=alphas)


def _check_distance(c, cfg) -> None:
  if cfg is None:
    return
  keys = ("k", "query_chunk", "reference_block", "bins")
  d = c.keys("distance", cfg, keys, required=keys)
  for k in keys:
    c.count(f"distance.{k}", d.get(k))


def _check_divergence(c, cfg, variants, num_classes, train_size, test_size) -> None:
  """Equal per-class counts: each count times the classes must fit its split (the study's test
  images for the test count); a class short of its count is caught when the data is read."""
  if cfg is None:
    return
  keys = ("model", "train_per_class", "test_per_class", "perplexity", "max_iter", "init", "grid",
          "seed", "seeds", "resamples")
  d = c.keys("divergence", cfg, keys, required=keys)
  c.choice("divergence.model", d.get("model"), variants)
  for key, size, split in (("train_per_class", train_size, "the training split"),
                           ("test_per_class", test_size, "the study's test images")):
    value = d.get(key)
    if not c.number(f"divergence.{key}", value, lo=3, integer=True):
      continue
    if num_classes and size and value * num_classes > size:
      c.fail(f"divergence.{key}", f"{value} per class x {num_classes} classes exceeds the "
             f"{size} images of {split}")
  c.number("divergence.perplexity", d.get("perplexity"), lo=1)
  c.number("divergence.max_iter", d.get("max_iter"), lo=250, integer=True)  # sklearn's minimum
  c.choice("divergence.init", d.get("init"), INITS)
  c.number("divergence.grid", d.get("grid"), lo=2, integer=True)
  c.number("divergence.seed", d.get("seed"), lo=0, integer=True)
  c.count("divergence.seeds", d.get("seeds"))
  c.number("divergence.resamples", d.get("resamples"), lo=10, integer=True)


def _check_attack(c, cfg, test_images) -> None:
  if cfg is None:
    return
  keys = ("num_images", "starts", "noise_std", "seed", "batch_size", "stop_at_threshold", "cw")
  a = c.keys("attack", cfg, keys, required=keys)
  c.count("attack.num_images", a.get("num_images"), test_images,
          "the test images of the study (study.test_images)")
  c.names("attack.starts", a.get("starts"), STARTS, what="start")
  c.number("attack.noise_std", a.get("noise_std"), lo=0)
  c.number("attack.seed", a.get("seed"), lo=0, integer=True)
  c.count("attack.batch_size", a.get("batch_size"))
  c.flag("attack.stop_at_threshold", a.get("stop_at_threshold"))
  cw = c.keys("attack.cw", a.get("cw"), CW_KEYS)
  c.count("attack.cw.max_iterations", cw.get("max_iterations"), optional=True)
  for k in ("learning_rate", "initial_const", "largest_const"):
    c.number(f"attack.cw.{k}", cw.get(k), lo=0, lo_open=True, optional=True)
  c.number("attack.cw.const_factor", cw.get("const_factor"), lo=1, lo_open=True, optional=True)
  c.number("attack.cw.decrease_factor", cw.get("decrease_factor"), lo=0, hi=1, lo_open=True,
           hi_open=True, optional=True)
  for k in ("reduce_const", "abort_early"):
    if k in cw:
      c.flag(f"attack.cw.{k}", cw[k])
  if (isinstance(cw.get("initial_const"), (int, float))
      and isinstance(cw.get("largest_const"), (int, float))
      and cw["initial_const"] >= cw["largest_const"]):
    c.fail("attack.cw.initial_const", f"must be below attack.cw.largest_const "
           f"({cw['largest_const']}), got {cw['initial_const']!r}")


def _check_figures(c, cfg, alphas) -> None:
  if cfg is None:
    return
  keys = ("histogram_pair", "examples", "histogram_bins")
  f = c.keys("figures", cfg, keys, required=keys)
  pair = f.get("histogram_pair")
  if pair is None:  # no Figure 5 (a grid without transformed pairs)
    pass
  elif (not isinstance(pair, (tuple, list)) or len(pair) != 2
      or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in pair)):
    c.fail("figures.histogram_pair", f"must be (alpha, beta), got {pair!r}")
  elif isinstance(alphas, (tuple, list)) and all(isinstance(a, (int, float)) for a in alphas):
    from advbound.analysis import scale_shift  # pylint: disable=g-import-not-at-top
    grid = [tuple(map(float, p)) for p in scale_shift.grid(alphas)]
    if tuple(map(float, pair)) not in grid[1:]:
      c.fail("figures.histogram_pair", f"must be a transformed pair of the grid {grid[1:]}, "
             f"got {tuple(pair)}")
  c.count("figures.examples", f.get("examples"))
  c.count("figures.histogram_bins", f.get("histogram_bins"))
