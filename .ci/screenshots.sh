#!/usr/bin/env bash
# Makes the README screenshots from the real window under Xvfb (software Vulkan via lavapipe):
#   bash .ci/screenshots.sh [path/to/cmpaint]
# Needs: apt-get install xvfb xdotool imagemagick mesa-vulkan-drivers
# Clicks at fixed window coordinates (the default 1280×820 window, default panel layout).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/cmpaint}
OUT=assets/screenshots
mkdir -p "$OUT"
export DISPLAY=:97
Xvfb $DISPLAY -screen 0 1280x820x24 >/dev/null 2>&1 &
XVFB=$!
trap 'kill $APP $XVFB 2>/dev/null || true' EXIT
sleep 1
export XDG_RUNTIME_DIR=$(mktemp -d)
"$BIN" app >/tmp/cmpaint-screenshots.log 2>&1 &
APP=$!
sleep 6                                   # window up, built-in model loaded
xdotool search --sync --name cmpaint windowfocus
click() { xdotool mousemove "$1" "$2" click 1; sleep "${3:-1}"; }
shot() { import -window root "$OUT/$1.png"; echo "wrote $OUT/$1.png"; }

# 1. Generate from a blank canvas: 4 images, the first on the canvas, all in History.
click 1108 438 4
xdotool mousemove 600 400
shot generate

# 2. Paint a mask over the top half with the mask brush (M, size up) and inpaint it.
click 41 107 0.3                          # Mask tool
for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do xdotool key bracketright; done
xdotool mousemove 300 150 mousedown 1
for x in 350 450 550 650 750 850; do xdotool mousemove $x 160; sleep 0.05; done
for x in 850 750 650 550 450 350 300; do xdotool mousemove $x 260; sleep 0.05; done
xdotool mouseup 1; sleep 0.5
shot mask
click 1036 488 8                          # Inpaint
click 49 318 0.5                          # Clear mask, to see the result
xdotool mousemove 600 400
shot inpaint
