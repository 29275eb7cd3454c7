"""Crash and resume, for every method: a CLI run SIGKILLed at a random step continues with
``--resume_from_checkpoint last`` and ends with exactly the weights (students, EMA teachers, MoBY queues, codebooks)
of an uninterrupted run, having lost at most ``save_steps`` of work; a checkpoint being written when the process died
is never picked. Tiny models, 6 steps over 32 images (the run crosses an epoch), a checkpoint every 2 steps."""

import os
import random
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import maskvision
from maskvision.cli import main as cli
from maskvision.training.loop.checkpoints import (
    CHECKPOINT_COMPLETE,
    incomplete_reason,
    last_complete_checkpoint,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MAX_STEPS, SAVE_STEPS = 6, 2
COMMON = ["--dataset", "demo", "--max_train_samples", "32", "--per_device_train_batch_size", "8",
          "--max_steps", str(MAX_STEPS), "--save_steps", str(SAVE_STEPS), "--logging_steps", "1", "--seed", "3",
          "--use_cpu", "true", "--dataloader_num_workers", "0", "--disable_tqdm", "true"]  # fmt: skip
METHODS = {
    "tokenizer": ["tokenizer", "train", "--model_size", "tiny", "--image_size", "16", "--config_overrides",
                  "vocab_size=32,hidden_size=16,code_embedding_size=16", "--temperature_steps", "4",
                  "--kl_warmup_steps", "2", "--reseed_interval", "3", "--eval_images", "8",
                  "--base_learning_rate", "1e-3"],
    "beit": ["pretrain", "beit", "--model_size", "tiny", "--image_size", "32", "--patch_size", "4",
             "--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "2", "--drop_path_rate",
             "0.1", "--min_crop_scale", "0.35"],
    "extrema": ["pretrain", "extrema", "--model_size", "tiny", "--image_size", "32", "--patch_size", "8",
                "--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--num_masks", "2",
                "--projector_hidden_size", "32", "--projection_size", "16", "--calibration_images", "8",
                "--calibration_steps", "1"],
    "moby": ["pretrain", "moby", "--image_size", "32", "--patch_size", "4", "--window_size", "4", "--embed_dim",
             "16", "--depths", "1", "1", "--num_heads", "1", "2", "--projector_hidden_size", "32",
             "--predictor_hidden_size", "32", "--projection_dim", "16", "--queue_size", "24"],
}  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    """A tiny dVAE saved as `maskvision tokenizer train` does, for BEiT's targets."""
    torch.manual_seed(0)
    config = maskvision.DVAEConfig(
        vocab_size=64, hidden_size=16, num_groups=3, blocks_per_group=1, code_embedding_size=16, image_size=32
    )
    path = str(tmp_path_factory.mktemp("tokenizer"))
    maskvision.DVAETokenizer(config).save_pretrained(path)
    return path


def _argv(method: str, output_dir, tokenizer_dir: str) -> list[str]:
    extra = ["--tokenizer", tokenizer_dir] if method == "beit" else []
    return [*METHODS[method], *extra, *COMMON, "--output_dir", str(output_dir)]


def _killed_run(argv: list[str], step: int, where: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    process = subprocess.run(
        [sys.executable, os.path.join(HERE, "killed_run.py"), str(step), where, *argv],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert process.returncode == -signal.SIGKILL, process.stderr[-3000:]


def _weights(output_dir) -> dict[str, torch.Tensor]:
    return load_file(os.path.join(output_dir, "model.safetensors"))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_sigkill_then_resume_matches_an_uninterrupted_run(method, tokenizer_dir, tmp_path):
    # Where to die: during a random step, or, for one method, while a checkpoint is half-written.
    rng = random.Random(method)
    where = "save" if method == "extrema" else "step"
    step = rng.choice([4]) if where == "save" else rng.randint(SAVE_STEPS + 1, MAX_STEPS - 1)
    killed = tmp_path / "killed"
    _killed_run(_argv(method, killed, tokenizer_dir), step, where)

    if where == "save":  # checkpoint-4 has its weights but no marker: never picked
        assert os.path.isfile(killed / f"checkpoint-{step}" / "model.safetensors")
        assert incomplete_reason(str(killed / f"checkpoint-{step}")).startswith(f"no {CHECKPOINT_COMPLETE}")
    resumed_from = last_complete_checkpoint(str(killed))
    resumed_step = int(resumed_from.rsplit("-", 1)[1])
    assert step - SAVE_STEPS <= resumed_step <= step  # at most save_steps of work lost
    assert resumed_step < step if where == "save" else resumed_step == step - step % SAVE_STEPS

    assert cli([*_argv(method, killed, tokenizer_dir), "--resume_from_checkpoint", "last"]) == 0
    reference = tmp_path / "reference"
    assert cli(_argv(method, reference, tokenizer_dir)) == 0

    expected, got = _weights(reference), _weights(killed)
    assert expected.keys() == got.keys()
    different = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert not different, different


def test_batches_depend_only_on_seed_epoch_and_samples():
    """What makes resuming exact: a batch's views and masks are a function of (seed, epoch, sample indices), the
    same in any thread or process (block masks once depended on a per-thread generator seeded from OS entropy)."""
    import threading

    from maskvision.data import load_image_dataset
    from maskvision.training.inputs.collators import IndexedRows, MaskedImageModelingCollator
    from maskvision.training.inputs.masking import BlockwiseMaskGenerator

    rows = IndexedRows(load_image_dataset("demo").select(range(8)))
    rows = [rows[index] for index in range(8)]
    collator = MaskedImageModelingCollator(
        image_size=32,
        patch_size=4,
        image_mean=(0.5,) * 3,
        image_std=(0.5,) * 3,
        seed=1,
        mask_generator=BlockwiseMaskGenerator(8, num_masking_patches=20, min_num_patches=4),
    )
    first = collator(rows)
    in_thread = {}
    thread = threading.Thread(target=lambda: in_thread.update(collator(rows)))
    thread.start()
    thread.join()
    for key in first:
        assert torch.equal(first[key], in_thread[key]), key
    collator.set_epoch(1)  # a new epoch: new views and masks of the same images
    assert not torch.equal(collator(rows)["bool_masked_pos"], first["bool_masked_pos"])
    collator.set_epoch(0)
    reordered = collator(rows[:4])  # other samples: another stream
    assert not torch.equal(reordered["bool_masked_pos"], first["bool_masked_pos"][:4])


def test_sample_index_is_a_view_that_keeps_dropped_rows_dropped():
    import datasets

    from maskvision.training.inputs.collators import IndexedRows

    table = datasets.Dataset.from_dict({"image": list(range(10)), "label": list(range(10))})
    kept = table.select([0, 2, 3, 7])  # as on_bad_image="skip" leaves it: an indices mapping, nothing rewritten
    rows = IndexedRows(kept)
    assert len(rows) == 4 and rows[3] == {"image": 7, "label": 7, "sample_index": 3}
    assert rows.__getitems__([1, 3]) == [
        {"image": 2, "label": 2, "sample_index": 1},
        {"image": 7, "label": 7, "sample_index": 3},
    ]
    assert "sample_index" not in kept.column_names
    with pytest.raises(ValueError, match="already has a 'sample_index' column"):
        IndexedRows(table.rename_column("label", "sample_index"))
