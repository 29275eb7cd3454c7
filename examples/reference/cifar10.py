"""The CIFAR-10 reference of the README: a tiny dVAE tokenizer, then BEiT (tokenizer ids and pixel targets), ExtreMA
and MoBY pretrained at one budget; each encoder and a random initialisation of its architecture evaluated by k-NN
(k = 20 and 200) and a linear probe (all 50,000 training images against the 10,000 test images) and fine-tuned (the
random initialisation's fine-tuning is training from scratch at the same budget); k-NN against epochs from
checkpoints along each run; a model card per encoder (`maskvision card`).

    python examples/reference/cifar10.py                   # the CPU reference of the README (2 cores, < 2 h)
    PROFILE=gpu python examples/reference/cifar10.py       # ViT-Tiny at a GPU budget (benchmarks/gpu.py runs it)
    SMOKE=1 DATA=demo python examples/reference/cifar10.py # every step for a few iterations (the test suite's)

Every step runs a `maskvision` command in this process, and every figure is written as soon as it is measured to
``RESULTS`` (JSON) and ``RESULTS_MD`` (Markdown), so that a run cut short still leaves what it finished; a step that
fails is recorded with its error and the others go on. Every setting that matters is passed explicitly (see
`PROFILES`): the results do not follow the recipes' defaults.

Variables (environment):

- DATA: a folder with CIFAR-10's train.parquet and test.parquet (``image``, ``label``), or ``demo``;
- RUNS (runs/cifar10): the runs; RESULTS, RESULTS_MD (RUNS/results.json, .md); CARDS (hub_cards, RUNS/cards with
  SMOKE; empty: none) and HUB_ORG (maskvision): the model cards and the Hub repositories they name;
- PROFILE (cpu | gpu), METHODS (a comma-separated subset of beit, beit-pixels, extrema, moby);
- the budget: EPOCHS (every method's pretraining epochs) or EPOCHS_<METHOD> (EPOCHS_BEIT_PIXELS, ...), BATCH,
  CURVE_EVERY (epochs between the k-NN checkpoints; 0: none), TOKENIZER_STEPS or TOKENIZER (a trained tokenizer to
  reuse), FT_EPOCHS, FT_BATCH, FT_SAMPLES (fine-tuning images; default all), COMPILE (1: --torch_compile);
- SMOKE (1: a few iterations of every step, tiny encoders).
"""

import gc
import json
import os
import shutil
import sys
import time
import traceback

import torch

METHODS = ("beit", "beit-pixels", "extrema", "moby")

# ViT-Tiny (width 192, 3 heads) at 32 px in 4-pixel patches: 64 tokens. The GPU budget's backbone for every method.
VIT_TINY = ["--model_size", "tiny", "--image_size", "32", "--patch_size", "4", "--num_hidden_layers", "12"]
# Shared by every method's pretraining: nothing below follows a recipe default. The cosine schedule decays to 0.
# bf16 autocast on the CPU too: about 1.8x faster steps on this project's AMD EPYC (AVX512-BF16), losses in fp32.
BF16 = ["--bf16", "true"] + ([] if torch.cuda.is_available() else ["--use_cpu", "true"])
COMMON = ["--lr_scheduler_type", "cosine", "--dataloader_drop_last", "true", "--augment_on_device", "true",
          "--images_on_device", "true", *BF16, "--logging_steps", "50", "--disable_tqdm", "true", "--seed", "0"]  # fmt: skip


# Every method's own settings, passed explicitly (lr, schedule, regularisation, heads, masks, momentum), on top of
# its backbone's flags. Learning rates: the CPU budget's were found fastest in short runs (README, "CIFAR-10
# reference"); the GPU budget's are the official ones scaled linearly to batch 1024 (BEiT 1.5e-3 per 2048, ExtreMA
# 1.5e-4 per 256, MoBY 1e-3 per 512).
def _beit(lr: str, warmup: str, drop_path: str) -> list[str]:
    return ["--learning_rate", lr, "--warmup_steps", warmup, "--weight_decay", "0.05", "--max_grad_norm", "3.0",
            "--adam_beta2", "0.999", "--drop_path_rate", drop_path, "--layer_scale_init_value", "0.1",
            "--num_masking_patches", "24", "--min_num_patches", "5", "--min_crop_scale", "0.35"]  # fmt: skip


