"""Callbacks that train the visual tokenizers, once per optimizer step (never on a gradient-accumulation
micro-step), with their values added to the log lines by `MaskVisionTrainer` through ``log_values()``.

- `RelaxationScheduleCallback`: DALL-E's schedules (Ramesh et al. 2021, appendix A.2) for the dVAE: Gumbel-softmax
  temperature annealed from 1 to 1/16 and KL weight ramped from 0 to 6.6, both on cosine curves. The values depend
  only on ``state.global_step``, so a resumed run continues them exactly.
- `CodebookCallback`: applies each step's code statistics to the codebook (VQ-KD's EMA and k-means
  initialisation), logs codebook health over the logging interval, and can re-seed dead codes (codes unused for
  ``reseed_interval`` steps) from the encoder's outputs, the random restarts of Dhariwal et al. 2020 (Jukebox).
"""

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ...modeling.momentum import cosine_schedule
from ...modeling.tokenizer_utils import codebook_health
from ..loop.callbacks import unwrap_model, step_skipped


def resolve_steps(value: float, max_steps: int, name: str) -> int:
    """A step count given as a number of steps (>= 1) or as a fraction of the run (< 1)."""
    if value < 0:
        raise ValueError(f"{name} must be >= 0 (steps, or a fraction of the run if < 1), got {value}.")
    return int(value) if value >= 1 else round(value * max_steps)


@torch.no_grad()
def copy_optimizer_state(optimizer, copies: list[tuple]) -> None:
    """Mirror parameter slice copies ``(parameter, dim, targets, sources)`` in the optimizer's per-parameter state
    (Adam's moments, SGD's momentum): every state tensor shaped like its parameter gets the same copy."""
    for parameter, dim, targets, sources in copies:
        for value in optimizer.state.get(parameter, {}).values():
            if torch.is_tensor(value) and value.shape == parameter.shape:
                value.index_copy_(dim, targets.to(value.device), value.index_select(dim, sources.to(value.device)))


class RelaxationScheduleCallback(TrainerCallback):
    """Sets the dVAE's ``temperature`` and ``kl_weight`` before every optimizer step.

    The temperature follows a cosine from ``temperature_start`` to ``temperature_end`` over the first
    ``temperature_steps`` steps and the KL weight a cosine from 0 to ``kl_weight`` over ``kl_warmup_steps``; both
    then stay at their final value. Steps below 1 are fractions of the run (``state.max_steps``). DALL-E's own
    run: 150,000 and 5,000 steps of 3M (with the learning rate annealed over the first 1.2M).
    """

    def __init__(
        self,
        temperature_start: float = 1.0,
        temperature_end: float = 1.0 / 16,
        temperature_steps: float = 0.125,
        kl_weight: float = 6.6,
        kl_warmup_steps: float = 0.05,
    ):
        if not 0 < temperature_end <= temperature_start:
            raise ValueError(
                f"Temperatures must satisfy 0 < temperature_end ({temperature_end}) <= temperature_start "
                f"({temperature_start})."
            )
        if kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight}.")
        resolve_steps(temperature_steps, 1, "temperature_steps")
        resolve_steps(kl_warmup_steps, 1, "kl_warmup_steps")
        self.temperature_start, self.temperature_end = temperature_start, temperature_end
        self.temperature_steps, self.kl_weight_end, self.kl_warmup_steps = temperature_steps, kl_weight, kl_warmup_steps
        self.temperature, self.kl_weight = temperature_start, 0.0

    def values_at(self, step: int, max_steps: int) -> tuple[float, float]:
        """(temperature, KL weight) used by optimizer step ``step`` (0-based) of a run of ``max_steps``."""
        temperature_steps = resolve_steps(self.temperature_steps, max_steps, "temperature_steps")
        kl_steps = resolve_steps(self.kl_warmup_steps, max_steps, "kl_warmup_steps")
        temperature = cosine_schedule(step, temperature_steps, self.temperature_start, self.temperature_end)
        return temperature, cosine_schedule(step, kl_steps, 0.0, self.kl_weight_end)

    def _apply(self, state, model) -> None:
        self.temperature, self.kl_weight = self.values_at(state.global_step, state.max_steps)
        model = unwrap_model(model)
        model.temperature, model.kl_weight = self.temperature, self.kl_weight

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._apply(state, model)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self._apply(state, model)  # global_step = optimizer steps done = index of the step about to run

    def log_values(self) -> dict[str, float]:
        return {"temperature": round(self.temperature, 6), "kl_weight": round(self.kl_weight, 6)}


