"""BEiT under DDP: `torchrun --nproc_per_node 2` (gloo, CPU) runs tests/distributed/beit_ddp.py; the test itself
runs the same steps in one process with the same global batch and compares."""

import json

import beit_ddp
import pytest
from launcher import assert_same_trajectory, script, torchrun


@pytest.mark.distributed
def test_two_ranks_follow_the_one_process_trajectory(tmp_path):
    summary_path = tmp_path / "summary.json"
    torchrun([script("beit_ddp.py"), str(summary_path)])
    summary = json.loads(summary_path.read_text())
    assert summary["world_size"] == 2 and summary["accuracy_logged"]
    assert summary["ranks_got_different_masks"] and summary["ranks_got_different_views"]
    single = beit_ddp.train(str(tmp_path / "single"), per_device_batch=beit_ddp.GLOBAL_BATCH)
    losses = [entry["loss"] for entry in single.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0]
    assert_same_trajectory(summary, str(summary_path) + ".safetensors", single, beit_ddp.STEPS)
