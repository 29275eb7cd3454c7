#!/usr/bin/env bash
# Continued pretraining on CIFAR-10 at a CPU budget: an ExtreMA encoder made here (SOURCE_STEPS from scratch) is
# continued for STEPS more steps, against the same STEPS from scratch, all evaluated by k-NN (k = 20).
#
#   bash examples/reference/continue_cifar10.sh                 # README "Continue from a public checkpoint"
#   SMOKE=1 bash examples/reference/continue_cifar10.sh         # every command for 2 steps
#
# Runs (ViT 128 x 4 layers, 32 px, patch 4, 80% x 4 masks, batch 64; a run whose encoder exists is kept):
#   random-init          the same encoder untrained
#   source               SOURCE_STEPS from scratch (lr 1e-3, 10% warm-up)
#   scratch              STEPS from scratch, the same recipe
#   encoder-low-lr       STEPS from source/encoder (a stock BeitModel: heads new), lr 2.5e-4, 2% warm-up
#   encoder-same-lr      STEPS from source/encoder, the scratch recipe (lr 1e-3, 10% warm-up)
#   run-low-lr           STEPS from the source run itself (heads and teacher kept), lr 2.5e-4, 2% warm-up
set -euo pipefail

DATA=${DATA:-../shared/data/cifar10}
OUT=${OUT:-runs/cifar10-continue}
SOURCE_STEPS=${SOURCE_STEPS:-200}
STEPS=${STEPS:-100}
MAX_TRAIN=${MAX_TRAIN:-5000}       # k-NN memory: random training images; queries: the whole test split
LIMITS=(--max_train_samples "$MAX_TRAIN")
if [[ -n "${SMOKE:-}" ]]; then SOURCE_STEPS=2 STEPS=2 LIMITS=(--max_train_samples 128 --max_eval_samples 64); fi
mkdir -p "$OUT"
TIME=(/usr/bin/time -f "%C: %e s wall, %U+%S s CPU" -a -o "$OUT/cpu_times.txt")  # appended: a rerun adds its own

VIT=(--model_size tiny --hidden_size 128 --num_hidden_layers 4 --num_attention_heads 4 --image_size 32 --patch_size 4)
COMMON=(--dataset "$DATA/train.parquet" --per_device_train_batch_size 64 --save_strategy no --logging_steps 25
        --min_crop_scale 0.35 --drop_path_rate 0.0 --num_masks 4 --projector_hidden_size 512 --projection_size 128
        --calibration_steps 50 --disable_tqdm true)
SCRATCH=(--learning_rate 1e-3 --warmup_steps 0.1)
LOW_LR=(--learning_rate 2.5e-4 --warmup_steps 0.02)

pretrain() {  # NAME ARGS...: a run already in $OUT/NAME (its encoder written) is kept
    local name=$1
    shift
    [[ -d "$OUT/$name/encoder" ]] || "${TIME[@]}" maskvision pretrain extrema --output_dir "$OUT/$name" "$@"
}
pretrain source "${VIT[@]}" "${COMMON[@]}" "${SCRATCH[@]}" --max_steps "$SOURCE_STEPS"
pretrain scratch "${VIT[@]}" "${COMMON[@]}" "${SCRATCH[@]}" --max_steps "$STEPS"
pretrain encoder-low-lr --model_name_or_path "$OUT/source/encoder" "${COMMON[@]}" "${LOW_LR[@]}" --max_steps "$STEPS"
pretrain encoder-same-lr --model_name_or_path "$OUT/source/encoder" "${COMMON[@]}" "${SCRATCH[@]}" --max_steps "$STEPS"
pretrain run-low-lr --model_name_or_path "$OUT/source" "${COMMON[@]}" "${LOW_LR[@]}" --max_steps "$STEPS"
python - "$OUT/source" "$OUT/random-init" <<'PY'
import os
import sys

import torch
from maskvision import ExtremaConfig, ExtremaForPreTraining

torch.manual_seed(0)  # the source's architecture, untrained (the export's [CLS] slot uncalibrated: zeros)
model = ExtremaForPreTraining(ExtremaConfig.from_pretrained(sys.argv[1]))
model.save_pretrained(sys.argv[2])
model.export_encoder(os.path.join(sys.argv[2], "encoder"))
PY

# Two features per run: the stock encoder's mean-pooled tokens (what fine-tuning and pipelines get) and ExtreMA's own
# representation, the teacher's class-attention pooling (the pretraining checkpoint).
RUNS=(random-init source scratch encoder-low-lr encoder-same-lr run-low-lr)
for run in "${RUNS[@]}"; do
    "${TIME[@]}" maskvision eval knn --model "$OUT/$run/encoder" --dataset "$DATA/train.parquet" \
        --eval_dataset "$DATA/test.parquet" "${LIMITS[@]}" --k 20
    "${TIME[@]}" maskvision eval knn --model "$OUT/$run" --pooling class_attention --dataset "$DATA/train.parquet" \
        --eval_dataset "$DATA/test.parquet" "${LIMITS[@]}" --k 20
done

python - "$OUT" "${RUNS[@]}" <<'PY'
import json
import os
import sys

out = sys.argv[1]


def knn_top1(folder: str) -> str:
    with open(os.path.join(folder, "eval_results.json"), encoding="utf-8") as handle:
        records = json.load(handle)["results"]
    top1 = [r["value"] for r in records if r["protocol"] == "knn" and r["metric"] == "top1_accuracy"]
    return f"{100 * top1[-1]:.1f}"


print("| run | pretraining steps | first / last logged loss | k-NN top-1 %: encoder (mean) | class attention |")
print("| --- | --- | --- | --- | --- |")
for run in sys.argv[2:]:
    folder = os.path.join(out, run)
    state = os.path.join(folder, "trainer_state.json")
    steps, losses = 0, "—"
    if os.path.isfile(state):
        with open(state, encoding="utf-8") as handle:
            state = json.load(handle)
        logged = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
        steps, losses = state["global_step"], f"{logged[0]:.3f} / {logged[-1]:.3f}"
    print(f"| {run} | {steps} | {losses} | {knn_top1(os.path.join(folder, 'encoder'))} | {knn_top1(folder)} |")
PY
