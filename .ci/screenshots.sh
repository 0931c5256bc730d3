#!/usr/bin/env bash
# Makes the README screenshots from the real window under Xvfb (software Vulkan via lavapipe):
#   bash .ci/screenshots.sh [path/to/cmpaint]
# Needs: apt-get install xvfb xdotool imagemagick mesa-vulkan-drivers
# Clicks at fixed window coordinates (the default 1280×820 window, default panel layout): after a
# layout change, take one screenshot by hand and update the coordinates.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/cmpaint}
OUT=assets/screenshots
mkdir -p "$OUT"
export DISPLAY=:97
Xvfb $DISPLAY -screen 0 1280x820x24 >/dev/null 2>&1 &
XVFB=$!
APP=
trap 'kill $APP $XVFB 2>/dev/null || true' EXIT
sleep 1
export XDG_RUNTIME_DIR=$(mktemp -d) CMPAINT_DATA_DIR=$(mktemp -d)
click() { xdotool mousemove "$1" "$2" click 1; sleep "${3:-1}"; }
shot() { import -window root "$OUT/$1.png"; echo "wrote $OUT/$1.png"; }
# a left-button drag from (x0, y0) to (x1, y1) in eight moves
drag() {
  xdotool mousemove "$1" "$2" mousedown 1; sleep 0.1
  for i in 1 2 3 4 5 6 7 8; do
    xdotool mousemove $(( $1 + ($3 - $1) * i / 8 )) $(( $2 + ($4 - $2) * i / 8 )); sleep 0.05
  done
  xdotool mouseup 1; sleep 0.3
}
start() {
  "$BIN" app "$@" >/tmp/cmpaint-screenshots.log 2>&1 &
  APP=$!
  sleep 6                                 # window up, built-in model loaded
  xdotool search --sync --name cmpaint windowfocus
}

# 1. Generate from a blank canvas: 4 images, the first on the canvas, all in History.
start
click 1005 456 4                          # Generate images
xdotool mousemove 600 700
shot generate

# 2. Paint a mask over the top half with the mask brush (M, size up) and inpaint it.
click 41 107 0.3                          # Mask tool
for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do xdotool key bracketright; done
xdotool mousemove 330 170 mousedown 1
for x in 380 460 540 620 700 780 840; do xdotool mousemove $x 180; sleep 0.05; done
for x in 840 760 680 600 520 440 360 330; do xdotool mousemove $x 280; sleep 0.05; done
xdotool mouseup 1; sleep 0.5
shot mask
click 933 506 8                           # Inpaint
click 49 341 0.5                          # Clear mask (below Erase mask), to see the result
xdotool mousemove 600 700
shot inpaint
kill $APP; sleep 1

# 3. A canvas larger than the model: three generated emoji on a 128×64 picture, opened at its own
#    size; the frame moved (Frame tool, V) and enlarged from a corner handle to 64² (scaled to 32²).
"$BIN" generate --class 1 --batch 3 --separate --seed 5 -o /tmp/cmpaint-shot.png 2>/dev/null
convert /tmp/cmpaint-shot_00{0,1,2}.png +append -bordercolor white -border 16x16 /tmp/cmpaint-scene.png
start /tmp/cmpaint-scene.png
xdotool key ctrl+0 v; sleep 0.3           # fit (400 %), Frame tool
drag 561 410 753 474                      # move the frame to the bottom-right
drag 689 410 561 282                      # its top-left handle: 64² on the right half
xdotool mousemove 600 700
shot frame

# 4. Outpaint Right twice, then Left twice: the 128×64 picture becomes 256×64.
click 179 498 2; click 179 498 2          # Outpaint: Right
click 88 498 2; click 88 498 2            # Outpaint: Left
xdotool mousemove 600 700 key ctrl+0; sleep 1
shot outpaint
kill $APP $XVFB 2>/dev/null || true
