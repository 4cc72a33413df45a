"""Training, in layers (each built on the ones above it):

- `optimizers`: learning-rate schedules and the optax optimizer (`make_schedule`,
  `make_optimizer`).
- `augmentation`: data augmentation of an image batch x [N, H, W, C] inside the step (`augment`).
- `step`: the model a run trains and its state (`build_model`, `TrainState`, `init_state`) and
  the jit-once step `make_train_step` (natural, PGD adversarial, distillation).
- `loop`: `train` (batches, orbax checkpoints, resume, snapshots, the overfitting guard),
  `load_model`, `load_snapshot`, `snapshot_steps` and the epoch (`steps_per_epoch`,
  `batch_indices`).
- `guard`: the catastrophic-overfitting guard that `train` checks during a run.

Which variants a study trains and how they depend on each other is study-level orchestration:
`advbound.studies.variants`.
"""

from advbound.training.augmentation import augment
from advbound.training.loop import (batch_indices, hms, load_model, load_snapshot, snapshot_steps,
                                    steps_per_epoch, train)
from advbound.training.optimizers import make_optimizer, make_schedule
from advbound.training.step import TrainState, build_model, init_state, make_train_step

__all__ = ["TrainState", "augment", "batch_indices", "build_model", "hms", "init_state",
           "load_model", "load_snapshot", "make_optimizer", "make_schedule", "make_train_step",
           "snapshot_steps", "steps_per_epoch", "train"]
