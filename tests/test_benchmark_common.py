"""benchmarks/common.py: peak memory on CPU must see memory a warmed-up function allocates again."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import peak_memory_mb  # noqa: E402


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs") or torch.cuda.is_available(), reason="Linux CPU path")
def test_cpu_peak_memory_counts_reused_heap_memory():
    def allocate_small_blocks():
        blocks = [torch.ones(16 * 1024) for _ in range(1024)]  # 1024 x 64 KiB: glibc heap, not mmap
        return len(blocks)

    allocate_small_blocks()  # the freed blocks stay in the heap and would be reused unseen
    assert peak_memory_mb(allocate_small_blocks) > 48
