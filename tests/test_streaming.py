"""Streaming images (`maskvision.data.streaming`, ``--streaming true``): parquet and WebDataset shards made here, no
read before the first image, bad images, shards split across ranks and data-loader workers, seeded per-epoch
shuffling, a resumed stream continuing exactly, and the commands that stream."""

import json
import logging

import pytest
from transformers import BeitConfig, BeitModel

from maskvision.cli import main as cli
from maskvision.data import BadImageError, load_image_dataset, random_subset, streaming
from maskvision.data.streaming import POSITION_BITS, STREAM_POSITION
from maskvision.evaluation.features import build_image_processor
from maskvision.training.inputs.streaming import StreamingArguments, training_rows
from maskvision.training.labelled_data import LabelledDataArguments
from maskvision.training.runs.pretrain import PretrainingArguments


def image_id(row) -> int:
    return row["image"].getpixel((0, 0))[0]


def epoch_of(sample_index: int, streams: int) -> int:
    return (sample_index >> POSITION_BITS) // streams


def identify(rows) -> dict:
    """A collator reporting (image id, sample_index) per row."""
    return {"rows": [(image_id(row), row["sample_index"]) for row in rows]}


def take(stream, num_batches: int, batch_size: int = 2, num_workers: int = 0) -> list[tuple[int, int]]:
    """(id, sample_index) of the rows of the first ``num_batches`` batches, each reported used as a trainer does."""
    rows = []
    for batch in stream.data_loader(identify, batch_size=batch_size, num_workers=num_workers):
        stream.consume(batch.pop(STREAM_POSITION))
        rows += batch["rows"]
        if len(rows) == num_batches * batch_size:
            return rows
    return rows


# ------------------------------------------------------------------------------------------------- sources
def test_parquet_shards_stream_every_image_once_with_its_label(image_shards):
    stream = load_image_dataset(image_shards("parquet", 4, 6), streaming=True)
    rows = list(stream)
    assert sorted(image_id(row) for row in rows) == list(range(24))
    assert stream.column_names == ["image", "label"] and stream.features["label"].names == ["a", "b", "c"]
    assert all(row["label"] == image_id(row) % 3 for row in rows)
    assert len({row["sample_index"] for row in rows}) == 24


def test_webdataset_shards_stream_with_their_labels(image_shards):
    stream = load_image_dataset(image_shards("webdataset", 3, 4), streaming=True)
    assert stream.num_shards == 3 and stream.column_names == ["image", "label"]  # png → image, cls → label
    rows = list(stream)
    assert sorted(image_id(row) for row in rows) == list(range(12))
    assert all(row["label"] == image_id(row) % 3 for row in rows)


def test_nothing_is_read_before_the_first_image(image_shards, monkeypatch):
    checked = []
    decode = streaming.decode_image
    monkeypatch.setattr(streaming, "decode_image", lambda *args: checked.append(args) or decode(*args))
    stream = load_image_dataset(image_shards("parquet", 4, 6), streaming=True)
    assert checked == []
    next(iter(stream))
    assert len(checked) == 1


def test_bad_images_are_skipped_and_counted_or_stop_the_stream(image_shards):
    path = image_shards("parquet", 2, 5, bad=(3, 7))
    stream = training_rows(
        load_image_dataset(path, streaming=True),
        StreamingArguments(shuffle_buffer=0),
        PretrainingArguments(output_dir="unused", max_steps=1, use_cpu=True),
    )
    rows = take(stream, num_batches=2, batch_size=4)
    assert sorted(identifier for identifier, _ in rows) == [0, 1, 2, 4, 5, 6, 8, 9]
    assert stream.skipped_images() == 2
    message = r"Cannot decode image 3 of stream 0 of 1 of .*parquet \(epoch 0\): UnidentifiedImageError"
    with pytest.raises(BadImageError, match=message):
        list(load_image_dataset(path, streaming=True, on_bad_image="raise"))


