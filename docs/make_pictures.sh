#!/usr/bin/env bash
# The pictures of README.md, made on the embedded demo data with short CPU runs:
#   bash docs/make_pictures.sh            (from the repository root; writes docs/*.png, runs go to OUT)
set -euo pipefail
OUT=${OUT:-demo_output}
DOCS=docs
SHOW=(--dataset demo --split test --num_images 3 --tile 64)  # 3 test images, 64 px tiles: PNGs of a few tens of KB

# The demo's dVAE tokenizer (100 steps), then BEiT and ExtreMA at the demo's sizes (32 px, patch 4), shortened.
maskvision demo --stages tokenizer --output-dir "$OUT"
maskvision pretrain beit --dataset demo --tokenizer "$OUT/tokenizer" --output_dir "$OUT/beit" --model_size tiny \
    --image_size 32 --patch_size 4 --hidden_size 128 --num_hidden_layers 6 --num_attention_heads 4 \
    --drop_path_rate 0 --min_crop_scale 0.35 --learning_rate 2e-3 --warmup_steps 0.1 --max_steps 30 \
    --per_device_train_batch_size 32 --logging_steps 5 --save_strategy no --dataloader_num_workers 0
maskvision pretrain extrema --dataset demo --output_dir "$OUT/extrema" --model_size tiny --image_size 32 \
    --patch_size 4 --hidden_size 64 --num_hidden_layers 4 --num_attention_heads 4 --num_masks 4 \
    --projector_hidden_size 256 --projection_size 64 --calibration_steps 50 --per_device_train_batch_size 32 \
    --max_steps 60 --learning_rate 1e-3 --warmup_steps 0.1 --logging_steps 5 --save_strategy no \
    --dataloader_num_workers 0

maskvision preview --method beit --tokenizer "$OUT/tokenizer" --image_size 32 --patch_size 4 --min_crop_scale 0.35 \
    "${SHOW[@]}" --output "$DOCS/preview_beit.png"
maskvision preview --method extrema --image_size 32 --patch_size 4 --num_masks 4 "${SHOW[@]}" \
    --output "$DOCS/preview_extrema.png"
maskvision preview --method moby --image_size 32 --patch_size 4 --window_size 4 --min_crop_scale 0.35 "${SHOW[@]}" \
    --output "$DOCS/preview_moby.png"
maskvision visualize beit "$OUT/beit" "${SHOW[@]}" --output "$DOCS/beit_predictions.png"
maskvision visualize attention "$OUT/extrema/encoder" "${SHOW[@]}" --output "$DOCS/attention.png"
maskvision visualize pca "$OUT/extrema/encoder" "${SHOW[@]}" --output "$DOCS/pca.png"
cp "$OUT/extrema/training_curves.png" "$DOCS/training_curves.png"  # written by the run itself
