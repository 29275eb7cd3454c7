"""Launched by test_beit_ddp.py under `torchrun --nproc_per_node 2` (gloo, CPU): BEiT with a dVAE tokenizer.

`train` runs a few Trainer steps on precomputed rows (views and exact-count masks fixed in advance, no drop path):
a run on two processes with batch B each and a run on one process with batch 2B (`train` called by the test
itself) then see the same global batches, and must follow the same loss trajectory and end with the same weights.
Besides, the real collator, called on the same images on every rank, must give each rank different masks and views.
Rank 0 writes a summary (JSON) and the final weights (safetensors) next to the path given as the only argument.
"""

import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from safetensors.torch import save_file
from transformers import set_seed
from workers import Rows, differs_across_ranks, logged_losses, write_summary

from maskvision import BeitMimConfig, BeitMimForPreTraining, DVAEConfig, DVAETokenizer
from maskvision.training.inputs.collators import MaskedImageModelingCollator
from maskvision.training.inputs.masking import BlockwiseMaskGenerator
from maskvision.training.loop.trainer import MaskVisionTrainer
from maskvision.training.runs.pretrain import PretrainingArguments

GLOBAL_BATCH, STEPS, IMAGE, PATCH, MASKED = 8, 3, 32, 8, 6


def build_model() -> BeitMimForPreTraining:
    set_seed(0)
    config = BeitMimConfig.from_size(
        "tiny",
        image_size=IMAGE,
        patch_size=PATCH,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        drop_path_rate=0.0,
        vocab_size=64,
        num_masking_patches=MASKED,
        min_num_patches=2,
    )
    model = BeitMimForPreTraining(config)
    model.set_tokenizer(
        DVAETokenizer(
            DVAEConfig(
                vocab_size=64,
                hidden_size=16,
                num_groups=2,
                blocks_per_group=1,
                code_embedding_size=16,
                image_size=8 * config.grid_size,
            )
        )
    )
    return model


def rows(model: BeitMimForPreTraining, count: int) -> list[dict]:
    generator = torch.Generator().manual_seed(1)
    grid, tokenizer_size = model.config.grid_size, model.config.grid_size * model.tokenizer.downsample_factor
    masks = torch.rand(count, grid * grid, generator=generator).argsort(1).argsort(1) < MASKED  # exactly MASKED
    return [
        {
            "pixel_values": torch.randn(3, IMAGE, IMAGE, generator=generator),
            "tokenizer_pixel_values": torch.rand(3, tokenizer_size, tokenizer_size, generator=generator),
            "bool_masked_pos": mask,
        }
        for mask in masks
    ]


def train(output_dir: str, per_device_batch: int):
    """A few steps of BEiT on the precomputed rows; returns the trainer."""
    model = build_model()
    args = PretrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=per_device_batch,
        learning_rate=3e-3,
        max_steps=STEPS,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
        ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None,
        ddp_find_unused_parameters=False,
        seed=0,
    )
    trainer = MaskVisionTrainer(model=model, args=args, train_dataset=Rows(rows(model, GLOBAL_BATCH * STEPS)))
    trainer.train()
    return trainer


def collator_streams() -> tuple[torch.Tensor, torch.Tensor]:
    """The masks and encoder views the real collator makes from the same 8 images on this rank."""
    rng = np.random.default_rng(0)
    images = [{"image": Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))} for _ in range(8)]
    collator = MaskedImageModelingCollator(
        image_size=IMAGE,
        patch_size=PATCH,
        image_mean=(0.5,) * 3,
        image_std=(0.5,) * 3,
        tokenizer_image_size=16,
        mask_generator=BlockwiseMaskGenerator(IMAGE // PATCH, MASKED, min_num_patches=2),
        seed=0,
    )
    batch = collator(images)
    return batch["bool_masked_pos"], batch["pixel_values"]


def main(summary_path: str) -> None:
    torch.set_num_threads(1)
    trainer = train(summary_path + ".run", GLOBAL_BATCH // int(os.environ["WORLD_SIZE"]))
    masks, views = collator_streams()
    summary = {
        "world_size": dist.get_world_size(),
        "losses": logged_losses(trainer),
        "accuracy_logged": all("accuracy" in entry for entry in trainer.state.log_history if "loss" in entry),
        "ranks_got_different_masks": differs_across_ranks([masks]),
        "ranks_got_different_views": differs_across_ranks([views]),
    }
    if dist.get_rank() == 0:
        save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, summary_path + ".safetensors")
    write_summary(summary_path, summary)


if __name__ == "__main__":
    main(sys.argv[1])
