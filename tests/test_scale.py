"""Scale pieces that need no second process: the EMA update on ZeRO-3 partitions, and the benchmark suite's
assembly (benchmarks/run.py) and FLOP counting (benchmarks/mfu.py)."""

import json
import os
import sys

import pytest
import torch
from torch import nn

from maskvision.modeling.momentum import update_momentum_

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import mfu, run  # noqa: E402


def test_ema_updates_zero3_partitions_in_place():
    teacher, student = nn.Linear(4, 3), nn.Linear(4, 3)
    partitions = {}
    for name, module in (("teacher", teacher), ("student", student)):
        for parameter in module.parameters():
            # ZeRO-3: this rank's partition in `ds_tensor`, an empty placeholder in `data`
            parameter.ds_tensor = parameter.data.flatten()[:2].clone()
            partitions.setdefault(name, []).append(parameter.ds_tensor.clone())
            parameter.data = torch.empty(0)
    update_momentum_(teacher, student, 0.9)
    for parameter, before, other in zip(teacher.parameters(), partitions["teacher"], partitions["student"]):
        torch.testing.assert_close(parameter.ds_tensor, 0.9 * before + 0.1 * other)


def test_step_flops_counts_forward_and_backward_matmuls():
    layer = nn.Linear(64, 32, bias=False)
    inputs = torch.randn(8, 64, requires_grad=True)

    def step():
        layer(inputs).sum().backward()

    # forward 2·B·in·out, backward twice that (gradients of the input and of the weight)
    assert mfu.step_flops(step) == 3 * 2 * 8 * 64 * 32


def test_utilisation_is_flops_over_time_over_peak():
    weight = torch.randn(256, 256)
    measured = mfu.utilisation(
        lambda: weight @ weight,
        peak_flops=mfu.matmul_peak_flops(torch.device("cpu"), torch.float32, size=256, repeats=3),
        repeats=3,
    )
    assert measured["tflop_per_step"] == pytest.approx(2 * 256**3 / 1e12, rel=1e-3)
    assert 0.2 < measured["mfu"] < 5  # the same matmul as the peak's, timed apart


def test_mfu_is_none_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("GPU present: MFU is measured")
    results = mfu.run(quick=True)
    assert results["mfu_beit_vitb_bf16"] is None and "GPU" in results["note"]


def test_suite_collects_headlines_prints_a_table_and_writes_the_device_file(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "RESULTS_DIR", str(tmp_path))
    modules = {
        "masking": lambda quick: {"mask_speedup": 25.0, "data_images_per_s": 300.0},
        "beit": lambda quick: {"beit_step_vs_stock": 1.1, "images_per_second": {"ours": 12.0, "stock": 11.0}},
        "extrema": lambda quick: {"step_seconds_by_mask_ratio": {"0.75": 3.0, "0.90": 2.0}},
        "startup": lambda quick: {
            "first_step_seconds": {"startup_ratio_50k_over_2k": {"streaming": 1.1}},
            "preemption": {"sigterm": {"exit_seconds": 75.0}},
        },
    }
    payload = run.run_suite(modules, quick=True)
    results = payload["results"]
    assert set(results) == set(run.HEADLINES)
    assert results["mask_speedup"] == 25.0 and results["beit_step_images_per_s"] == 12.0
    assert results["extrema_80x5_vs_beit_step"] is None  # a module that did not run leaves its keys empty
    assert payload["details"]["beit"]["images_per_second"]["stock"] == 11.0
    table = run.table(results)
    assert "mask_speedup" in table and ">= 20" in table
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert rows["mask_speedup"].split()[4] == "yes" and rows["beit_step_vs_stock"].split()[4] == "NO"
    assert rows["startup_ratio_streaming"].split()[4] == "yes" and rows["sigterm_exit_seconds"].split()[4] == "NO"
    path = run.write_suite(payload)
    with open(path, encoding="utf-8") as handle:
        assert path.endswith("-quick.json") and json.load(handle)["results"] == results


def test_every_suite_module_exposes_run():
    for name in run.MODULES:
        module = __import__(f"benchmarks.{name}", fromlist=["run"])
        assert callable(module.run), name
    assert {module for module, *_ in run.HEADLINES.values()} <= set(run.MODULES)


@pytest.mark.parametrize("name", ["ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3", "multi_node"])
def test_accelerate_example_configs_load(name):
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import DistributedType

    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "accelerate", f"{name}.yaml"
    )
    config = ClusterConfig.from_yaml_file(path)
    expected = {
        "fsdp": DistributedType.FSDP,
        "deepspeed_zero2": DistributedType.DEEPSPEED,
        "deepspeed_zero3": DistributedType.DEEPSPEED,
    }
    assert config.distributed_type == expected.get(name, DistributedType.MULTI_GPU)
    if name == "fsdp":  # the layer class it wraps is the one the ViT methods' student and teacher are made of
        from transformers.models.beit.modeling_beit import BeitLayer

        assert config.fsdp_config["fsdp_version"] == 2
        assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == BeitLayer.__name__
    if name.startswith("deepspeed"):
        assert config.deepspeed_config["zero_stage"] == int(name[-1])
    if name == "multi_node":
        assert config.num_machines == 2 and config.main_process_ip and config.main_process_port


@pytest.mark.parametrize(("cores", "processes", "workers"), [(64, 1, 8), (16, 2, 7), (2, 1, 1), (1, 1, 0), (8, 8, 0)])
def test_default_data_loader_workers_share_the_cores(monkeypatch, cores, processes, workers):
    from maskvision.training.runs import pretrain

    monkeypatch.setattr(pretrain.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(processes))
    assert pretrain.default_num_workers() == workers


def test_arguments_resolve_workers_and_start_them_each_epoch(tmp_path):
    from maskvision.training.runs.pretrain import PretrainingArguments, default_num_workers

    automatic = PretrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    assert automatic.dataloader_num_workers == default_num_workers()
    assert not automatic.dataloader_persistent_workers  # each epoch's workers get the collator's new epoch
    in_process = PretrainingArguments(output_dir=str(tmp_path), use_cpu=True, dataloader_num_workers=0)
    assert in_process.dataloader_num_workers == 0 and not in_process.dataloader_persistent_workers


def test_partial_runs_merge_into_the_previous_results(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "RESULTS_DIR", str(tmp_path))
    run.write_suite(
        run.run_suite(
            {"masking": lambda quick: {"mask_speedup": 14.0}, "beit": lambda quick: {"beit_step_vs_stock": 1.2}}
        )
    )
    partial = run.merge_into_previous(run.run_suite({"masking": lambda quick: {"mask_speedup": 21.0}}))
    assert partial["results"]["mask_speedup"] == 21.0 and partial["results"]["beit_step_vs_stock"] == 1.2
    assert set(partial["details"]) == {"masking", "beit"}
