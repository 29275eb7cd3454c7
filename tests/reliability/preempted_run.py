"""Run the `maskvision` CLI and signal this process during an optimizer step, as a cluster preempting the job would:
``python preempted_run.py STEP SIGNAL ARGS...`` sends SIGNAL (SIGTERM, SIGUSR1...) during the step after ``STEP``
steps are done. Used by the preemption tests."""

import os
import signal
import sys

from maskvision.cli import main
from maskvision.training.loop.trainer import MaskVisionTrainer


def arm(step: int, signum: signal.Signals) -> None:
    training_step = MaskVisionTrainer.training_step

    def signalled_training_step(self, *args, **kwargs):
        if self.state.global_step == step:
            os.kill(os.getpid(), signum)
        return training_step(self, *args, **kwargs)

    MaskVisionTrainer.training_step = signalled_training_step


if __name__ == "__main__":
    arm(int(sys.argv[1]), getattr(signal, sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
