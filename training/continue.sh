#!/usr/bin/env bash
# Start (or resume) the built-in teacher's training in the background, at the lowest priority (it ended on
# 2026-12-01 by issue 13's stopping rule; this resumes it should anyone want more).
# SCHED_IDLE (chrt --idle), not only nice 19: at nice 19 the training still doubled the time of cmpaint's
# kernels, whose threads sleep between operations and waited for the core on every wake-up (cm25m one step
# 120 → 250 ms); as an idle-class task it yields at once.
# It resumes training/runs/edm-c32x2/checkpoint.pt; where that checkpoint was lost (a new machine), it
# restarts from the last committed milestone, $RUN/milestone.safetensors (or, before there was one, the
# shipped teacher, assets/emoji32_teacher.safetensors).
# Arguments are passed on to train_edm.py (e.g. --lr-decay START IMAGES, which the checkpoint then keeps).
# Needs a Python with torch, diffusers and safetensors: PYTHON=/path/to/python (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
RUN=training/runs/edm-c32x2
if pgrep -f "train_edm.py --out $RUN" >/dev/null; then
  echo "already running: tail -f $RUN/stdout.log"
  exit 0
fi
mkdir -p $RUN
init=()
milestone=$RUN/milestone.safetensors
[ -f $milestone ] || milestone=assets/emoji32_teacher.safetensors
[ -f $RUN/checkpoint.pt ] || init=(--init-from $milestone)
nohup chrt --idle 0 nice -n 19 "$PYTHON" training/train_edm.py --out $RUN --arch c32x2 --cpu-minutes "${CPU_MINUTES:-600}" \
  --sample-every 30 "${init[@]}" "$@" >> $RUN/stdout.log 2>&1 &
echo "training in the background (pid $!): tail -f $RUN/stdout.log"
