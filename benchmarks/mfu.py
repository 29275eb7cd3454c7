"""Model FLOP utilisation (MFU) of each method's pretraining step on a GPU: achieved model FLOP/s over the peak of a
bf16 matmul measured on the same device in the same run.

- FLOPs of one step are counted, not estimated: `torch.utils.flop_counter.FlopCounterMode` records every matmul,
  convolution and attention of the forward and the backward (teachers, tokenizer and heads included; no recompute,
  gradient checkpointing is off).
- The peak is the best of a few large square bf16 matmuls (`matmul_peak_flops`): what the device's matmul units
  really deliver, not the datasheet's number.
- Steps run under bf16 autocast with SDPA attention: BEiT ViT-B/16 at 224 px with its DALL-E-sized dVAE tokenizer at
  112 px, ExtreMA ViT-B/16 80% x 5, MoBY Swin-T at 224 px (the paper's configurations; batch 64 / 64 / 64), eagerly
  and with the model's forward compiled (``torch.compile``, what ``--torch_compile`` does).

Keys: ``mfu_beit_vitb_bf16`` (goal >= 0.45), ``mfu_extrema_vitb_bf16``, ``mfu_moby_swint_bf16`` and the same with
``_compiled``, the matmul peak and each step's TFLOP, seconds and images/s. On a CPU the step is not measured
(``None``): MFU is a GPU figure.

    python benchmarks/mfu.py [--quick]
"""

import argparse
import contextlib
import os
import sys
import time
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


def matmul_peak_flops(
    device: torch.device, dtype: torch.dtype = torch.bfloat16, size: int = 8192, repeats: int = 10
) -> float:
    """FLOP/s of the fastest of ``repeats`` (size x size) @ (size x size) matmuls in ``dtype`` on ``device``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = min(
        time_side_by_side({"matmul": lambda: a @ b}, repeats=1, warmup=2 if i == 0 else 0)["matmul"]
        for i in range(repeats)
    )
    return 2 * size**3 / seconds


def utilisation(
    step: Callable[[], object], peak_flops: float, repeats: int = 10, flops: int | None = None, warmup: int = 3
) -> dict:
    """Counted FLOPs of one step (or ``flops``, counted on its eager twin: a compiled graph hides its operations from
    the counter), its median seconds (after warm-up) and FLOPs / seconds / ``peak_flops``."""
    seconds = time_side_by_side({"step": step}, repeats=repeats, warmup=warmup)["step"]
    flops = step_flops(step) if flops is None else flops
    return {
        "tflop_per_step": float(f"{flops / 1e12:.6g}"),
        "step_seconds": float(f"{seconds:.6g}"),
        "mfu": round(flops / seconds / peak_flops, 4),
    }


def _bf16(step: Callable[[], object], device: torch.device) -> Callable[[], object]:
    def call():
        context = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
        with context:
            step()

    return call


def method_steps(device: torch.device, batch: int, compile_backend: str | None = None, smoke: bool = False) -> dict:
    """The three methods' training steps (forward, backward, AdamW, teacher update), built by their benchmarks, in
    the paper's configurations, compiled with ``compile_backend``; ``smoke``: tiny models (a ViT-Tiny/16 at 64 px,
    BEiT without its tokenizer, small heads, a one-block Swin) that run the same code on a CPU in seconds."""
    from benchmarks.extrema import beit_step, compiled, extrema_step
    from benchmarks.moby import _step_function
    from maskvision import MobyConfig, MobyForPreTraining
    from maskvision.configuration.backbones import swin_backbone_config

    size, image_size = ("tiny", 64) if smoke else ("base", 224)
    moby_config = MobyConfig()  # Swin-T/224, the paper's; SDPA by default
    if smoke:
        moby_config = MobyConfig(
            backbone_config=swin_backbone_config(
                "tiny", image_size=64, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4
            ),
            projector_hidden_size=64,
            predictor_hidden_size=64,
            queue_size=64,
        )
    moby = MobyForPreTraining(moby_config).to(device).train()
    views = {
        key: torch.randn(batch, 3, image_size, image_size, device=device) for key in ("pixel_values", "pixel_values_2")
    }
    return {
        "beit_vitb": beit_step(size, image_size, batch, device, tokenizer=not smoke, compile_backend=compile_backend),
        "extrema_vitb": extrema_step(
            size, image_size, batch, 0.8, 5, device, compile_backend=compile_backend, head_size=64 if smoke else 4096
        ),
        "moby_swint": _bf16(_step_function(compiled(moby, compile_backend), views, per_view=False), device),
    }


def run(
    quick: bool = False, batch_size: int = 64, compile_modes: tuple[bool, ...] = (False, True), smoke: bool = False
) -> dict:
    """MFU of each method's step, eager and compiled (``--torch_compile``): keys ``mfu_<method>_bf16`` and
    ``mfu_<method>_bf16_compiled``, with each step's TFLOP, seconds and images/s. ``smoke`` runs tiny models on
    any device (compiled by the "eager" backend on a CPU) to check the code; its figures mean nothing."""
    cuda = torch.cuda.is_available()
    results = {
        f"mfu_{name}_bf16{suffix}": None
        for name in ("beit_vitb", "extrema_vitb", "moby_swint")
        for suffix in ("", "_compiled")
    }
    if not cuda and not smoke:
        results["note"] = "MFU is measured on a GPU only (bf16 matmul peak); not run on this CPU."
        return results
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(0)
    peak = matmul_peak_flops(device, size=512 if smoke else 4096 if quick else 8192, repeats=3 if quick else 10)
    results.update(matmul_peak_bf16_tflops=round(peak / 1e12, 1), batch_size=batch_size, smoke=smoke)
    repeats, flops = 1 if smoke else 3 if quick else 10, {}
    for compile_model in sorted(compile_modes):  # eager first: its FLOP counts serve the compiled steps
        suffix = "_compiled" if compile_model else ""
        backend = ("inductor" if cuda else "eager") if compile_model else None
        start = time.perf_counter()
        steps = method_steps(device, batch_size, compile_backend=backend, smoke=smoke)
        for name in list(steps):
            try:  # one method's failure (a compiler error, say) leaves the others' figures
                measured = utilisation(steps.pop(name), peak, repeats, flops.get(name), warmup=1 if smoke else 3)
            except Exception as error:  # noqa: BLE001 - recorded in the results
                results[name + suffix] = {"error": f"{type(error).__name__}: {error}"[:300]}
                continue
            flops[name] = round(measured["tflop_per_step"] * 1e12)
            measured["images_per_second"] = round(batch_size / measured["step_seconds"], 1)
            results[f"mfu_{name}_bf16{suffix}"] = measured.pop("mfu")
            results[name + suffix] = measured
            if cuda:
                torch.cuda.empty_cache()
        results[f"seconds{suffix or '_eager'}"] = round(time.perf_counter() - start, 1)  # compilation included
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    write_results("mfu", run(args.quick, args.batch_size))


if __name__ == "__main__":
    main()
