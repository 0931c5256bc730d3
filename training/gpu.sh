#!/usr/bin/env bash
# The built-in models on a GPU in one command (issue 27): the EDM teacher on the five-style set, then
# its ECT student, in about ten minutes of device time — bf16 autocast, large batches — and their f16
# exports, logs and sample grids under $OUT. Run it first thing whenever the device tool lends a GPU:
#
#   run(command="bash training/gpu.sh", carry=["training/data/emoji5.npz", "target/gpu-carry"], timeout_s=600)
#
# (training/data/emoji5.npz is ignored by git: build it with make_dataset.py first; target/gpu-carry
# holds the diffusers wheels scripts/build-cuda.sh packs, for a machine without them.)
# $OUT gets at most 8 files, each under 16 MB: teacher.safetensors, student.safetensors,
# teacher.log, student.log, teacher.png, student.png. Checkpoints stay outside it ($RUNS).
#
#   SMOKE=1 bash training/gpu.sh     # the same steps on the CPU at a tiny scale (a minute), so that
#                                    # the first real run cannot fail on a typo
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/gpu-train}
RUNS=${RUNS:-/tmp/cmpaint-gpu-runs}
PY=${PYTHON:-python3}
DATA=training/data/emoji5.npz
if [ -n "${SMOKE:-}" ]; then
    DEV=cpu BATCH=8 ARCH=c32x2 TEACHER_MIN=0.1 STUDENT_MIN=0.1 SAMPLE_EVERY=0.05
else
    DEV=cuda BATCH=512 ARCH=${ARCH:-c32x2d} TEACHER_MIN=${TEACHER_MIN:-6} STUDENT_MIN=${STUDENT_MIN:-2.5} SAMPLE_EVERY=3
    $PY -c "import diffusers" 2>/dev/null ||
        $PY -m pip install --quiet --no-index --no-deps --find-links target/gpu-carry/wheels \
            diffusers huggingface_hub safetensors regex
fi
[ -f "$DATA" ] || { echo "missing $DATA: build it with training/make_dataset.py and carry it" >&2; exit 1; }
mkdir -p "$OUT"
rm -rf "$RUNS" && mkdir -p "$RUNS/teacher" "$RUNS/student"
[ "$DEV" = cuda ] && nvidia-smi --query-gpu=name --format=csv,noheader

# the teacher: 16× the CPU batch, so 2.5× its lr (EDM's CIFAR setting is 1e-3 at 512) and a
# half-life of the EMA in proportion to the images seen
$PY training/train_edm.py --data "$DATA" --out "$RUNS/teacher" --arch "$ARCH" --device "$DEV" \
    --batch "$BATCH" --lr 1e-3 --ema-halflife 500000 --wall-minutes "$TEACHER_MIN" \
    --sample-every "$SAMPLE_EVERY" --bf16 auto | tee "$OUT/teacher.log"
$PY training/export.py "$RUNS/teacher/checkpoint.pt" "$OUT/teacher.safetensors" --sketch-strength 0.45
# the student: ECT from the teacher's EMA, as the CPU recipe (training/README.md), at the GPU's batch
$PY training/train.py --data "$DATA" --out "$RUNS/student" --init-from "$RUNS/teacher/checkpoint.pt" \
    --device "$DEV" --batch "$BATCH" --denoise-frac 0 --lr 1e-4 --minutes "$STUDENT_MIN" \
    | tee "$OUT/student.log"
$PY training/export.py "$RUNS/student/checkpoint.pt" "$OUT/student.safetensors" --sketch-strength 0.45 --ts 0,6,17
cp "$(ls "$RUNS"/teacher/heun18_*.png | tail -n 1)" "$OUT/teacher.png"
$PY - "$OUT/student.safetensors" "$OUT/student.png" <<'EOF'
# one-step samples of the exported student, a row per category and its styles along the row
import json, sys
import torch
from safetensors import safe_open
sys.path.insert(0, "training")
from cm_model import consistency_fn, diffusers_config, from_openai, save_grid
from diffusers import UNet2DModel
with safe_open(sys.argv[1], "pt") as f:
    cfg = json.loads(f.metadata()["cmpaint.config"])
    w = {k: f.get_tensor(k).float() for k in f.keys()}
unet = UNet2DModel(**diffusers_config(cfg))
unet.load_state_dict(from_openai(w, diffusers_config(cfg)))
styles = len(cfg.get("styles") or [None])
labels = torch.arange(10).repeat_interleave(2 * styles) * styles + torch.arange(2 * styles).repeat(10) % styles
x = torch.randn(len(labels), 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 80.0
with torch.no_grad():
    save_grid(consistency_fn(unet.eval(), x, 80.0, labels).clamp(-1, 1), 10, sys.argv[2])
EOF
ls -la "$OUT"
