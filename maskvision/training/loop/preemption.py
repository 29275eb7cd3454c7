"""Preemption: a run told to stop finishes its optimizer step, writes a complete checkpoint and stops, so that
``--resume_from_checkpoint last`` continues it.

Clusters and spot instances announce the end of a job with a signal and kill it a little later: SIGTERM (SLURM at the
end of the time limit or on preemption, Kubernetes, cloud spot notices; torchrun forwards it to its workers and waits
30 s) or the signal a SLURM job asks for (``#SBATCH --signal=B:USR1@120``). `PreemptionCallback` catches them
(``--preemption_signals``, default SIGTERM and SIGUSR1) while `MaskVisionTrainer.train` runs; at the end of the
optimizer step under way every process learns whether any of them got one (one all-reduce of a flag per step, so
that all stop at the same step), and the Trainer then saves ``checkpoint-N`` (marked complete once every process has
written it) and stops. The command then exits with ``--preemption_exit_code`` (0; a job script can choose another to
requeue) after a message naming the checkpoint, without exporting the encoder: the run is not finished.
"""

import logging
import signal
import threading

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

PREEMPTION_SIGNALS = ("SIGTERM", "SIGUSR1")


def parse_signals(names) -> list[signal.Signals]:
    """Signal names ("SIGTERM", "USR1", "none") → signals; an unknown name is an error naming the choices."""
    signals = []
    for name in names or ():
        if str(name).lower() == "none":
            continue
        full = str(name).upper() if str(name).upper().startswith("SIG") else f"SIG{str(name).upper()}"
        if full in ("SIGKILL", "SIGSTOP") or not hasattr(signal, full):
            raise ValueError(
                f"--preemption_signals: {name!r} is not a signal a run can catch; give names such as SIGTERM, SIGUSR1, "
                "SIGUSR2, SIGINT, or 'none'."
            )
        signals.append(getattr(signal, full))
    return signals


class PreemptionCallback(TrainerCallback):
    """Stops training after the optimizer step during which a preemption signal arrived, saving a checkpoint.

    ``reduce`` sums a tensor over the processes (`accelerate.Accelerator.reduce`), so that every process stops at
    the same step whichever got the signal. `install` / `uninstall` set and restore the signal handlers (from the
    main thread only: Python delivers signals there)."""

    def __init__(self, signals, reduce=None):
        self.signals = parse_signals(signals)
        self.reduce = reduce
        self.received: str | None = None  # the name of the first signal received
        self.stopped_at: int | None = None  # the optimizer step the run stopped after
        self._previous = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            logger.warning("Not catching preemption signals: training runs outside the main thread.")
            return
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        # Only a flag: the step under way finishes, and the Trainer saves at its end.
        self.received = self.received or signal.Signals(signum).name

    def on_step_end(self, args, state, control, **kwargs):
        if not self.signals:  # nothing caught: nothing to agree on
            return
        stop = self.received is not None
        if args.world_size > 1 and self.reduce is not None:
            stop = self.reduce(torch.tensor([float(stop)], device=args.device)).item() > 0
        if stop:
            self.received = self.received or "a preemption signal (on another process)"
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
            logger.warning("%s received: saving checkpoint-%d and stopping.", self.received, state.global_step)

    def message(self, output_dir: str) -> str:
        return (
            f"Stopped by {self.received} after optimizer step {self.stopped_at}: {output_dir}/checkpoint-"
            f"{self.stopped_at} is complete. Run the same command with --resume_from_checkpoint last to continue."
        )
