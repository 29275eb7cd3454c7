"""Preemption: a `maskvision pretrain` run signalled during an optimizer step (SIGTERM, or SLURM's SIGUSR1) finishes
the step, writes a complete checkpoint and exits with a message naming it (status 0, or --preemption_exit_code);
``--resume_from_checkpoint last`` then continues to exactly the weights of an uninterrupted run, map-style and
streaming (two data-loader workers, shuffled). Tiny MoBY, 4 steps, the signal during step 2 (no regular checkpoint
before step 4)."""

import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from maskvision.cli import main as cli
from maskvision.training.loop.checkpoints import incomplete_reason
from maskvision.training.loop.preemption import PreemptionCallback, parse_signals
from maskvision.training.runs.pretrain import PretrainingArguments

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TINY_MOBY = ["pretrain", "moby", "--image_size", "32", "--patch_size", "4", "--window_size", "4", "--embed_dim", "16",
             "--depths", "1", "1", "--num_heads", "1", "2", "--projector_hidden_size", "32", "--predictor_hidden_size",
             "32", "--projection_dim", "16", "--queue_size", "24", "--per_device_train_batch_size", "4",
             "--max_steps", "4", "--save_steps", "4", "--logging_steps", "1", "--seed", "2", "--use_cpu", "true",
             "--disable_tqdm", "true"]  # fmt: skip


def _signalled_run(argv: list[str], step: int, signal_name: str) -> subprocess.CompletedProcess:
    # The same threads as this process, whose runs it is compared with bit for bit.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, os.path.join(HERE, "preempted_run.py"), str(step), signal_name, *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize(
    "streaming, signal_name, exit_code", [(False, "SIGTERM", 0), (True, "SIGUSR1", 3)], ids=["map-style", "streaming"]
)
def test_a_signalled_run_saves_a_complete_checkpoint_and_resumes_to_the_uninterrupted_weights(
    streaming, signal_name, exit_code, image_shards, tmp_path
):
    if streaming:
        data = ["--dataset", image_shards("parquet", 4, 6), "--streaming", "true", "--shuffle_buffer", "4",
                "--dataloader_num_workers", "2", "--preemption_exit_code", str(exit_code)]  # fmt: skip
    else:
        data = ["--dataset", "demo", "--max_train_samples", "32", "--dataloader_num_workers", "0"]
    stopped = tmp_path / "stopped"
    argv = [*TINY_MOBY, *data, "--output_dir", str(stopped)]
    process = _signalled_run(argv, step=1, signal_name=signal_name)
    assert process.returncode == exit_code, process.stderr[-3000:]
    assert (
        f"Stopped by {signal_name} after optimizer step 2: {stopped}/checkpoint-2 is complete. Run the same "
        "command with --resume_from_checkpoint last to continue."
    ) in process.stderr
    assert incomplete_reason(str(stopped / "checkpoint-2")) is None
    assert not (stopped / "encoder").exists()  # not finished: nothing exported
    if streaming:
        assert (stopped / "checkpoint-2" / "stream_state_rank0.json").is_file()

    assert cli([*argv, "--resume_from_checkpoint", "last"]) == 0
    reference = tmp_path / "reference"
    assert cli([*TINY_MOBY, *data, "--output_dir", str(reference)]) == 0
    expected, got = load_file(reference / "model.safetensors"), load_file(stopped / "model.safetensors")
    assert [name for name in expected if not torch.equal(expected[name], got[name])] == []


def test_preemption_signals_are_validated_and_handlers_restored():
    assert parse_signals(["SIGTERM", "usr1", "none"]) == [signal.SIGTERM, signal.SIGUSR1]
    with pytest.raises(ValueError, match="'SIGKILL' is not a signal a run can catch"):
        PretrainingArguments(output_dir="unused", use_cpu=True, preemption_signals=["SIGKILL"])
    callback, before = PreemptionCallback(["SIGUSR2"]), signal.getsignal(signal.SIGUSR2)
    callback.install()
    os.kill(os.getpid(), signal.SIGUSR2)
    callback.uninstall()
    assert callback.received == "SIGUSR2" and signal.getsignal(signal.SIGUSR2) == before