def _extrema(lr: str, warmup: str, head: str, calibration: str) -> list[str]:
    # 64 patches: 5 masks of 13 visible patches do not fit, 4 do. No gradient clipping, as the official recipe.
    return ["--learning_rate", lr, "--warmup_steps", warmup, "--weight_decay", "0.1", "--max_grad_norm", "0",
            "--adam_beta2", "0.95", "--drop_path_rate", "0.0", "--num_masks", "4", "--mask_ratio", "0.8",
            "--loss", "byol", "--base_momentum", "0.996", "--final_momentum", "1.0", "--projector_hidden_size", head,
            "--projection_size", "256", "--min_crop_scale", "0.2", "--calibration_steps", calibration]  # fmt: skip


def _moby(lr: str, warmup: str, head: str) -> list[str]:
    return ["--learning_rate", lr, "--warmup_steps", warmup, "--weight_decay", "0.05", "--max_grad_norm", "2.5",
            "--drop_path_rate", "0.0", "--target_drop_path_rate", "0.0", "--queue_size", "4096", "--temperature",
            "0.2", "--momentum", "0.99", "--projector_hidden_size", head, "--predictor_hidden_size", head,
            "--projection_dim", "256", "--min_crop_scale", "0.2"]  # fmt: skip


# Fine-tuning, the same for every encoder and from scratch: a short budget, so no Mixup / CutMix.
FINETUNE = ["--warmup_steps", "0.1", "--weight_decay", "0.05", "--drop_path_rate", "0.0", "--mixup_alpha", "0",
            "--cutmix_alpha", "0", "--label_smoothing_factor", "0.1", "--min_crop_scale", "0.35", "--max_grad_norm",
            "0"]  # fmt: skip

SMALL_VIT = ["--model_size", "tiny", "--image_size", "32", "--patch_size", "4", "--hidden_size", "128",
             "--num_hidden_layers", "6", "--num_attention_heads", "2"]  # fmt: skip
# MoBY's Swin of the demo: 32 px in 4-pixel patches, windows of 4, two stages (8x8 tokens of width 48, 4x4 of 96).
SMALL_SWIN = ["--backbone", "swin", "--image_size", "32", "--patch_size", "4", "--window_size", "4", "--embed_dim",
              "48", "--depths", "2", "6", "--num_heads", "3", "6"]  # fmt: skip

# Per profile: the batch, each method's epochs and flags, the fine-tuning budget and learning rate.
PROFILES = {
    "cpu": {
        "batch": 128,
        "epochs": {"beit": 3, "beit-pixels": 3, "extrema": 3, "moby": 16},  # 99 minutes on 2 cores in all (README)
        "curve_every": 2,
        "tokenizer_steps": 400,
        "ft_epochs": 1,
        "ft_batch": 128,
        "methods": {
            "beit": SMALL_VIT + _beit("1.5e-3", "0.1", "0.0"),
            "beit-pixels": SMALL_VIT + _beit("1.5e-3", "0.1", "0.0"),
            "extrema": SMALL_VIT + _extrema("1e-3", "0.1", "1024", "50"),
            "moby": SMALL_SWIN + _moby("1e-3", "0.05", "1024"),
        },
        "finetune": FINETUNE + ["--learning_rate", "1e-3"],
    },
    "gpu": {
        "batch": 1024,  # what fits in about 5 minutes of one H200 (python benchmarks/gpu.py --estimate)
        "epochs": {"beit": 8, "beit-pixels": 8, "extrema": 8, "moby": 8},
        "curve_every": 0,
        "tokenizer_steps": 1000,
        "ft_epochs": 3,
        "ft_batch": 512,
        "methods": {
            "beit": VIT_TINY + _beit("7.5e-4", "0.1", "0.1"),
            "beit-pixels": VIT_TINY + _beit("7.5e-4", "0.1", "0.1"),
            "extrema": VIT_TINY + _extrema("6e-4", "0.1", "4096", "100"),
            "moby": ["--backbone", "vit"] + VIT_TINY + _moby("2e-3", "0.1", "4096"),
        },
        "finetune": FINETUNE + ["--learning_rate", "2e-3"],
    },
}


