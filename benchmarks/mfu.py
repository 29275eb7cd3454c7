"""Model FLOP utilisation (MFU) of each method's pretraining step on a GPU: achieved model FLOP/s over the peak of a
bf16 matmul measured on the same device in the same run.

- FLOPs of one step are counted, not estimated: `torch.utils.flop_counter.FlopCounterMode` records every matmul,
  convolution and attention of the forward and the backward (teachers, tokenizer and heads included; no recompute,
  gradient checkpointing is off).
- The peak is the best of a few large square bf16 matmuls (`matmul_peak_flops`): what the device's matmul units
  really deliver, not the datasheet's number.
- Steps run under bf16 autocast with SDPA attention: BEiT ViT-B/16 at 224 px with its DALL-E-sized dVAE tokenizer at
  112 px, ExtreMA ViT-B/16 80% x 5, MoBY Swin-T at 224 px (the paper's configurations; batch 64 / 64 / 64).

Keys: ``mfu_beit_vitb_bf16`` (goal >= 0.45), ``mfu_extrema_vitb_bf16``, ``mfu_moby_swint_bf16``, the matmul peak
and each step's TFLOP and seconds. On a CPU the step is not measured (``None``): MFU is a GPU figure.

    python benchmarks/mfu.py [--quick]
"""

import argparse
import contextlib
import os
import sys
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import time_side_by_side, write_results  # noqa: E402


def step_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call of ``step`` (forward, backward and whatever else it runs), counted op by op."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def matmul_peak_flops(device: torch.device, dtype: torch.dtype = torch.bfloat16, size: int = 8192,
                      repeats: int = 10) -> float:  # fmt: skip
    """FLOP/s of the fastest of ``repeats`` (size x size) @ (size x size) matmuls in ``dtype`` on ``device``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = min(time_side_by_side({"matmul": lambda: a @ b}, repeats=1, warmup=2 if i == 0 else 0)["matmul"]
                  for i in range(repeats))  # fmt: skip
    return 2 * size**3 / seconds


def utilisation(step: Callable[[], object], peak_flops: float, repeats: int = 10) -> dict:
    """Counted FLOPs of one step, its median seconds (after warm-up) and FLOPs / seconds / ``peak_flops``."""
    seconds = time_side_by_side({"step": step}, repeats=repeats, warmup=3)["step"]
    flops = step_flops(step)
    return {"tflop_per_step": float(f"{flops / 1e12:.6g}"), "step_seconds": float(f"{seconds:.6g}"),
            "mfu": round(flops / seconds / peak_flops, 4)}  # fmt: skip


def _bf16(step: Callable[[], object], device: torch.device) -> Callable[[], object]:
    def call():
        context = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
        with context:
            step()

    return call


def method_steps(device: torch.device, batch: int, size: str = "base", image_size: int = 224) -> dict:
    """The three methods' training steps (forward, backward, AdamW, teacher update), built by their benchmarks."""
    from benchmarks.extrema import beit_step, extrema_step
    from benchmarks.moby import _step_function
    from maskvision import MobyConfig, MobyForPreTraining

    moby = MobyForPreTraining(MobyConfig()).to(device).train()  # Swin-T/224, the paper's; SDPA by default
    views = {key: torch.randn(batch, 3, 224, 224, device=device) for key in ("pixel_values", "pixel_values_2")}
    return {
        "beit_vitb": beit_step(size, image_size, batch, device, tokenizer=True),
        "extrema_vitb": extrema_step(size, image_size, batch, 0.8, 5, device),
        "moby_swint": _bf16(_step_function(moby, views, per_view=False), device),
    }


def run(quick: bool = False, batch_size: int = 64) -> dict:
    cuda = torch.cuda.is_available()
    results = {f"mfu_{name}_bf16": None for name in ("beit_vitb", "extrema_vitb", "moby_swint")}
    if not cuda:
        results["note"] = "MFU is measured on a GPU only (bf16 matmul peak); not run on this CPU."
        return results
    device = torch.device("cuda")
    torch.manual_seed(0)
    peak = matmul_peak_flops(device, size=4096 if quick else 8192, repeats=3 if quick else 10)
    results["matmul_peak_bf16_tflops"] = round(peak / 1e12, 1)
    results["batch_size"] = batch_size
    for name, step in method_steps(device, batch_size).items():
        measured = utilisation(step, peak, repeats=3 if quick else 10)
        results[f"mfu_{name}_bf16"] = measured.pop("mfu")
        results[name] = measured
        del step
        torch.cuda.empty_cache()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    write_results("mfu", run(args.quick, args.batch_size))


if __name__ == "__main__":
    main()
