"""Run the `maskvision` CLI and SIGKILL this process at a chosen point: ``python killed_run.py STEP WHERE ARGS...``.

WHERE is ``step`` (during the optimizer step after ``STEP`` steps are done) or ``save`` (while checkpoint-STEP is
being written: after its weights, before its optimizer state). Used by the crash-and-resume tests.
"""

import os
import signal
import sys

from transformers import Trainer

from maskvision.cli import main
from maskvision.training.loop.trainer import MaskVisionTrainer


def _kill():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(step: int, where: str) -> None:
    if where == "step":
        training_step = MaskVisionTrainer.training_step

        def killing_training_step(self, *args, **kwargs):
            if self.state.global_step == step:
                _kill()
            return training_step(self, *args, **kwargs)

        MaskVisionTrainer.training_step = killing_training_step
    elif where == "save":
        save_optimizer = Trainer._save_optimizer_and_scheduler

        def killing_save(self, output_dir):
            if self.state.global_step == step:
                _kill()
            return save_optimizer(self, output_dir)

        Trainer._save_optimizer_and_scheduler = killing_save
    else:
        raise ValueError(f"WHERE must be 'step' or 'save', got {where!r}.")


if __name__ == "__main__":
    arm(int(sys.argv[1]), sys.argv[2])
    sys.exit(main(sys.argv[3:]))
