"""The result type shared by the attacks."""

from __future__ import annotations

import flax
import jax

from advbound import metrics


@flax.struct.dataclass
class AttackResult:
  """Adversarial examples of one attack on a batch.

  Attributes:
    adversarial: float32 [N, *image_shape]; the input itself where the attack failed.
    success: bool [N].
    distortion: {"rms", "l2", "linf", "l0"} of adversarial - input, each float32 [N]
      (0 where the attack failed).
  """

  adversarial: jax.Array
  success: jax.Array
  distortion: dict


def make_result(x, adversarial, success) -> AttackResult:
  """AttackResult with failed rows reset to x and the distortions computed."""
  adversarial = jax.numpy.where(success.reshape((-1,) + (1,) * (x.ndim - 1)), adversarial, x)
  return AttackResult(adversarial=adversarial, success=success,
                      distortion=metrics.distortions(x, adversarial))
