"""The training loop: `MaskVisionTrainer` and what runs beside it (callbacks, optimiser groups, checkpoints,
preemption)."""
