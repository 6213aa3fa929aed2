#!/usr/bin/env bash
# Issue 23: retrain the four small style models (width 8, pixel shuffle, margin 16) with the objective
# chosen in findings.md, ONE AFTER ANOTHER on ONE thread. Re-running resumes each run from its
# checkpoint and skips the finished ones, so it can be stopped and started again at any time.
#
#   start:  setsid nohup bash bench/experiments/style-objective/train.sh >> bench/experiments/style-objective/train/train.log 2>&1 &
#   watch:  bash bench/experiments/style-objective/train.sh status
#   A/B:    bash bench/experiments/style-objective/train.sh ab starry_night_small 300   (init vs scratch, findings.md)
#   w16:    bash bench/experiments/style-objective/train.sh w16 starry_night_small 3000  (width-16 trial, findings.md;
#           takes the queue's lock, so it runs when the queue does not)
#   probes: bash bench/experiments/style-objective/train.sh sw starry_night_small 1000 0.003   (style weight 3e-3)
#           bash bench/experiments/style-objective/train.sh deep12 starry_night_small 1000       (+ fire6-9 at 1/12)
#           bash bench/experiments/style-objective/train.sh deep6 the_scream_small 1500          (+ fire6-9 at 1/6)
#           bash bench/experiments/style-objective/train.sh deep12ft the_scream_small 1000       (then lr 1e-4)
#           bash bench/experiments/style-objective/train.sh deep12cw the_scream_small 1500 0.5   (content weight 0.5)
#           bash bench/experiments/style-objective/train.sh deep12cwmore starry_night_small 1000 0.5  (then 1000 more)
#           (findings.md: short runs from the shipped model on a changed objective; the queue's lock too)
#   two:    QUEUE=queue2 bash …/train.sh …   (a second queue on the other core; never two queues on one model)
#   stop:   kill -TERM -- -$(cat bench/experiments/style-objective/train/queue.pid)   (the whole queue: the step in
#           progress finishes, the checkpoint is written, no further run starts; start again to resume)
#
# Queue: for each style, main run (STEPS at lr 1e-3, from INIT) → train/<name>.safetensors (+ .json entry,
# .ckpt checkpoint every 250 steps, <name>_previews/ every 500 steps); when all four are done, the
# optional short stage: FT_STEPS at lr 1e-4 from that model → train/<name>_ft.safetensors (+ .json/.ckpt/previews).
# Environment: LIVESTYLE_CODE (the livestyle tree to train with: default this repository; the runs of
# 2026-12-06 started from a frozen copy of the code before issue 19's restructuring, /work/frozen,
# which resumes identically), PYTHON, LIVESTYLE_DATA.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
CODE="${LIVESTYLE_CODE:-$REPO}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
DATA="${LIVESTYLE_DATA:-$REPO/../shared/data}"
OUT="$HERE/train"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TQDM_MININTERVAL=120 PYTHONUNBUFFERED=1
export LIVESTYLE_LOSSNET_WEIGHTS="${LIVESTYLE_LOSSNET_WEIGHTS:-$DATA/lossnets/squeezenet1_1_imagenet.safetensors}"

# --- the library entry point (the only lines that name livestyle modules) ---
# `livestyle ARGS…` = the CLI of $CODE; -P keeps the working directory's own livestyle/ off sys.path;
# one thread for torch and OpenCV, and the photo decoding's thread pool cut to one worker too.
livestyle() {
  PYTHONPATH="$CODE" "$PY" -P -c '
import sys, cv2, torch
cv2.setNumThreads(1); torch.set_num_threads(1)
try:
    import livestyle.training.run as _train
except ImportError:  # the code before issue 19
    import livestyle.train as _train
_decode = _train.decode_images
_train.decode_images = lambda *a, **k: _decode(*a, **{**k, "workers": 1})
from livestyle.cli import main
sys.exit(main())' "$@"
}
# ---

STEPS=${STEPS:-6000}  # main stage, lr 1e-3 (kandinsky ran 6000; the other three 3000: findings.md, plateau)
FT_STEPS=${FT_STEPS:-1000}  # optional short stage, lr 1e-4 (as the shipped models had)
INIT=shipped     # "shipped": start from weights/<name>.safetensors (A/B in findings.md); "scratch": random weights
NAMES=(kandinsky_small starry_night_small the_scream_small wave_small)
declare -A PAINTING=([kandinsky_small]=composition_vii.jpg [starry_night_small]=starry_night.jpg
                     [the_scream_small]=the_scream.jpg [wave_small]=wave.jpg)
