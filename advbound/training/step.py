"""One training step: the model a run trains, its TrainState, and the jit-once step function.

`make_train_step` returns `step(state, batch, key) -> (state, metrics)` for natural and PGD
adversarial training, distillation (soft labels), label smoothing and mixed precision; batch:
{"image": float32 [B, *image_shape], "label": int32 [B]} (and "soft": float32 [B, K]). The loop
around it (batches, checkpoints, resume) is `advbound.training.loop`.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from advbound import models
from advbound.attacks.pgd import pgd
from advbound.training.augmentation import augment
from advbound.training.settings import Train


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs. `rest` holds non-parameter variables (batch statistics)."""

  step: jax.Array  # int32 []
  params: nnx.State
  rest: nnx.State
  opt_state: optax.OptState


def _model_kwargs(model_cfg) -> dict[str, Any]:
  kwargs = dict(model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else model_cfg)
  return {k: v for k, v in kwargs.items() if k != "name"}


def build_model(model_cfg, seed: int) -> nnx.Module:
  """The model named by `model_cfg.name` with its other fields as arguments, initialised by seed."""
  return models.build(model_cfg.name, rngs=nnx.Rngs(seed), **_model_kwargs(model_cfg))


def init_state(model: nnx.Module, tx: optax.GradientTransformation) -> TrainState:
  """A step-0 TrainState of `model`'s current parameters and batch statistics, with `tx`'s
  initial optimizer state."""
  _, params, rest = nnx.split(model, nnx.Param, ...)
  return TrainState(jnp.zeros((), jnp.int32), params, rest, tx.init(params))


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, cfg,
                    bounds: tuple[float, float]) -> Callable:
  """Returns the jitted `step(state, batch, key) -> (state, metrics)`.

  batch: {"image": float32 [B, *image_shape], "label": int32 [B]}, and "soft": float32 [B, K]
  soft labels when distilling (the loss is then the cross-entropy with them). The loss is taken
  on logits / cfg.temperature (default 1; defensive distillation trains teacher and student at
  T and deploys the student at 1: `as_logits_fn` returns the raw logits). With cfg.adversarial the
  loss is taken on PGD examples (cfg.attack: epsilon, step_size, num_steps, random_start, and
  epsilon_warmup_fraction, a linear ramp of epsilon from 0 over that fraction of the run), made
  with the current weights and batch statistics of the batch (not written back), as in Madry
  et al.'s code. attack.labels "predicted" (default "true") makes the examples against the
  model's own predictions instead of the true labels ("label leaking" avoided, Kurakin et al.);
  the loss is still taken on the true labels. cfg.label_smoothing (default 0) smooths the
  integer labels' one-hot targets; cfg.cutout (default 0) adds cutout to the augmentation.
  `graphdef` fixes the compute dtype: one from `models.with_compute_dtype` trains the float32
  parameters in bfloat16 (the attack of adversarial training too); the loss is float32.
  metrics: loss and accuracy on the examples trained on (float32 []).
  """
  tcfg = Train.of(cfg)  # the optional settings' declared defaults filled
  attack = tcfg.attack
  temperature = float(tcfg.temperature)
  smoothing = float(tcfg.label_smoothing)

  def step(state: TrainState, batch, key):
    k_aug, k_attack = jax.random.split(key)
    x = augment(k_aug, batch["image"], cfg.augment, tcfg.cutout)
    y = batch["label"]
    if cfg.adversarial:
      def attack_logits(z):
        return nnx.merge(graphdef, state.params, state.rest, copy=True)(z).astype(jnp.float32)
      epsilon = attack.epsilon
      if attack.epsilon_warmup_fraction > 0:
        ramp = (state.step + 1) / (attack.epsilon_warmup_fraction * cfg.num_steps)
        epsilon = attack.epsilon * jnp.minimum(1.0, ramp.astype(jnp.float32))
      y_attack = y
      if attack.labels == "predicted":
        y_attack = jnp.argmax(jax.lax.stop_gradient(attack_logits(x)), axis=-1)
      x = jax.lax.stop_gradient(pgd(
          attack_logits, k_attack, x, y_attack, epsilon=epsilon, step_size=attack.step_size,
          num_steps=attack.num_steps, bounds=bounds, random_start=attack.random_start))

    def loss_fn(params, rest):
      model = nnx.merge(graphdef, params, rest, copy=True)
      logits = model(x).astype(jnp.float32)  # bfloat16 under mixed precision
      scaled = logits / temperature
      if "soft" in batch:
        loss = optax.softmax_cross_entropy(scaled, batch["soft"]).mean()
      elif smoothing:
        targets = optax.smooth_labels(jax.nn.one_hot(y, logits.shape[-1]), smoothing)
        loss = optax.softmax_cross_entropy(scaled, targets).mean()
      else:
        loss = optax.softmax_cross_entropy_with_integer_labels(scaled, y).mean()
      return loss, (logits, nnx.state(model, nnx.Not(nnx.Param)))

    (loss, (logits, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.rest)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}
    return TrainState(state.step + 1, params, rest, opt_state), metrics

  # One compilation per run: a retrace (changed shapes or dtypes) is a bug, so it fails loudly.
  # (chex.assert_max_traces keys on the definition site, so it would count every run of this
  # factory together; this counter belongs to one returned step function.)
  traces = 0

  def traced_once(*args):
    nonlocal traces
    traces += 1
    if traces > 1:
      raise AssertionError("the train step was traced > 1 times: batch shapes or dtypes changed "
                           "between steps")
    return step(*args)

  return jax.jit(traced_once, donate_argnums=0)
