"""Trainer callbacks that drive the methods' schedules from the optimizer step.

Values that depend only on ``state.global_step`` are restored for free on resume. A callback with a
``log_values()`` method has its values added to every log line by `MaskVisionTrainer`.
"""

from transformers import TrainerCallback

from ...modeling.momentum import cosine_schedule


def step_skipped(state) -> bool:
    """True when `MaskVisionTrainer` skipped the optimizer step that just ended (a non-finite loss under
    ``nan_policy="skip"``): callbacks that update state after a step (teachers, codebooks) then do nothing."""
    return getattr(state, "step_skipped", False)


def unwrap_model(model):
    """The model inside its wrappers: Trainer hands callbacks `self.model`, and a wrapper (DDP, torch.compile) keeps
    the real model in ``.module`` or ``._orig_mod``."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


class CollatorEpochCallback(TrainerCallback):
    """Tells the collator the epoch before each one starts (``collator.set_epoch``), so that every epoch draws new
    views and masks and a resumed run draws the same ones (`collators.generator_for`). `MaskVisionTrainer` adds it
    for collators that have ``set_epoch``."""

    def __init__(self, collator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch: epochs done, with the fraction of the current one when resuming mid-epoch.
        self.collator.set_epoch(int(state.epoch or 0))


class MomentumTeacherCallback(TrainerCallback):
    """Updates the model's EMA teachers once per optimizer step, never on a gradient-accumulation micro-step.

    Momentum follows BYOL's cosine schedule from ``base_momentum`` (first step) to ``final_momentum`` (last
    step). The model must implement ``update_teacher(momentum)`` (see `MomentumTeacherMixin`).
    """

    def __init__(self, base_momentum: float, final_momentum: float = 1.0):
        if not 0.0 <= base_momentum <= final_momentum <= 1.0:
            raise ValueError(
                f"Momentum must satisfy 0 <= base_momentum ({base_momentum}) <= final_momentum ({final_momentum}) <= 1."
            )
        self.base_momentum = base_momentum
        self.final_momentum = final_momentum
        self.momentum = base_momentum

    def momentum_at(self, step: int, max_steps: int) -> float:
        return cosine_schedule(step, max_steps, self.base_momentum, self.final_momentum)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if step_skipped(state):
            unwrap_model(model).discard_step()
            return
        # global_step was just incremented: the update after the k-th optimizer step uses schedule step k - 1.
        self.momentum = self.momentum_at(state.global_step - 1, state.max_steps)
        unwrap_model(model).update_teacher(self.momentum)

    def log_values(self) -> dict[str, float]:
        return {"momentum": self.momentum}
