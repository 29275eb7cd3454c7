"""benchmarks/common.py: CPU peak memory sees memory a warmed-up function allocates again; timing by CPU clock."""

import os
import sys
import time

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import peak_memory_mb, time_side_by_side  # noqa: E402


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs") or torch.cuda.is_available(), reason="Linux CPU path")
def test_cpu_peak_memory_counts_reused_heap_memory():
    def allocate_small_blocks():
        blocks = [torch.ones(16 * 1024) for _ in range(1024)]  # 1024 x 64 KiB: glibc heap, not mmap
        return len(blocks)

    allocate_small_blocks()  # the freed blocks stay in the heap and would be reused unseen
    assert peak_memory_mb(allocate_small_blocks) > 48


def test_side_by_side_clock_can_count_cpu_time_only():
    def sleep():
        time.sleep(0.05)  # wall-clock time, almost no CPU time

    wall = time_side_by_side({"sleep": sleep}, repeats=2, warmup=0)
    cpu = time_side_by_side({"sleep": sleep}, repeats=2, warmup=0, clock=time.process_time)
    assert wall["sleep"] >= 0.05 and cpu["sleep"] < 0.02
