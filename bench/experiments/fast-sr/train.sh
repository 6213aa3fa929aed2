#!/usr/bin/env bash
# Trains x4_fast and x8_fast (SubpixelSRNet) on this CPU with one thread, each in two runs: Adam 1e-3,
# then a shorter run at 1e-4 started from its weights (--init). Checkpoints every 500 steps: rerunning
# this script resumes a stopped run (--resume), and skips runs already done. Models go to $WORK
# (default /tmp/fast-sr); each final entry (with Set5/Set14/BSD68 scores) is copied to results/.
# Shipping into weights/ is a separate, checked step (see findings.md).
# Run from the repository root: nohup bash bench/experiments/fast-sr/train.sh > /tmp/fast-sr/train.log 2>&1 &
set -euo pipefail
export OMP_NUM_THREADS=1
WORK=${WORK:-/tmp/fast-sr}
DATA=${DATA:-../shared/data}
HERE=bench/experiments/fast-sr/results
mkdir -p "$WORK" "$HERE"
EVAL=(--eval-set Set5="$DATA/sr/CSet5" --eval-set Set14="$DATA/sr/CSet14" --eval-set BSD68="$DATA/sr/CBSD68")

run() {  # output stem, then training options
    local stem=$1; shift
    [ -f "$WORK/$stem.safetensors" ] && return 0
    local resume=()
    [ -f "$WORK/$stem.ckpt" ] && resume=(--resume)
    .venv/bin/livestyle train superres --family subpixel --dataset "$DATA/train/bsds500_train_test" \
        --batch-size 16 --device cpu --no-progress --checkpoint-every 500 --preview-every 0 \
        -o "$WORK/$stem.safetensors" "${resume[@]}" "$@"
}

X4=(--scale 4 --width "${X4_WIDTH:-32}" --blocks "${X4_BLOCKS:-6}" --patch-size 128)
run x4_fast_stage1 "${X4[@]}" --lr 1e-3 --iterations "${X4_STEPS:-10000}" --eval-set Set5="$DATA/sr/CSet5"
run x4_fast "${X4[@]}" --lr 1e-4 --iterations "${X4_FINE_STEPS:-2000}" --init "$WORK/x4_fast_stage1.safetensors" \
    --name x4_fast --variant small "${EVAL[@]}"
cp "$WORK/x4_fast.json" "$HERE/x4_fast.json"

X8=(--scale 8 --width "${X8_WIDTH:-48}" --blocks "${X8_BLOCKS:-6}" --patch-size 192)
run x8_fast_stage1 "${X8[@]}" --lr 1e-3 --iterations "${X8_STEPS:-6000}" --eval-set Set5="$DATA/sr/CSet5"
run x8_fast "${X8[@]}" --lr 1e-4 --iterations "${X8_FINE_STEPS:-1500}" --init "$WORK/x8_fast_stage1.safetensors" \
    --name x8_fast --variant small "${EVAL[@]}"
cp "$WORK/x8_fast.json" "$HERE/x8_fast.json"