# The chosen objective (findings.md; run.py's CHOSEN and train_options()): one setting for all four styles,
# today's taps and tap weights with the style weight x3 (5e-4 → 1.5e-3) and the style image at 384 px.
TAPS="--content-taps fire4 --style-taps conv1,fire2,fire3,fire4,fire5"
TAP_WEIGHTS="--style-tap-weights conv1=20,fire2=1.5,fire3=1.5,fire4=1,fire5=5"
COMMON_OBJECTIVE="$TAPS $TAP_WEIGHTS --style-weight 0.0015 --style-size 384 --content-weight 1 --tv-weight 10000"
declare -A OBJECTIVE=(
  [kandinsky_small]="$COMMON_OBJECTIVE"
  [starry_night_small]="$COMMON_OBJECTIVE"
  [the_scream_small]="$COMMON_OBJECTIVE"
  [wave_small]="$COMMON_OBJECTIVE"
)
# The shipped models' recipe otherwise (weights/catalog.json).
ARCH=(--width 8 --blocks 5 --pixel-shuffle --margin 16 --variant small)
DATASET=(--dataset "$DATA/train/caltech101_subset" --data-limit 1200 --image-size 256 --batch-size 4)
RUN=(--device cpu --checkpoint-every 250 --preview-every 500)

log() { echo "[$(date '+%F %T')] $*"; }
STOPPING=0
trap 'STOPPING=1' TERM  # the training process gets the TERM too: it checkpoints and exits 143

one_line_per_update() {  # the progress bar's \r updates as lines; outlives a TERM so the last words get through
  (trap '' TERM; exec stdbuf -o0 tr '\r' '\n')
}

finished() {  # finished ENTRY.json STEPS: the run wrote its entry after all its steps
  [ -f "$1" ] && "$PY" -c 'import json, sys
e = json.load(open(sys.argv[1]))["recipe"]
sys.exit(0 if e["steps"] >= int(sys.argv[2]) and not e.get("stopped_at_time_limit") else 1)' "$1" "$2"
}

train_one() {  # train_one NAME OUTSTEM STEPS LR SEED INITFILE
  local name=$1 stem=$2 steps=$3 lr=$4 seed=$5 init=$6
  local out="$OUT/$stem.safetensors" ckpt="$OUT/$stem.ckpt"
  if finished "$OUT/$stem.json" "$steps"; then log "$stem: finished, skipped"; return 0; fi
  local extra=() how="start"
  if [ -n "$init" ] && [ -f "$init" ]; then extra+=(--init "$init"); how+=", init $init"
  elif [ -n "$init" ]; then log "$stem: init file $init is missing"; [ -f "$ckpt" ] || return 1; fi
  if [ -f "$ckpt" ]; then extra+=(--resume); how+=", resuming from $ckpt"; fi
  log "$stem: $how ($steps steps at lr $lr)"
  # shellcheck disable=SC2086  # OBJECTIVE holds several options
  livestyle train style --style-image "$DATA/styles/${PAINTING[$name]}" "${DATASET[@]}" "${ARCH[@]}" "${RUN[@]}" \
    ${OBJECTIVE[$name]} --iterations "$steps" --lr "$lr" --seed "$seed" "${extra[@]}" \
    -o "$out" --checkpoint "$ckpt" --preview-dir "$OUT/${stem}_previews" --name "$stem" 2>&1 | one_line_per_update
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ] || [ "$STOPPING" = 1 ]; then
    log "$stem: stopped (exit $rc); checkpoint kept, run train.sh again to resume"; exit 143
  fi
  [ "$rc" -ne 0 ] && log "$stem: FAILED (exit $rc)" && return "$rc"
  log "$stem: done"
}

status() {
  for name in "${NAMES[@]}"; do
    for stem in "$name" "${name}_ft"; do
      [ -f "$OUT/$stem.ckpt" ] || continue
      OMP_NUM_THREADS=1 "$PY" -c 'import sys, torch
s = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
h = s["history"]; n = min(10, len(h["step"]))
last = ", ".join("%s %.4g" % (k, sum(v[-n:]) / n) for k, v in h.items() if k != "step" and v)
step, sec = s["step"], s["seconds"]
print("%s: step %d, %.2f s/step over %.0f s; last %d logs: %s" % (sys.argv[2], step, sec / max(1, step), sec, n, last))' \
        "$OUT/$stem.ckpt" "$stem"
    done
  done
}

ab() {  # ab NAME STEPS: the short A/B of findings.md: --init from the shipped model vs random weights,
        # same objective, seed and data; models in cache/ab/, measured into results/ab_init/
  local name=$1 steps=$2 dir="$HERE/cache/ab"
  mkdir -p "$dir"
  for arm in scratch shipped; do
    local init=()
    [ "$arm" = shipped ] && init=(--init "$REPO/weights/$name.safetensors")
    finished "$dir/${name}_$arm.json" "$steps" && continue
    rm -f "$dir/${name}_$arm.ckpt"
    log "A/B $name $arm: $steps steps"
    # shellcheck disable=SC2086
    livestyle train style --style-image "$DATA/styles/${PAINTING[$name]}" "${DATASET[@]}" "${ARCH[@]}" --device cpu \
      ${OBJECTIVE[$name]} --iterations "$steps" --lr 1e-3 --seed 0 "${init[@]}" --checkpoint-every 0 \
      --preview-every 0 -o "$dir/${name}_$arm.safetensors" --name "${name}_$arm" 2>&1 | one_line_per_update
  done
  PYTHONPATH="$REPO" "$PY" -P "$HERE/run.py" eval-models --style "${name%_small}" --out "$HERE/results/ab_init" \
    --label "ab${steps}" "$dir/${name}_scratch.safetensors" "$dir/${name}_shipped.safetensors"
}

