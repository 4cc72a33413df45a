"""The probe behind `--estimate`: a study's stages run for real, at the config's true shapes, but
every long loop is cut short and its remainder projected from timed warm iterations.

Outside a probe (`active()` False) the two helpers below are plain ranges and cost nothing. The
loops that make a stage long are written with them:

- `steps(n, name)`: iterations of one state (training steps, an attack's iterations, restarts,
  binary-search steps). A probe runs the first `1 + WARM` and the last; the first compiles, the
  `WARM` after it are timed, and the skipped ones are projected at their mean time.
- `chunks(n, name)` + `filled`: independent pieces of a batch (map_chunks' chunks, boundary
  probes' batches, region votes' chunks). A probe runs the first, the second and, when its rows
  differ from the others', the last; the second is timed, the skipped ones are projected at its time, and their outputs are copies of
  the second's (the same shape), so the code after the loop runs unchanged.

The projection nests: an iteration's or a chunk's time includes what the loops inside it
projected. Compile time met while timing (a new shape, a new kernel) is taken out of the time
per unit (jax.monitoring's compile events). A loop that can stop early (`bound=True`: an attack
that ends when every example is broken, a search that ends at its first success) is projected
to its full length, an upper bound; such a loop is not stopped early inside a probe
(`stops_early()` is False), so the probe times its true kernels on every stage after it too.

Every probed loop is recorded (`Probe.loops`): its name, its length, the units it ran, the time
per unit and the projected seconds of the units it skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any, Iterator

import jax

# warm units timed per loop after the first (cold) one
WARM = 3

_COMPILE_EVENTS = ("/jax/core/compile/backend_compile_duration",
                   "/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration")


@dataclasses.dataclass
class Loop:
  """One probed loop: `units` in all, `ran` of them run, `per_unit` seconds each (warm, inner
  projections included), `projected` seconds for the skipped ones; `bound`: an upper bound."""
  name: str
  units: int
  ran: int
  per_unit: float | None
  projected: float
  bound: bool


@dataclasses.dataclass
class Probe:
  """The state of a probe run: the seconds projected for skipped units so far (`extra`), the
  compile seconds seen (`compile`), and the loops probed (`loops`)."""
  extra: float = 0.0
  compile: float = 0.0
  loops: list[Loop] = dataclasses.field(default_factory=list)

  def _on_event(self, event: str, duration: float, **_) -> None:
    if event in _COMPILE_EVENTS:
      self.compile += duration


_ACTIVE: Probe | None = None


def active() -> bool:
  """Whether a probe is running (the loops are cut short and projected)."""
  return _ACTIVE is not None


def stops_early() -> bool:
  """Whether a loop may stop before its bound (False inside a probe: it times the whole)."""
  return _ACTIVE is None


@contextlib.contextmanager
def probing() -> Iterator[Probe]:
  """Runs the block as a probe; yields the `Probe` that collects its projections."""
  global _ACTIVE
  if _ACTIVE is not None:
    raise RuntimeError("a probe is already running")
  probe = Probe()
  jax.monitoring.register_event_duration_secs_listener(probe._on_event)  # pylint: disable=protected-access
  _ACTIVE = probe
  try:
    yield probe
  finally:
    _ACTIVE = None
    jax.monitoring.unregister_event_duration_listener(probe._on_event)  # pylint: disable=protected-access


def _sync() -> None:
  """Waits for every computation dispatched so far (timing needs finished work)."""
  jax.block_until_ready(jax.live_arrays())


class _Clock:
  """Wall time of a stretch of a probe, less the compile time met, plus the projections made
  inside it."""

  def __init__(self, probe: Probe):
    self.probe = probe
    _sync()
    self.t, self.extra, self.compile = time.perf_counter(), probe.extra, probe.compile

  def seconds(self) -> float:
    _sync()
    wall = time.perf_counter() - self.t - (self.probe.compile - self.compile)
    return max(wall, 0.0) + (self.probe.extra - self.extra)


def _record(probe: Probe, name: str, n: int, ran: int, per_unit: float | None, bound: bool):
  skipped = n - ran
  projected = skipped * per_unit if per_unit is not None and skipped > 0 else 0.0
  probe.extra += projected
  probe.loops.append(Loop(name, n, ran, per_unit, projected, bound))


def steps(n, name: str, *, bound: bool = False):
  """range(n) (or the range given); inside a probe, its first 1 + WARM items and its last, the
  rest projected (see the module docstring). `bound`: the loop may stop before its end."""
  items = n if isinstance(n, range) else range(int(n))
  probe = _ACTIVE
  if probe is None or len(items) <= WARM + 2:
    return items
  return _probed_steps(probe, items, name, bound)


def _probed_steps(probe: Probe, items: range, name: str, bound: bool):
  ran, per_unit = 0, None
  try:
    yield items[0]
    ran = 1
    clock = _Clock(probe)
    for i in range(1, WARM + 1):
      yield items[i]
      ran += 1
    per_unit = clock.seconds() / WARM
    yield items[-1]
    ran += 1
  finally:
    if ran == WARM + 2:  # the loop ran to its end: project what was skipped
      _record(probe, name, len(items), ran, per_unit, bound)
    else:  # stopped early: what ran is what the real loop would have run (for this state)
      probe.loops.append(Loop(name, len(items), ran, per_unit, 0.0, bound))


def reduced(n: int, name: str, run, *, least: int = 2 * WARM):
  """run(n) for work of n alike units that a library loops over internally (a bootstrap's
  resamples); inside a probe run(k) on k = min(n, least) units, timed with its overhead, and the
  other n - k projected at that time per unit (an overestimate by the overhead / k)."""
  probe = _ACTIVE
  n = int(n)
  if probe is None or n <= least:
    return run(n)
  clock = _Clock(probe)
  out = run(least)
  _record(probe, name, n, least, clock.seconds() / least, False)
  return out


def chunks(n: int, name: str, *, last_differs: bool = True) -> list[int]:
  """The chunk indices to compute, in order: all of range(n); inside a probe, the first, the
  second and, when `last_differs` (its rows or shapes differ from the others'), the last (the
  rest projected when the caller's loop has run them; see `filled`)."""
  probe = _ACTIVE
  ends = 3 if last_differs else 2
  if probe is None or n <= ends:
    return list(range(n))
  return _ProbedChunks(probe, n, name, last_differs)


class _ProbedChunks:
  """Iterates 0, 1 (and n - 1), timing chunk 1; records the projection when exhausted."""

  def __init__(self, probe: Probe, n: int, name: str, last: bool):
    self.probe, self.n, self.name, self.last = probe, n, name, last

  def __iter__(self):
    yield 0
    clock = _Clock(self.probe)
    yield 1
    per_unit = clock.seconds()
    if self.last:
      yield self.n - 1
    _record(self.probe, self.name, self.n, 2 + self.last, per_unit, False)


def each(fn, n: int, name: str, *, last_differs: bool = False) -> list[Any]:
  """[fn(0), ..., fn(n - 1)] for n alike units; inside a probe fn runs on the units `chunks`
  picks and a skipped unit's entry is the warm unit's output (`filled`)."""
  return filled({i: fn(i) for i in chunks(n, name, last_differs=last_differs)}, n)


def filled(outputs: dict[int, Any], n: int) -> list[Any]:
  """The outputs of chunks 0 .. n - 1 from those computed ({index: output}): a chunk a probe
  skipped gets the warm chunk's output (the same shape, chunks between the first and the last
  being full)."""
  if len(outputs) == n:
    return [outputs[i] for i in range(n)]
  return [outputs.get(i, outputs.get(1)) for i in range(n)]
