"""MoBY under DDP: `torchrun --nproc_per_node 2` (gloo, CPU) runs tests/distributed/moby_ddp.py."""

import json
import os
import signal
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moby_ddp.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.distributed
def test_queues_gather_keys_from_both_ranks_and_stay_identical(tmp_path):
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
    assert summary["world_size"] == 2 and summary["steps_checked"] == 2 and summary["keys_per_step"] == 16
    assert summary["other_rank_keys_differ"]
    assert summary["queue_pointer"] == (2 * 16) % 40  # wrapped around a queue the global batch does not divide
    assert summary["queues_identical"] and summary["pointers_identical"]
    assert summary["targets_identical"] and summary["online_identical"] and summary["target_moved"]