# ------------------------------------------------------------------------------------------------ sharding
@pytest.mark.parametrize("num_shards", [4, 3])  # whole shards per stream; every stream reading all, keeping 1 in 4
def test_two_ranks_of_two_workers_see_an_epoch_without_duplicates_or_losses(image_shards, num_shards):
    base = load_image_dataset(image_shards("parquet", num_shards, 24 // num_shards), streaming=True)
    seen = []
    for rank in range(2):
        stream = base.for_training(seed=0, shuffle_buffer=4, rank=rank, world_size=2)
        rows = take(stream, num_batches=14, batch_size=1, num_workers=2)  # 4 streams of 6 images: 7 each
        seen += [identifier for identifier, index in rows if epoch_of(index, streams=4) == 0]
    assert sorted(seen) == list(range(24))


def test_shuffling_is_seeded_and_new_every_epoch(image_shards):
    base = load_image_dataset(image_shards("parquet", 2, 8), streaming=True)

    def epochs(seed):
        rows = take(base.for_training(seed=seed, shuffle_buffer=8), num_batches=16)
        return [[identifier for identifier, index in rows if epoch_of(index, 1) == epoch] for epoch in (0, 1)]

    first, second = epochs(seed=0)
    assert sorted(first) == sorted(second) == list(range(16))  # each epoch is every image once
    assert first != second and first != list(range(16))  # reshuffled every epoch
    assert epochs(seed=0) == [first, second] and epochs(seed=1) != [first, second]


# ------------------------------------------------------------------------------------------------ resuming
def test_a_resumed_stream_continues_exactly_where_it_stopped(image_shards):
    """Across workers, shuffle windows and an epoch's end: the batches after the state are the uninterrupted ones."""
    base = load_image_dataset(image_shards("parquet", 4, 6), streaming=True)
    uninterrupted = take(base.for_training(seed=1, shuffle_buffer=4), num_batches=16, num_workers=2)
    stopped = base.for_training(seed=1, shuffle_buffer=4)
    before = take(stopped, num_batches=5, num_workers=2)
    state = json.loads(json.dumps(stopped.state_dict()))  # as a checkpoint holds it
    resumed = base.for_training(seed=1, shuffle_buffer=4)
    resumed.load_state_dict(state)
    assert before + take(resumed, num_batches=11, num_workers=2) == uninterrupted


def test_resuming_with_other_workers_restarts_the_epoch_with_a_warning(image_shards, caplog):
    base = load_image_dataset(image_shards("parquet", 4, 6), streaming=True)
    stopped = base.for_training(seed=1, shuffle_buffer=0)
    take(stopped, num_batches=3, num_workers=2)
    resumed = base.for_training(seed=1, shuffle_buffer=0)
    resumed.load_state_dict(stopped.state_dict())
    with caplog.at_level(logging.WARNING, logger="maskvision"):
        rows = take(resumed, num_batches=12)
    assert "restart at the beginning of epoch 0" in caplog.text
    assert sorted(identifier for identifier, _ in rows) == list(range(24))


def test_streaming_errors_name_the_fix(image_shards):
    path = image_shards("parquet", 1, 4)
    with pytest.raises(ValueError, match=r"A stream reads one whole split; got split='train\[:2\]'"):
        load_image_dataset(path, split="train[:2]", streaming=True)
    stream = load_image_dataset(path, streaming=True)
    with pytest.raises(ValueError, match="needs the map-style path"):
        random_subset(stream, 2)
    with pytest.raises(ValueError, match="--streaming true needs --max_steps"):
        training_rows(stream, StreamingArguments(), PretrainingArguments(output_dir="unused", use_cpu=True))


# ------------------------------------------------------------------------------------------------ commands
@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("encoder")
    config = BeitConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        use_mean_pooling=True,
    )
    BeitModel(config).save_pretrained(path)
    build_image_processor(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).save_pretrained(path)
    return str(path)


FAST = ["--use_cpu", "true", "--dataloader_num_workers", "0", "--disable_tqdm", "true", "--report_to", "none"]


def test_tokenizer_trains_on_a_stream_and_reports_on_its_first_images(image_shards, tmp_path):
    output = tmp_path / "tokenizer"
    argv = ["tokenizer", "train", "--dataset", image_shards("webdataset", 2, 8), "--streaming", "true",
            "--output_dir", str(output), "--model_size", "tiny", "--image_size", "16", "--config_overrides",
            "vocab_size=32,hidden_size=16,code_embedding_size=16", "--eval_images", "6", "--max_steps", "2",
            "--per_device_train_batch_size", "4", "--save_strategy", "no", *FAST]  # fmt: skip
    assert cli(argv) == 0
    assert json.loads((output / "codebook_health.json").read_text())["images"] == 6


def test_knn_of_streams_equals_knn_of_the_prepared_data(image_shards, tiny_encoder, tmp_path):
    path, eval_path = image_shards("parquet", 3, 8), image_shards("parquet", 2, 6)  # an evaluation never reads its
    scores = {}  # training rows
    for streamed in ("false", "true"):
        output = tmp_path / f"streamed-{streamed}.json"
        argv = ["eval", "knn", "--model", tiny_encoder, "--dataset", path, "--eval_dataset", eval_path, "--eval_split",
                "train", "--k", "5", "--no_cache", "true", "--output_file", str(output), "--streaming", streamed]  # fmt: skip
        assert cli(argv) == 0
        scores[streamed] = {r["metric"]: r["value"] for r in json.loads(output.read_text())["results"]}
    assert scores["true"] == scores["false"]


def test_finetuning_on_a_stream_evaluates_and_saves_by_steps(image_shards, tiny_encoder, tmp_path):
    path, eval_path = image_shards("parquet", 2, 8), image_shards("parquet", 1, 6)
    common = ["finetune", "--model", tiny_encoder, "--dataset", path, "--eval_dataset", eval_path, "--eval_split", "train",
              "--output_dir", str(tmp_path / "classifier"), "--streaming", "true", "--max_steps", "2",
              "--per_device_train_batch_size", "4", *FAST]  # fmt: skip
    with pytest.raises(ValueError, match="has no epochs to eval_strategy and save_strategy by"):
        cli(common)
    assert (
        cli([*common, "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2"])
        == 0
    )
    results = json.loads((tmp_path / "classifier" / "eval_results.json").read_text())["results"]
    assert {r["metric"] for r in results} == {"top1_accuracy"}  # three classes: no top-5
    assert (tmp_path / "classifier" / "checkpoint-2" / "stream_state_rank0.json").is_file()


def test_a_stream_evaluated_on_its_own_rows_is_refused(image_shards):
    path = image_shards("parquet", 2, 4)
    with pytest.raises(ValueError, match="a stream cannot hold a share of them out: pass --eval_dataset"):
        LabelledDataArguments(dataset=path, streaming=True)
    assert LabelledDataArguments(dataset=path, streaming=False).shares_rows()  # map-style: a held-out share instead
