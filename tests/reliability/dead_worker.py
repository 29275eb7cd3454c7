"""A MaskVisionTrainer run whose data-loader worker is SIGKILLed at the 6th sample (test_faults.py)."""

import os
import signal
import sys
from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import ModelOutput

from maskvision.training.loop.trainer import MaskVisionTrainer
from maskvision.training.runs.pretrain import PretrainingArguments


@dataclass
class Output(ModelOutput):
    loss: torch.Tensor | None = None


class Model(nn.Module):
    main_input_name = "pixel_values"

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, pixel_values):
        return Output(loss=self.linear(pixel_values).pow(2).mean())


class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, index):
        if index == 5 and torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies as the OOM killer would kill it
        return {"pixel_values": torch.ones(4)}


if __name__ == "__main__":
    args = PretrainingArguments(
        output_dir=sys.argv[1],
        per_device_train_batch_size=4,
        max_steps=10,
        learning_rate=0.1,
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=1,
    )
    trainer = MaskVisionTrainer(model=Model(), args=args, train_dataset=Rows())
    trainer.get_train_dataloader = lambda: torch.utils.data.DataLoader(Rows(), batch_size=4, num_workers=1)
    trainer.train()
