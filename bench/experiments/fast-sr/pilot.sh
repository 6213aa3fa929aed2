#!/usr/bin/env bash
# Pilot runs for the fast ×4 network: width/blocks and learning rate, 1,500 steps each (batch 16,
# 128² HR patches), scored on Set5. One thread (another job shares this 2-core CPU). Models and
# checkpoints go to $WORK (default /tmp/fast-sr-pilot); each run's entry is copied to results/pilot/.
# Run from the repository root: bash bench/experiments/fast-sr/pilot.sh
set -euo pipefail
export OMP_NUM_THREADS=1
WORK=${WORK:-/tmp/fast-sr-pilot}
DATA=${DATA:-../shared/data}
HERE=bench/experiments/fast-sr/results/pilot
mkdir -p "$WORK" "$HERE"
run() {  # name, then extra options
    local name=$1; shift
    [ -f "$HERE/$name.json" ] && return 0
    .venv/bin/livestyle train superres --scale 4 --family subpixel --dataset "$DATA/train/bsds500_train_test" \
        --patch-size 128 --batch-size 16 --iterations 1500 --device cpu --no-progress --preview-every 0 \
        --eval-set Set5="$DATA/sr/CSet5" -o "$WORK/$name.safetensors" "$@"
    cp "$WORK/$name.json" "$HERE/$name.json"
}
run w48b3-lr1e-4 --width 48 --blocks 3 --lr 1e-4
run w48b3-lr1e-3 --width 48 --blocks 3 --lr 1e-3
run w64b2-lr1e-3 --width 64 --blocks 2 --lr 1e-3
run w32b4-lr1e-3 --width 32 --blocks 4 --lr 1e-3
# second round, after the first showed depth counts more than width at the same work
run w32b6-lr1e-3 --width 32 --blocks 6 --lr 1e-3
run w48b4-lr1e-3 --width 48 --blocks 4 --lr 1e-3
# third round: deeper still at width 32
run w32b8-lr1e-3 --width 32 --blocks 8 --lr 1e-3
# ×8: 1,000 steps on 192² patches (later options override the ×4 ones above)
run x8-w32b8-lr1e-3 --scale 8 --patch-size 192 --iterations 1000 --width 32 --blocks 8 --lr 1e-3
run x8-w48b6-lr1e-3 --scale 8 --patch-size 192 --iterations 1000 --width 48 --blocks 6 --lr 1e-3
