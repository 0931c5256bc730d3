#!/usr/bin/env bash
# Memory soak: the real app window under Xvfb (software Vulkan), driven by xdotool through cycles of
# every kind of action — pointer moves over the canvas and the panels, wheel zooms, strokes and undos,
# Generate (4 results each), interpolation slider drags — with its resident memory (VmRSS) logged after
# each phase. The first cycle is warm-up; the run fails when RSS then grows by more than --bound MB.
#
#   bash .ci/soak.sh [--bin PATH] [--cycles N] [--bound MB] [--log FILE] [--minimal]
#
# Defaults: target/release/cmpaint, 10 cycles (10,000 actions: 1,000 results, 1,000 slider moves),
# 50 MB. --minimal drives examples/minimal_window instead (pointer moves only): the windowing and
# driver stack without cmpaint. Needs: xvfb xdotool mesa-vulkan-drivers. Coordinates are those of the
# default 1280×820 window and panel layout (see .ci/screenshots.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/cmpaint CYCLES=10 BOUND=50 LOG=/tmp/cmpaint-soak.csv MINIMAL=
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift ;;
    --cycles) CYCLES=$2; shift ;;
    --bound) BOUND=$2; shift ;;
    --log) LOG=$2; shift ;;
    --minimal) MINIMAL=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
export DISPLAY=:${SOAK_DISPLAY:-98}
Xvfb "$DISPLAY" -screen 0 1280x820x24 >/dev/null 2>&1 &
XVFB=$!
APP=
trap 'kill $APP $XVFB 2>/dev/null || true' EXIT
sleep 1
export XDG_RUNTIME_DIR=$(mktemp -d) CMPAINT_DATA_DIR=$(mktemp -d)
if [ -n "$MINIMAL" ]; then
  BIN=$(dirname "$BIN")/examples/minimal_window
  "$BIN" >/tmp/cmpaint-soak-app.log 2>&1 &
else
  "$BIN" app >/tmp/cmpaint-soak-app.log 2>&1 &
fi
APP=$!
sleep 8                                   # window up, built-in model loaded
xdotool search --sync --name cmpaint windowfocus >/dev/null
rss() { awk '/VmRSS/ {print $2}' /proc/$APP/status; }
ACTIONS=0
log() { echo "$1,$2,$ACTIONS,$(rss)" >> "$LOG"; }
echo "cycle,phase,actions,rss_kb" > "$LOG"

moves() {                                 # $1 pointer moves, alternating canvas and side panel
  for i in $(seq 1 "$1"); do
    if [ $((i / 50 % 2)) -eq 0 ]; then xdotool mousemove $((300 + i % 500)) $((150 + (i * 7) % 500))
    else xdotool mousemove $((900 + i % 300)) $((100 + (i * 11) % 600)); fi
  done
  ACTIONS=$((ACTIONS + $1))
}
wheel() {                                 # $1 wheel steps over the canvas, in and out
  xdotool mousemove 560 410
  for i in $(seq 1 "$1"); do xdotool click $([ $((i / 10 % 2)) -eq 0 ] && echo 4 || echo 5); done
  xdotool key ctrl+0
  ACTIONS=$((ACTIONS + $1))
}
strokes() {                               # $1 brush strokes, each undone
  xdotool key b
  for i in $(seq 1 "$1"); do
    xdotool mousemove $((350 + i * 13 % 300)) 250 mousedown 1
    for x in 1 2 3 4 5 6 7 8; do xdotool mousemove $((350 + i * 13 % 300 + x * 25)) $((250 + x * 30)); done
    xdotool mouseup 1 key ctrl+z
  done
  ACTIONS=$((ACTIONS + 10 * $1))
}
generate() {                              # $1 clicks of Generate (Ctrl+Enter): 4 results each
  xdotool mousemove 560 700
  for _ in $(seq 1 "$1"); do xdotool key ctrl+Return; sleep 0.25; done
  ACTIONS=$((ACTIONS + $1))
}
slider() {                                # $1 moves of the interpolation slider's knob (α)
  xdotool mousemove 955 621 mousedown 1
  for i in $(seq 1 "$1"); do xdotool mousemove $((906 + (i * 7) % 100)) 621; sleep 0.01; done
  xdotool mouseup 1
  ACTIONS=$((ACTIONS + $1))
}

log 0 start
for c in $(seq 1 "$CYCLES"); do
  if [ -n "$MINIMAL" ]; then
    moves 1000; log "$c" moves
    continue
  fi
  moves 475; log "$c" moves
  wheel 40; log "$c" wheel
  strokes 20; log "$c" strokes
  generate 25; log "$c" generate
  slider 100; log "$c" slider
  moves 160; log "$c" moves
  sleep 2; log "$c" idle
done
kill -0 $APP 2>/dev/null || { echo "the app is gone: see /tmp/cmpaint-soak-app.log" >&2; exit 1; }
warm=$(awk -F, '$1 == 1 { v = $4 } END { print v }' "$LOG")
last=$(tail -1 "$LOG" | cut -d, -f4)
peak=$(awk -F, 'NR > 1 && $4 > p { p = $4 } END { print p }' "$LOG")
growth=$(( (last - warm) / 1024 ))
echo "soak: $ACTIONS actions in $CYCLES cycles; RSS after warm-up $((warm / 1024)) MB, at the end $((last / 1024)) MB (peak $((peak / 1024)) MB): growth $growth MB (bound $BOUND MB); log $LOG"
[ "$growth" -le "$BOUND" ] || { echo "soak: memory grew by $growth MB after warm-up (bound $BOUND MB)" >&2; exit 1; }
