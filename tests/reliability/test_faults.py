"""Fault injection: a data-loader worker killed mid-run, a disk that fills up while a checkpoint is written, a run
resumed on fewer processes. (A push that fails midway publishes nothing: test_hub.py.)"""

import errno
import json
import os
import signal
import subprocess
import sys

import pytest
from transformers import Trainer

from maskvision.cli import main as cli
from maskvision.training.loop.checkpoints import (
    CHECKPOINT_COMPLETE,
    incomplete_reason,
    last_complete_checkpoint,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TINY_MOBY = ["pretrain", "moby", "--dataset", "demo", "--max_train_samples", "32", "--image_size", "32", "--patch_size",
             "4", "--window_size", "4", "--embed_dim", "16", "--depths", "1", "1", "--num_heads", "1", "2",
             "--projector_hidden_size", "32", "--predictor_hidden_size", "32", "--projection_dim", "16",
             "--queue_size", "24", "--per_device_train_batch_size", "4", "--max_steps", "4", "--save_steps", "2",
             "--logging_steps", "1", "--use_cpu", "true", "--dataloader_num_workers", "0",
             "--disable_tqdm", "true"]  # fmt: skip


def _run(command: list[str], timeout: int) -> tuple[int, str]:
    """Run in a session of its own, so that a hang ends with all its processes; (return code, output)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{command[:4]} hung for {timeout} s:\n{output[-4000:]}")
    return process.returncode, output


def test_a_killed_data_loader_worker_stops_the_run_with_a_clear_error(tmp_path):
    code, output = _run([sys.executable, os.path.join(HERE, "dead_worker.py"), str(tmp_path)], timeout=120)
    assert code != 0
    assert "DataLoader worker" in output and "killed by signal" in output, output[-3000:]


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint_and_resume_picks_it(tmp_path, monkeypatch, capsys):
    output_dir = tmp_path / "run"
    argv = [*TINY_MOBY, "--output_dir", str(output_dir)]
    save_optimizer = Trainer._save_optimizer_and_scheduler

    def disk_full_at_step_4(self, checkpoint):
        if self.state.global_step == 4:
            with open(os.path.join(checkpoint, "optimizer.pt"), "wb") as handle:
                handle.write(b"\0" * 100)  # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(checkpoint, "optimizer.pt"))
        return save_optimizer(self, checkpoint)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", disk_full_at_step_4)
    with pytest.raises(OSError) as raised:
        cli(argv)
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()

    assert incomplete_reason(str(output_dir / "checkpoint-4")) is not None
    assert last_complete_checkpoint(str(output_dir)) == str(output_dir / "checkpoint-2")
    assert incomplete_reason(str(output_dir / "checkpoint-2")) is None  # not rotated out by the failed save
    assert cli([*argv, "--resume_from_checkpoint", str(output_dir / "checkpoint-4")]) == 2
    assert "checkpoint-4' is incomplete: no checkpoint_complete.json" in capsys.readouterr().err

    assert cli([*argv, "--resume_from_checkpoint", "last"]) == 0  # space freed: resumes from step 2
    state = json.loads((output_dir / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and (output_dir / "checkpoint-4" / CHECKPOINT_COMPLETE).is_file()
    assert incomplete_reason(str(output_dir / "checkpoint-4")) is None  # the partial optimizer.pt was replaced


def test_truncated_checkpoint_is_never_picked_and_refused_by_path_in_one_line(tmp_path, capsys):
    output_dir = tmp_path / "run"
    assert cli([*TINY_MOBY, "--output_dir", str(output_dir)]) == 0
    weights = output_dir / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # e.g. a partial copy
    assert "model.safetensors has" in incomplete_reason(str(output_dir / "checkpoint-4"))
    assert last_complete_checkpoint(str(output_dir)) == str(output_dir / "checkpoint-2")
    (output_dir / "checkpoint-2" / "optimizer.pt").unlink()  # a missing file
    capsys.readouterr()
    for checkpoint, reason in (("checkpoint-4", "model.safetensors has"), ("checkpoint-2", "optimizer.pt is missing")):
        assert (
            cli([*TINY_MOBY, "--output_dir", str(output_dir), "--resume_from_checkpoint", str(output_dir / checkpoint)])
            == 2
        )
        error = capsys.readouterr().err.strip()  # one line, before any data is loaded
        assert "\n" not in error and f"{checkpoint}' is incomplete: {reason}" in error, error


@pytest.mark.distributed
def test_resume_on_fewer_processes_continues_the_schedule_and_the_queues(tmp_path):
    """torchrun 2 processes (gloo) until step 4, then 1 process resumes checkpoint-2 to step 4."""
    two = tmp_path / "two"
    code, output = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                         "-m", "maskvision", *TINY_MOBY, "--output_dir", str(two)], timeout=300)  # fmt: skip
    assert code == 0, output[-6000:]
    checkpoint = two / "checkpoint-2"
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= set(os.listdir(checkpoint))
    one = tmp_path / "one"
    os.makedirs(one)
    os.symlink(checkpoint, one / "checkpoint-2")
    assert cli([*TINY_MOBY, "--output_dir", str(one), "--resume_from_checkpoint", "last"]) == 0

    def logged(run) -> dict[int, dict]:
        state = json.loads((run / "trainer_state.json").read_text())
        return {entry["step"]: entry for entry in state["log_history"] if "loss" in entry}

    two_processes, one_process = logged(two), logged(one)
    assert sorted(one_process) == [1, 2, 3, 4]  # steps 1-2 from the checkpoint, 3-4 run on one process
    for step in (3, 4):  # the learning-rate schedule (scheduler state) continues where it stopped
        assert one_process[step]["learning_rate"] == pytest.approx(two_processes[step]["learning_rate"])
        assert one_process[step]["momentum"] == pytest.approx(two_processes[step]["momentum"])
    from safetensors.torch import load_file

    queue_pointer = int(load_file(one / "model.safetensors")["queue_ptr"])
    # 2 steps x 2 processes x 4 images, then 2 steps x 1 process x 4 images, around a queue of 24 keys
    assert queue_pointer == (2 * 2 * 4 + 2 * 4) % 24
