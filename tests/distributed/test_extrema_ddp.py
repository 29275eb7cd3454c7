"""ExtreMA under DDP: `torchrun --nproc_per_node 2` (gloo, CPU) runs tests/distributed/extrema_ddp.py; the test
itself runs the same steps in one process with the same global batch and compares."""

import json

import extrema_ddp
import pytest
from launcher import assert_same_trajectory, script, torchrun


@pytest.mark.distributed
def test_every_rank_holds_the_same_exact_ema_teacher(tmp_path):
    summary_path = tmp_path / "summary.json"
    torchrun([script("extrema_ddp.py"), str(summary_path)])
    summary = json.loads(summary_path.read_text())
    assert summary["world_size"] == 2 and summary["steps_checked"] == 2 and summary["micro_batches"] == 4
    assert summary["ema_exact"] and summary["teachers_identical"] and summary["students_identical"]
    assert summary["teacher_moved"] and summary["ranks_saw_different_masks"]
    assert summary["final_momentum"] > 0.996
    assert all(0 < loss < 10 for loss in summary["losses"])
    single = extrema_ddp.train(str(tmp_path / "single"), per_device_batch=2 * extrema_ddp.BATCH)
    assert_same_trajectory(summary, str(summary_path) + ".safetensors", single, extrema_ddp.STEPS)