# ----------------------------------------------------------------------------------------------------- settings
def _env(name: str, default):
    value = os.environ.get(name, "")
    return type(default)(value) if value != "" else default


def settings(profile: str | None = None) -> dict:
    """The run's settings: the profile's (``profile``, else PROFILE's), overridden by the environment, shrunk to a few
    iterations by SMOKE."""
    profile_name = profile or _env("PROFILE", "cpu")
    if profile_name not in PROFILES:
        sys.exit(f"PROFILE must be one of {sorted(PROFILES)}, got {profile_name!r}.")
    profile = PROFILES[profile_name]
    smoke = _env("SMOKE", "") not in ("", "0")
    methods = [m for m in _env("METHODS", ",".join(METHODS)).split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        sys.exit(f"METHODS: unknown {unknown}; choose among {list(METHODS)}.")
    data = _env("DATA", "../shared/data/cifar10")
    out = _env("RUNS", "runs/cifar10")
    epochs = {
        m: _env("EPOCHS_" + m.upper().replace("-", "_"), _env("EPOCHS", float(profile["epochs"][m]))) for m in methods
    }
    plan = {
        "profile": profile_name,
        "smoke": smoke,
        "methods": methods,
        "data": data,
        "train_source": "demo" if data == "demo" else f"{data}/train.parquet",
        "test_source": "demo" if data == "demo" else f"{data}/test.parquet",
        "out": out,
        "results": _env("RESULTS", os.path.join(out, "results.json")),
        "results_md": _env("RESULTS_MD", os.path.join(out, "results.md")),
        "cards": _env("CARDS", os.path.join(out, "cards") if smoke else "hub_cards"),
        "hub_org": _env("HUB_ORG", "maskvision"),
        "batch": _env("BATCH", profile["batch"]),
        "epochs": epochs,
        "curve_every": _env("CURVE_EVERY", float(profile["curve_every"])),
        "tokenizer": _env("TOKENIZER", ""),
        "tokenizer_steps": _env("TOKENIZER_STEPS", profile["tokenizer_steps"]),
        "ft_epochs": _env("FT_EPOCHS", float(profile["ft_epochs"])),
        "ft_batch": _env("FT_BATCH", profile["ft_batch"]),
        "ft_samples": _env("FT_SAMPLES", 0) or None,
        "compile": _env("COMPILE", "") not in ("", "0"),
        "method_flags": {m: list(profile["methods"][m]) for m in methods},
        "finetune_flags": list(profile["finetune"]),
        "pretrain_samples": None,
        "eval_limits": [],
    }
    if smoke:  # every step, a few iterations, tiny encoders
        plan.update(
            batch=16,
            tokenizer_steps=3,
            ft_epochs=1,
            ft_batch=16,
            ft_samples=64,
            pretrain_samples=48,
            curve_every=_env("CURVE_EVERY", 1.0),
            epochs={m: 1.0 for m in methods},
            eval_limits=["--max_train_samples", "128", "--max_eval_samples", "64"],
        )
        plan["method_flags"] = {m: _shrink(flags) for m, flags in plan["method_flags"].items()}
    return plan


_SMOKE_SIZES = {"--num_hidden_layers": "2", "--hidden_size": "32", "--num_attention_heads": "2",
                "--embed_dim": "16", "--projector_hidden_size": "64", "--predictor_hidden_size": "64",
                "--queue_size": "64", "--calibration_steps": "2"}  # fmt: skip


def _shrink(flags: list[str]) -> list[str]:
    """A method's flags with a tiny encoder and heads (SMOKE)."""
    flags = list(flags)
    for flag, value in _SMOKE_SIZES.items():
        if flag in flags:
            flags[flags.index(flag) + 1] = value
        elif flag in ("--hidden_size", "--num_attention_heads") and "--num_hidden_layers" in flags:
            flags += [flag, value]
    for flag, value in (("--depths", "1"), ("--num_heads", "1")):  # a Swin: one block and one head per stage
        for index in _value_positions(flags, flag):
            flags[index] = value
    return flags


def _value_positions(flags: list[str], flag: str) -> range:
    """The positions of ``flag``'s values in ``flags`` (a list flag such as ``--depths 2 6``); empty when absent."""
    if flag not in flags:
        return range(0)
    start = end = flags.index(flag) + 1
    while end < len(flags) and not flags[end].startswith("--"):
        end += 1
    return range(start, end)


# ------------------------------------------------------------------------------------------------------ results
class Results:
    """The run's figures, written to JSON and Markdown after every change (a run cut short keeps what it did)."""

    def __init__(self, plan: dict, on_write=None):
        self.plan, self.on_write = plan, on_write
        self.data = {
            "profile": plan["profile"], "smoke": plan["smoke"], "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "settings": plan,
            "steps": {}, "tokenizer": {}, "encoders": {}, "curve": {},
        }  # fmt: skip
        self.started = time.perf_counter()

    def write(self) -> None:
        cpu = os.times()
        self.data["wall_seconds"] = round(time.perf_counter() - self.started, 1)
        self.data["cpu_seconds"] = round(cpu.user + cpu.system + cpu.children_user + cpu.children_system, 1)
        for path, text in (
            (self.plan["results"], json.dumps(self.data, indent=2)),
            (self.plan["results_md"], self.markdown()),
        ):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path + ".tmp", "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            os.replace(path + ".tmp", path)
        if self.on_write is not None:
            self.on_write(self)

    def step(self, name: str, function, *args) -> object:
        """Run one step, timing it; an error is recorded (and printed) and the run goes on."""
        print(f"[cifar10] {name} ...", file=sys.stderr, flush=True)
        start, cpu = time.perf_counter(), _cpu_seconds()
        record = self.data["steps"].setdefault(name, {})
        try:
            value = function(*args)
            record["status"] = "done"
            return value
        except Exception as error:  # noqa: BLE001 - recorded; the other steps still run
            traceback.print_exc()
            record.update(status="failed", error=f"{type(error).__name__}: {error}"[:500])
            return None
        finally:
            record.update(seconds=round(time.perf_counter() - start, 1), cpu_seconds=round(_cpu_seconds() - cpu, 1))
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.write()

    def encoder(self, name: str) -> dict:
        return self.data["encoders"].setdefault(name, {})

    def markdown(self) -> str:
        data = self.data
        lines = [
            f"CIFAR-10 reference, profile `{data['profile']}`{' (SMOKE)' if data['smoke'] else ''}, {data['device']}, "
            f"torch {data['torch']}: {data.get('wall_seconds', 0) / 60:.1f} min wall, "
            f"{data.get('cpu_seconds', 0) / 60:.1f} min CPU.",
            "",
            "| encoder | backbone | pretraining | k-NN top-1 (k = 20) | linear top-1 | fine-tune top-1 | "
            "pretraining images/s |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, row in data["encoders"].items():
            pretraining = "—"
            if "epochs" in row:
                pretraining = f"{row['epochs']:g} epochs, {row.get('pretrain_seconds', 0) / 60:.1f} min"
            lines.append(
                f"| {name} | {row.get('backbone', '—')} | {pretraining} | {_percent(row.get('knn_top1'))} | "
                f"{_percent(row.get('linear_top1'))} | {_percent(row.get('finetune_top1'))} | "
                f"{row.get('pretrain_images_per_s', '—')} |"
            )
        tokenizer = data["tokenizer"]
        if "used_fraction" in tokenizer:
            origin = (
                f"{self.plan['tokenizer']}, reused"
                if self.plan["tokenizer"]
                else f"tiny dVAE, {self.plan['tokenizer_steps']} steps of 64 images"
            )
            lines += [
                "",
                f"BEiT's tokenizer ({origin}): {100 * tokenizer['used_fraction']:.0f}% of its codes used on "
                f"test images, perplexity {tokenizer['perplexity']:.0f}, reconstruction PSNR "
                f"{tokenizer.get('reconstruction_psnr', float('nan')):.1f} dB.",
            ]
        if data["curve"]:
            epochs = sorted({float(e) for points in data["curve"].values() for e in points})
            lines += ["", "k-NN top-1 (k = 20) against pretraining epochs:", "",
                      "| method | " + " | ".join(f"{e:g}" for e in epochs) + " |",
                      "| --- |" + " --- |" * len(epochs)]  # fmt: skip
            for method, points in data["curve"].items():
                values = {float(e): v for e, v in points.items()}
                lines.append(f"| {method} | " + " | ".join(_percent(values.get(e)) for e in epochs) + " |")
        failed = {name: step["error"] for name, step in data["steps"].items() if step.get("status") == "failed"}
        if failed:
            lines += ["", "Failed steps: " + "; ".join(f"{name}: {error}" for name, error in failed.items())]
        return "\n".join(lines)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


# ------------------------------------------------------------------------------------------------------ commands
def train_data(plan: dict) -> list[str]:
    return ["--dataset", plan["train_source"], "--split", "train"]


def labelled_data(plan: dict) -> list[str]:
    """The training set (memory bank, probe and fine-tuning set) and the test split evaluated."""
    return [*train_data(plan), "--eval_dataset", plan["test_source"], "--eval_split", "test"]


def maskvision(*argv: str) -> None:
    """One `maskvision` command, in this process (a failure raises)."""
    from maskvision.cli import main

    print("maskvision " + " ".join(argv), file=sys.stderr, flush=True)
    code = main(list(argv))
    if code:
        raise RuntimeError(f"maskvision {argv[0]} exited with {code}")


def _read_json(path: str):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _top1(path: str, protocol: str, **settings) -> float | None:
    """The top-1 accuracy a `maskvision eval` / `finetune` results file holds for ``protocol`` (and ``settings``)."""
    if not os.path.exists(path):
        return None
    values = [
        r["value"]
        for r in _read_json(path)["results"]
        if r["protocol"] == protocol
        and r["metric"] == "top1_accuracy"
        and all(r["settings"].get(k) == v for k, v in settings.items())
    ]
    return max(values) if values else None


def train_tokenizer(plan: dict, results: Results) -> str:
    """Stage 1 of BEiT: the tiny dVAE (8x8 codes of 32 px images, 512 codes), or the TOKENIZER given."""
    path = plan["tokenizer"] or os.path.join(plan["out"], "tokenizer")
    if not plan["tokenizer"]:
        maskvision("tokenizer", "train", *train_data(plan), "--output_dir", path, "--model_size", "tiny",
                   "--max_steps", str(plan["tokenizer_steps"]), "--per_device_train_batch_size", "64",
                   "--learning_rate", "1e-3", "--warmup_steps", "0.05", "--lr_scheduler_type", "cosine",
                   "--weight_decay", "1e-4", "--config_overrides", "straight_through=true", "--temperature_end", "0.5",
                   "--min_crop_scale", "0.35", "--save_strategy", "no", "--images_on_device", "true",
                   "--disable_tqdm", "true", "--seed", "0",
                   *(["--max_train_samples", "256", "--eval_images", "64"] if plan["smoke"] else []))  # fmt: skip
    maskvision(
        "tokenizer",
        "inspect",
        path,
        "--dataset",
        plan["test_source"],
        "--split",
        "test",
        "--max-images",
        "64" if plan["smoke"] else "2000",
    )
    health = _read_json(os.path.join(path, "inspect.json"))  # on test images
    results.data["tokenizer"] = {
        "path": path,
        **{k: health[k] for k in ("used_fraction", "perplexity", "reconstruction_psnr") if k in health},
    }
    return path


def pretrain(plan: dict, results: Results, method: str, tokenizer: str | None) -> None:
    """One method's pretraining, with checkpoints every CURVE_EVERY epochs for the k-NN curve."""
    output_dir = os.path.join(plan["out"], method)
    images = 48 if plan["smoke"] else 50_000
    steps_per_epoch = images // plan["batch"]  # the last incomplete batch is dropped
    epochs = plan["epochs"][method]
    argv = [
        "pretrain",
        "moby" if method == "moby" else "extrema" if method == "extrema" else "beit",
        *train_data(plan),
        "--output_dir",
        output_dir,
        *plan["method_flags"][method],
        *COMMON,
        "--per_device_train_batch_size",
        str(plan["batch"]),
        "--max_steps",
        str(round(epochs * steps_per_epoch)),
    ]
    if method == "beit":
        argv += ["--tokenizer", tokenizer, "--target", "tokens"]
    elif method == "beit-pixels":
        argv += ["--target", "pixels"]
    if plan["curve_every"]:
        argv += [
            "--save_strategy",
            "steps",
            "--save_steps",
            str(max(1, round(plan["curve_every"] * steps_per_epoch))),
            "--save_only_model",
            "true",
            "--save_total_limit",
            "1000",
        ]
    else:
        argv += ["--save_strategy", "no"]
    if plan["pretrain_samples"]:
        argv += ["--max_train_samples", str(plan["pretrain_samples"])]
    if plan["compile"]:
        argv += ["--torch_compile", "true"]
    if os.path.isdir(output_dir):
        shutil.rmtree(output_dir)  # a fresh run: no checkpoint of an earlier one in the curve
    start = time.perf_counter()
    maskvision(*argv)
    seconds = time.perf_counter() - start
    state = _read_json(os.path.join(output_dir, "trainer_state.json"))
    runtime = next(entry["train_runtime"] for entry in state["log_history"] if "train_runtime" in entry)
    results.encoder(method).update(
        backbone=_backbone(plan["method_flags"][method]),
        epochs=round(state["epoch"], 2),
        steps=state["global_step"],
        pretrain_seconds=round(seconds, 1),
        pretrain_images_per_s=round(state["global_step"] * plan["batch"] / runtime, 1),
        command="maskvision " + " ".join(argv),
    )


def _backbone(flags: list[str]) -> str:
    """A method's encoder in words, from its flags."""

    def value(flag, default):
        return flags[flags.index(flag) + 1] if flag in flags else default

    if value("--backbone", "vit") == "swin":
        depths = "-".join(flags[index] for index in _value_positions(flags, "--depths"))
        return f"Swin {value('--embed_dim', '96')}, depths {depths}, patch {value('--patch_size', '4')}"
    width, depth = value("--hidden_size", "192"), value("--num_hidden_layers", "12")
    return f"ViT {width}x{depth}, patch {value('--patch_size', '4')}"


def floor(plan: dict, method: str) -> str:
    """The random initialisation a method's encoder is compared with: its own architecture's."""
    return "random-init-swin" if _backbone(plan["method_flags"][method]).startswith("Swin") else "random-init"


def _slug(backbone: str) -> str:
    """The cards' architecture name: "vit-tiny" for ViT-Tiny, "vit-128x6", "swin-48" ..."""
    kind, size = backbone.split(",")[0].split(" ")
    return "vit-tiny" if backbone.startswith("ViT 192x12,") else f"{kind.lower()}-{size}"


def random_init(plan: dict, results: Results, name: str, method: str) -> None:
    """The floor: ``method``'s encoder architecture and preprocessing, freshly initialised (seed 0)."""
    from maskvision.cli.evaluate import save_random_init

    save_random_init(os.path.join(plan["out"], method, "encoder"), os.path.join(plan["out"], name, "encoder"), seed=0)
    results.encoder(name).update(backbone=results.encoder(method)["backbone"])


def evaluate(plan: dict, results: Results, name: str) -> None:
    """k-NN and linear probe of the frozen encoder (features cached once for both), then its model card."""
    encoder = os.path.join(plan["out"], name, "encoder")
    common = [
        *labelled_data(plan),
        *plan["eval_limits"],
        "--batch_size",
        "512",
        "--cache_dir",
        os.path.join(plan["out"], "feature_cache"),
    ]
    maskvision("eval", "knn", "--model", encoder, *common, "--k", "20", "200")
    results_file = os.path.join(encoder, "eval_results.json")
    results.encoder(name).update(
        knn_top1=_top1(results_file, "knn", k=20), knn_top1_k200=_top1(results_file, "knn", k=200)
    )
    results.write()
    maskvision("eval", "linear", "--model", encoder, *common, *(["--epochs", "5"] if plan["smoke"] else []))
    results.encoder(name)["linear_top1"] = _top1(results_file, "linear")


def finetune(plan: dict, results: Results, name: str) -> None:
    """Fine-tuning of the encoder (for the random initialisation: training from scratch) at one budget."""
    encoder = os.path.join(plan["out"], name, "encoder")
    output_dir = os.path.join(plan["out"], name, "finetuned")
    swin = results.encoder(name)["backbone"].startswith("Swin")
    # Layer-wise lr decay for pretrained encoders (MAE's 0.75 for ViTs, SimMIM's 0.9 for Swin); none from scratch.
    layer_decay = "1" if name.startswith("random-init") else "0.9" if swin else "0.75"
    argv = ["finetune", "--model", encoder, *labelled_data(plan), "--output_dir", output_dir, "--layer_decay",
            layer_decay, *plan["finetune_flags"], "--num_train_epochs", str(plan["ft_epochs"]), "--lr_scheduler_type",
            "cosine",
            "--per_device_train_batch_size", str(plan["ft_batch"]), "--per_device_eval_batch_size", "512", *BF16,
            "--save_total_limit", "1", "--disable_tqdm", "true", "--seed", "0"]  # fmt: skip
    if plan["ft_samples"]:
        argv += ["--max_train_samples", str(plan["ft_samples"])]
    if plan["smoke"]:
        argv += ["--max_eval_samples", "64"]
    maskvision(*argv)
    results.encoder(name)["finetune_top1"] = _top1(os.path.join(output_dir, "eval_results.json"), "finetune")
    for checkpoint in os.listdir(output_dir):  # the best one's weights are output_dir's own
        if checkpoint.startswith("checkpoint-"):
            shutil.rmtree(os.path.join(output_dir, checkpoint))


def card(plan: dict, results: Results, name: str) -> None:
    """The encoder's model card, from its files and its evaluation and fine-tuning results."""
    encoder = os.path.join(plan["out"], name, "encoder")
    repo = f"cifar10-{name}-{_slug(results.encoder(name)['backbone'])}"
    maskvision(
        "card",
        encoder,
        "--results",
        os.path.join(plan["out"], name, "finetuned", "eval_results.json"),
        "--repo-id",
        f"{plan['hub_org']}/{repo}",
        "--output",
        os.path.join(plan["cards"], f"{repo}-encoder.md"),
    )
    results.encoder(name)["card"] = f"{repo}-encoder.md"


def curve(plan: dict, results: Results, method: str) -> None:
    """k-NN top-1 (k = 20) of each checkpoint of the run (ExtreMA's with its class-attention pooling)."""
    run = os.path.join(plan["out"], method)
    checkpoints = sorted((d for d in os.listdir(run) if d.startswith("checkpoint-")), key=lambda d: int(d[11:]))
    points = results.data["curve"].setdefault(method, {"0": results.encoder(floor(plan, method)).get("knn_top1")})
    for checkpoint in checkpoints:
        path = os.path.join(run, checkpoint)
        epoch = _read_json(os.path.join(path, "trainer_state.json"))["epoch"]
        output = os.path.join(path, "knn.json")
        maskvision(
            "eval",
            "knn",
            "--model",
            path,
            *labelled_data(plan),
            *plan["eval_limits"],
            "--batch_size",
            "512",
            "--no_cache",
            "true",
            "--k",
            "20",
            "--output_file",
            output,
        )
        points[f"{epoch:g}"] = _top1(output, "knn", k=20)
        results.write()


# ---------------------------------------------------------------------------------------------------------- run
def run(plan: dict, on_write=None) -> Results:
    results = Results(plan, on_write)
    os.makedirs(plan["out"], exist_ok=True)
    results.write()
    tokenizer = None
    if "beit" in plan["methods"]:
        tokenizer = results.step("tokenizer", train_tokenizer, plan, results)
    for method in plan["methods"]:
        if method == "beit" and tokenizer is None:
            continue
        results.step(f"pretrain {method}", pretrain, plan, results, method, tokenizer)
    trained = [m for m in plan["methods"] if os.path.isdir(os.path.join(plan["out"], m, "encoder"))]
    floors = {}  # one random initialisation per architecture, of the first method trained on it
    for method in trained:
        floors.setdefault(floor(plan, method), method)
    for name, method in floors.items():
        results.step(f"random init {name}", random_init, plan, results, name, method)
    encoders = list(floors) + trained
    for name in encoders:
        results.step(f"evaluate {name}", evaluate, plan, results, name)
    for name in encoders:
        results.step(f"finetune {name}", finetune, plan, results, name)
        if plan["cards"]:
            results.step(f"card {name}", card, plan, results, name)
    if plan["curve_every"]:
        for method in trained:
            results.step(f"curve {method}", curve, plan, results, method)
    results.write()
    return results


if __name__ == "__main__":
    completed = run(settings())
    print(completed.markdown())
