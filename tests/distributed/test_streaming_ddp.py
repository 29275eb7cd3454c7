"""Streaming across processes and data-loader workers: `torchrun --nproc_per_node 2` runs stream_ddp.py, which
pretrains with ``--streaming true`` and two workers per rank on parquet shards made here, then streams an epoch on
each of the 2 ranks x 2 workers."""

import json

import pytest
from launcher import script, torchrun


@pytest.mark.distributed
def test_two_ranks_of_two_workers_stream_every_image_once_and_save_their_positions(image_shards, tmp_path):
    shards = image_shards("parquet", 4, 6)  # 4 streams (2 ranks x 2 workers): a shard of 6 images each
    output, summary_path = tmp_path / "run", tmp_path / "summary.json"
    torchrun([script("stream_ddp.py"), str(summary_path),
              "pretrain", "moby", "--dataset", shards, "--streaming", "true", "--shuffle_buffer", "4",
              "--image_size", "32", "--patch_size", "4", "--window_size", "4", "--embed_dim", "16", "--depths", "1",
              "1", "--num_heads", "1", "2", "--projector_hidden_size", "32", "--predictor_hidden_size", "32",
              "--projection_dim", "16", "--queue_size", "24", "--per_device_train_batch_size", "2", "--max_steps", "2",
              "--save_steps", "2", "--dataloader_num_workers", "2", "--output_dir", str(output), "--report_to",
              "none", "--disable_tqdm", "true"])  # fmt: skip
    ranks = json.loads(summary_path.read_text())["ranks"]
    assert [rank["status"] for rank in ranks] == [0, 0]
    seen = [identifier for rank in ranks for identifier in rank["ids"]]
    assert sorted(seen) == list(range(24))  # no image twice, none lost
    states = [json.loads((output / "checkpoint-2" / f"stream_state_rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank, state in enumerate(states):  # 2 steps x 2 images per rank: one batch from each worker
        assert (state["rank"], state["world_size"], state["num_workers"]) == (rank, 2, 2)
        assert sorted(position["count"] for position in state["workers"].values()) == [2, 2]
