"""ExtreMA under FSDP2 with the teacher sharded like the student: `torchrun --nproc_per_node 2` (gloo, CPU) runs
tests/distributed/extrema_fsdp.py; the test runs the same steps unsharded in one process and compares."""

import json

import extrema_fsdp
import pytest
import torch
from launcher import script, torchrun
from safetensors.torch import load_file


@pytest.mark.distributed
def test_shardwise_ema_teacher_matches_the_unsharded_run(tmp_path):
    summary_path = tmp_path / "summary.json"
    torchrun([script("extrema_fsdp.py"), str(summary_path)])
    summary = json.loads(summary_path.read_text())
    assert summary["world_size"] == 2
    assert summary["teacher_layers_sharded"] and summary["student_layers_sharded"]
    assert summary["local_share"] == pytest.approx(0.5, abs=0.05)  # each rank holds half of the sharded weights

    model, losses = extrema_fsdp.train(sharded=False)
    assert summary["losses"] == pytest.approx(losses, rel=1e-4) and losses[-1] != losses[0]
    gathered = load_file(str(summary_path) + ".safetensors")
    teacher_moved = False
    initial = extrema_fsdp.build_model().state_dict()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(gathered[name], value, rtol=1e-4, atol=1e-5, msg=name)
        teacher_moved |= name.startswith("teacher_") and not torch.equal(value, initial[name])
    assert teacher_moved  # the EMA updates reached the (sharded) teacher
