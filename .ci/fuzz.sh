#!/usr/bin/env bash
# Bounded fuzzing of every hostile-input parser (cargo-fuzz / libFuzzer), SECONDS each (default 60):
#   bash .ci/fuzz.sh [SECONDS]
# Runs on the stable toolchain (RUSTC_BOOTSTRAP lets cargo-fuzz pass its -Z flags) without a
# sanitizer: the code is safe Rust, so what is hunted is panics, aborts, hangs, runaway memory and
# slow inputs (libFuzzer writes a slow-unit- artifact for one over 10 s, which fails the run too).
# A crash stops the run and leaves its input in fuzz/artifacts/<target>/: add it to
# tests/fixtures/fuzz/<target>/ and tests/fuzz_regressions.rs replays it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none
for t in image_import pt_load pickle safetensors_load recipe_png project_file; do
    mkdir -p "corpus/$t"
    echo "fuzzing $t for ${SECS} s"
    cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb=4096 -max_len=65536 -timeout=20 -print_final_stats=1 2>&1 \
        | grep -aE "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done)|panicked|ERROR" || true
    found=$(find "artifacts/$t" -type f 2>/dev/null)
    if [ -n "$found" ]; then
        echo "fuzz target $t found a failing input: see fuzz/artifacts/$t" >&2
        # CI keeps only its log: print each input so it can be replayed from there.
        for f in $found; do
            echo "$f ($(stat -c %s "$f") bytes), base64:" >&2
            base64 -w 120 "$f" | head -c 16384 >&2
            echo >&2
        done
        exit 1
    fi
done
