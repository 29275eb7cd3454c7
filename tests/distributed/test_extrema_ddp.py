"""ExtreMA under DDP: `torchrun --nproc_per_node 2` (gloo, CPU) runs tests/distributed/extrema_ddp.py."""

import json
import os
import signal
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "extrema_ddp.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.distributed
def test_every_rank_holds_the_same_exact_ema_teacher(tmp_path):
    summary_path = tmp_path / "summary.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        SCRIPT, str(summary_path),
    ]  # fmt: skip
    # A session of its own, so that a hang is ended with the workers and not only the launcher.
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        output, _ = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail("torchrun timed out:\n" + output[-5000:])
    assert process.returncode == 0, output[-8000:]
    summary = json.loads(summary_path.read_text())
    assert summary["world_size"] == 2 and summary["steps_checked"] == 2 and summary["micro_batches"] == 4
    assert summary["ema_exact"] and summary["teachers_identical"] and summary["students_identical"]
    assert summary["teacher_moved"] and summary["ranks_saw_different_masks"]
    assert summary["final_momentum"] > 0.996
    assert all(0 < loss < 10 for loss in summary["losses"])
