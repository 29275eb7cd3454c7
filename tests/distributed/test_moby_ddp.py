"""MoBY under DDP: `torchrun --nproc_per_node 2` (gloo, CPU) runs tests/distributed/moby_ddp.py; the test itself
runs the same steps in one process with the same global batch and compares."""

import json

import moby_ddp
import pytest
from launcher import assert_same_trajectory, script, torchrun


@pytest.mark.distributed
def test_queues_gather_keys_from_both_ranks_and_stay_identical(tmp_path):
    summary_path = tmp_path / "summary.json"
    torchrun([script("moby_ddp.py"), str(summary_path)])
    summary = json.loads(summary_path.read_text())
    assert summary["world_size"] == 2 and summary["steps_checked"] == 2 and summary["keys_per_step"] == 16
    assert summary["other_rank_keys_differ"]
    assert summary["queue_pointer"] == (2 * 16) % 40  # wrapped around a queue the global batch does not divide
    assert summary["queues_identical"] and summary["pointers_identical"]
    assert summary["targets_identical"] and summary["online_identical"] and summary["target_moved"]
    single = moby_ddp.train(str(tmp_path / "single"), per_device_batch=2 * moby_ddp.BATCH)
    # The queues hold the same keys; their order differs (per step: each rank's micro-batches in turn, against one
    # micro-batch of both ranks after the other), which no loss sees.
    assert_same_trajectory(
        summary, str(summary_path) + ".safetensors", single, moby_ddp.STEPS, row_sets=("queue_1", "queue_2")
    )
