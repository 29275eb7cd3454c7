#!/usr/bin/env bash
# The CIFAR-10 reference results of the README: random init, BEiT (tokenizer ids and pixel targets), ExtreMA and
# MoBY on one ViT backbone at one budget; each encoder evaluated by k-NN, linear probe and fine-tuning on the test
# split; a model card per encoder (hub_cards/) generated from the results files by `maskvision card`.
#
#     bash examples/reference/cifar10.sh                         # the budget below
#     STEPS=20000 FT_EPOCHS=50 bash examples/reference/cifar10.sh # a GPU budget
#     SMOKE=1 bash examples/reference/cifar10.sh                  # every command with a few steps (the wiring)
#
# DATA holds train.parquet and test.parquet (CIFAR-10 with `image` and `label` columns).
set -euo pipefail

DATA=${DATA:-../shared/data/cifar10}
OUT=${OUT:-runs/cifar10}
CARDS=${CARDS:-hub_cards}
HUB_ORG=${HUB_ORG:-maskvision}  # the cards name the checkpoints HUB_ORG/cifar10-<method>-vit-tiny
STEPS=${STEPS:-2000}          # pretraining optimizer steps per method
BATCH=${BATCH:-128}           # pretraining images per step
TOKENIZER_STEPS=${TOKENIZER_STEPS:-1000}
FT_EPOCHS=${FT_EPOCHS:-5}
CALIBRATION_STEPS=${CALIBRATION_STEPS:-100}  # ExtreMA's export: fits the stock encoder's [CLS] slot
# ViT-Tiny width (192, 3 heads) on 32 px images in 4-pixel patches (64 tokens); DEPTH 12 is ViT-Tiny.
DEPTH=${DEPTH:-12}
VIT=(--model_size tiny --image_size 32 --patch_size 4 --num_hidden_layers "$DEPTH")
LIMITS=()  # MAX_TRAIN / MAX_EVAL: evaluate and fine-tune on random subsets (fixed by the seed)
[[ -n "${MAX_TRAIN:-}" ]] && LIMITS+=(--max_train_samples "$MAX_TRAIN")
[[ -n "${MAX_EVAL:-}" ]] && LIMITS+=(--max_eval_samples "$MAX_EVAL")
if [[ -n "${SMOKE:-}" ]]; then
    STEPS=3 TOKENIZER_STEPS=3 FT_EPOCHS=1 BATCH=16 INSPECT_IMAGES=64 CALIBRATION_STEPS=2
    LIMITS=(--max_train_samples 256 --max_eval_samples 128)
fi
PRETRAIN=(--dataset "$DATA/train.parquet" --max_steps "$STEPS" --per_device_train_batch_size "$BATCH"
          --warmup_steps 0.05 --save_strategy no --logging_steps 50 --min_crop_scale 0.35)

mkdir -p "$OUT" "$CARDS"

# Stage 1 of BEiT: the tiny dVAE (8x8 codes of 32 px images, 512 codes); TOKENIZER=DIR uses a trained one instead.
TOKENIZER=${TOKENIZER:-$OUT/tokenizer}
[[ -d "$TOKENIZER" ]] || maskvision tokenizer train --dataset "$DATA/train.parquet" --output_dir "$TOKENIZER" --model_size tiny \
    --max_steps "$TOKENIZER_STEPS" --per_device_train_batch_size 64 --config_overrides straight_through=true \
    --temperature_end 0.5 --min_crop_scale 0.35 --save_strategy no
maskvision tokenizer inspect "$TOKENIZER" --dataset "$DATA/test.parquet" --max-images "${INSPECT_IMAGES:-2000}"

# Pretraining: the same backbone for every method.
maskvision pretrain beit --tokenizer "$TOKENIZER" --output_dir "$OUT/beit" "${VIT[@]}" "${PRETRAIN[@]}"
maskvision pretrain beit --target pixels --output_dir "$OUT/beit-pixels" "${VIT[@]}" "${PRETRAIN[@]}"
maskvision pretrain extrema --output_dir "$OUT/extrema" "${VIT[@]}" "${PRETRAIN[@]}" --drop_path_rate 0.0 \
    --num_masks 4 --calibration_steps "$CALIBRATION_STEPS"  # 64 patches: 5 masks of 13 visible do not fit, 4 do
maskvision pretrain moby --backbone vit --output_dir "$OUT/moby" "${VIT[@]}" "${PRETRAIN[@]}" --drop_path_rate 0.0 \
    --queue_size 4096
# The floor: the BEiT encoder's architecture with freshly initialised weights.
python - "$OUT/beit-pixels" "$OUT/random-init/encoder" <<'PY'
import sys

import torch
from maskvision import BeitMimConfig, BeitMimForPreTraining

torch.manual_seed(0)
BeitMimForPreTraining(BeitMimConfig.from_pretrained(sys.argv[1])).export_encoder(sys.argv[2])
PY

for method in random-init beit beit-pixels extrema moby; do
    encoder="$OUT/$method/encoder"
    maskvision eval knn --model "$encoder" --dataset "$DATA/train.parquet" --eval_dataset "$DATA/test.parquet" \
        "${LIMITS[@]}"
    maskvision eval linear --model "$encoder" --dataset "$DATA/train.parquet" --eval_dataset "$DATA/test.parquet" \
        "${LIMITS[@]}"
    maskvision finetune --model "$encoder" --dataset "$DATA/train.parquet" --eval_dataset "$DATA/test.parquet" \
        --output_dir "$OUT/$method/finetuned" --num_train_epochs "$FT_EPOCHS" "${LIMITS[@]}"
    maskvision card "$encoder" --results "$OUT/$method/finetuned/eval_results.json" \
        --repo-id "$HUB_ORG/cifar10-$method-vit-tiny" --output "$CARDS/cifar10-$method-vit-tiny-encoder.md"
done
python examples/reference/results_table.py "$OUT" | tee "$OUT/results.md"