class CodebookCallback(TrainerCallback, ExportableState):
    """After every optimizer step: the model's `update_codebook` with the step's statistics (summed over
    processes), codebook health over the logging interval, and, with ``reseed_interval``, dead codes re-seeded
    (with the optimizer state of the parameters they copy).

    Codes are re-seeded every ``reseed_interval`` steps except during the last interval of the run, so that every
    re-seeded code is trained before the run ends.

    Logged: ``codebook_perplexity``, ``codebook_used_fraction`` and ``dead_codes`` (codes unused during the
    logging interval; with small intervals and large vocabularies rare codes count as dead), and the running total
    of ``reseeded_codes``.

    The re-seeding window is checkpointed (``state()``, in trainer_state.json; restored with
    ``restore_callback_states_from_checkpoint``): a resumed run re-seeds the same codes at the same steps.
    """

    def __init__(self, reseed_interval: int = 0):
        if reseed_interval < 0:
            raise ValueError(f"reseed_interval must be >= 0 (0 disables re-seeding), got {reseed_interval}.")
        self.reseed_interval = reseed_interval
        self.reseeded_codes = 0
        self._interval_counts: torch.Tensor | None = None
        self._window_counts: torch.Tensor | None = None
        self._window_steps = 0

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        model = unwrap_model(model)
        step = model.codebook_recorder.pop()
        if step is None or step_skipped(state):
            return
        model.update_codebook(step)
        counts = step.counts
        self._interval_counts = counts.clone() if self._interval_counts is None else self._interval_counts + counts
        if not self.reseed_interval:
            return
        self._window_counts = counts.clone() if self._window_counts is None else self._window_counts.to(counts) + counts
        self._window_steps += 1
        # Re-seeded codes need a full interval of training: none in the last one (nor at the final step).
        if self._window_steps >= self.reseed_interval and state.global_step + self.reseed_interval <= state.max_steps:
            dead = (self._window_counts == 0).nonzero().flatten()
            # Every process draws the same codes and samples: the generator depends on the step only.
            generator = torch.Generator().manual_seed(args.seed * 1_000_003 + state.global_step)
            copies = model.reseed_codes(dead, step.all_samples(), generator)
            if optimizer is not None:
                copy_optimizer_state(optimizer, copies)
            self.reseeded_codes += dead.numel()
            self._window_counts, self._window_steps = None, 0

    def state(self) -> dict:
        return {
            "args": {"reseed_interval": self.reseed_interval},
            "attributes": {"reseeded_codes": self.reseeded_codes, "window_steps": self._window_steps,
                           "window_counts": None if self._window_counts is None else self._window_counts.tolist()},
        }

    @property
    def window_steps(self) -> int:
        return self._window_steps

    @window_steps.setter
    def window_steps(self, value: int) -> None:
        self._window_steps = int(value)

    @property
    def window_counts(self) -> list | None:
        return None if self._window_counts is None else self._window_counts.tolist()

    @window_counts.setter
    def window_counts(self, value) -> None:
        self._window_counts = None if value is None else torch.tensor(value)

    def log_values(self) -> dict[str, float]:
        if self._interval_counts is None:
            return {}
        health = codebook_health(self._interval_counts)
        self._interval_counts = None
        values = {f"codebook_{key}" if key != "dead_codes" else key: value for key, value in health.items()}
        if self.reseed_interval:
            values["reseeded_codes"] = self.reseeded_codes
        return values
