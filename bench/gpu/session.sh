#!/usr/bin/env bash
# One GPU call (≤ 10 minutes) that does the most a fresh 15-minute lease allows:
#   1. train one full style model (default kandinsky; STYLE=starry_night etc.), 240 s of training;
#      SMALL=1 trains its small real-time variant instead (width 8, pixel-shuffle, as shipped);
#   2. the engine latency table of issue 9 (bench/gpu/engines.py: env, checks, style, SR stages).
# Each part has its own timeout and writes under $OUT as it goes, so a slow part cannot eat the other.
# At most 8 files, two folders deep, come back from the device: each part is packed into one
# archive when it ends (train.tgz, engines.tgz), beside status.txt and gpu.txt. Back here: unpack
# them, commit engines/engines-*.json|md to bench/results/ and the model with its entry to weights/.
# The device's Python has no install of livestyle: the jobs import it from the checkout (PYTHONPATH).
#
# Device command (from the repository root; carry bench/carry/caltech101.npz bench/carry/styles
# bench/carry/content bench/carry/lossnets, made by `python bench/gpu/pack_data.py style`):
#     PYTHONUNBUFFERED=1 bash bench/gpu/session.sh
# CPU dry run of the same script (seconds), on a tiny pack made by
# `python bench/gpu/pack_data.py style --limit 8 --out /tmp/carry/caltech101.npz`:
#     TINY=1 CARRY=/tmp/carry OUT=/tmp/gpu_session bash bench/gpu/session.sh
set -u
OUT=$(realpath -m "${OUT:?set OUT to the output folder}")
CARRY=$(realpath -m "${CARRY:-$(dirname "$0")/../carry}")   # pack, styles/, content/, lossnets/
cd "$(dirname "$0")/../.."   # the repository root: the paths below are relative to it
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STYLE=${STYLE:-kandinsky}
declare -A IMAGE=([kandinsky]=composition_vii.jpg [starry_night]=starry_night.jpg [the_scream]=the_scream.jpg
                  [wave]=wave.jpg)
mkdir -p "$OUT/train" "$OUT/engines"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1 || true

if [ -n "${TINY:-}" ]; then
    train_args=(--device cpu --iterations 3 --width 4 --blocks 1 --data-limit 8 --budget-s 30 --gatys "")
    engine_args=(--tiny)
else
    train_args=(--batch-size 16 --iterations 10000 --budget-s 240)
    engine_args=(--stages env checks style sr style-small)
fi

name=$STYLE
if [ -n "${SMALL:-}" ]; then
    name=${STYLE}_small
    train_args+=(--variant small --width 8 --pixel-shuffle)
fi

timeout 360 python3 bench/gpu/train_job.py style --name "$name" \
    --style-image "$CARRY/styles/${IMAGE[$STYLE]}" --pack "$CARRY/caltech101.npz" \
    --carry "$CARRY" --out "$OUT/train" "${train_args[@]}" > "$OUT/train/stdout.txt" 2>&1
echo "train: exit $?" | tee -a "$OUT/status.txt"
tar -C "$OUT" -czf "$OUT/train.tgz" train && rm -rf "$OUT/train"

timeout 200 python3 bench/gpu/engines.py --out "$OUT/engines" "${engine_args[@]}" > "$OUT/engines/stdout.txt" 2>&1
echo "engines: exit $?" | tee -a "$OUT/status.txt"
tar -C "$OUT" -czf "$OUT/engines.tgz" engines && rm -rf "$OUT/engines"