w16() {  # w16 NAME STEPS: the width-16 trial of findings.md (issue 23: "if width 8 cannot follow"): the queue's
         # objective, data and seed, width 16, from random weights (there is no width-16 model to start from)
  local -a ARCH=(--width 16 --blocks 5 --pixel-shuffle --margin 16 --variant small)
  train_one "$1" "${1}_w16" "$2" 1e-3 0 ""
}

probe() {  # probe NAME STEPS LABEL OBJECTIVE…: STEPS at 1e-3 from the chosen-objective model train/NAME.safetensors
           # (what weights/ held when the probes ran) with the objective options given → train/NAME_LABEL.*
  local name=$1 steps=$2 label=$3
  shift 3
  OBJECTIVE[$name]="$*"
  train_one "$name" "${name}_$label" "$steps" 1e-3 0 "$OUT/$name.safetensors"
}
# The chosen objective plus fire6-fire9 at 1/12 of the balanced weights (findings.md), i.e. the deep taps at the
# absolute weight of the study's deepq x1 cell, beside today's shallow taps at x3.
DEEP12="$TAPS,fire6,fire7,fire8,fire9 $TAP_WEIGHTS,fire6=0.417,fire7=8.33,fire8=8.33,fire9=250 --style-weight 0.0015 \
--style-size 384 --content-weight 1 --tv-weight 10000"
DEEP6="$TAPS,fire6,fire7,fire8,fire9 $TAP_WEIGHTS,fire6=0.833,fire7=16.7,fire8=16.7,fire9=500 --style-weight 0.0015 \
--style-size 384 --content-weight 1 --tv-weight 10000"  # the deep taps at 1/6 (the_scream's probe)

mkdir -p "$OUT"
if [ "${1:-}" = status ]; then status; exit 0; fi
if [ "${1:-}" = ab ]; then ab "$2" "$3"; exit 0; fi
QUEUE="${QUEUE:-queue}"  # a second queue beside the first (the other core): QUEUE=queue2, its own lock and pid file
exec 9>"$OUT/$QUEUE.lock"
if ! flock -n 9; then echo "another train.sh queue holds $OUT/$QUEUE.lock" >&2; exit 1; fi
echo $$ > "$OUT/$QUEUE.pid"
log "queue start: code $CODE, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), OMP_NUM_THREADS=$OMP_NUM_THREADS"
if [ "${1:-}" = w16 ]; then w16 "$2" "$3"; log "w16 end"; exit 0; fi
if [ "${1:-}" = sw ]; then probe "$2" "$3" "sw$4" "${COMMON_OBJECTIVE/--style-weight 0.0015/--style-weight $4}"; exit 0; fi
if [ "${1:-}" = deep12 ]; then probe "$2" "$3" deep12 "$DEEP12"; exit 0; fi
if [ "${1:-}" = deep6 ]; then probe "$2" "$3" deep6 "$DEEP6"; exit 0; fi
if [ "${1:-}" = deep12cw ]; then  # deep12cw NAME STEPS WEIGHT: deep12 with the content weight set to WEIGHT
  probe "$2" "$3" "deep12_cw$4" "${DEEP12/--content-weight 1/--content-weight $4}"; exit 0
fi
if [ "${1:-}" = deep12cwmore ]; then  # deep12cwmore NAME STEPS WEIGHT: STEPS more at 1e-3 (seed 1) after deep12cw
  OBJECTIVE[$2]="${DEEP12/--content-weight 1/--content-weight $4}"
  train_one "$2" "${2}_deep12_cw${4}_more" "$3" 1e-3 1 "$OUT/${2}_deep12_cw${4}.safetensors"; exit 0
fi
if [ "${1:-}" = deep12ft ]; then  # deep12ft NAME STEPS: the short stage at lr 1e-4 (seed 7) after train/NAME_deep12
  OBJECTIVE[$2]="$DEEP12"; train_one "$2" "${2}_deep12_ft" "$3" 1e-4 7 "$OUT/${2}_deep12.safetensors"; exit 0
fi

for name in "${NAMES[@]}"; do
  init=""
  [ "$INIT" = shipped ] && init="$REPO/weights/$name.safetensors"
  train_one "$name" "$name" "$STEPS" 1e-3 0 "$init"
done
for name in "${NAMES[@]}"; do
  if finished "$OUT/$name.json" "$STEPS"; then
    train_one "$name" "${name}_ft" "$FT_STEPS" 1e-4 7 "$OUT/$name.safetensors"
  fi
done
log "queue end"
