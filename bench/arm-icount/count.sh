#!/usr/bin/env bash
# Exact guest instructions of ONE steady-state inference, bert-edge next to onnxruntime's own
# aarch64 build, per Raspberry Pi CPU model, under qemu-aarch64 with a counting TCG plugin.
#
#   sudo bench/arm-icount/setup.sh      # once (~15-25 min on 2 cores): see that file
#   cargo build --release --target aarch64-unknown-linux-gnu --bin bert-edge
#   bench/arm-icount/count.sh           # base models, seq 32, a72/a76/a53, f32/f16/int8, both engines
#   CPUS=cortex-a72 VARIANTS=int8 ENGINES=bert-edge BE_ENV="TRACT_ARM64_I8_SMULL_DISABLE=1" \
#       bench/arm-icount/count.sh       # one cell, with tract knobs (here: the published int8 kernel)
#   cargo build --release --target armv7-unknown-linux-gnueabihf --bin bert-edge
#   ARCH=armv7 bench/arm-icount/count.sh   # 32-bit builds under qemu-arm: cortex-a15 and cortex-a7
#                                   # (qemu-arm has no 64-bit cores; bert-edge only: no armv7 wheel)
#
# Both engines are driven the same way: a long-lived process loads the model, does its warm-up
# calls, writes "ready", then answers one stdin command per line with exactly one write(1, ...):
# `bert-edge bench --stdin` (its first call happens before "ready") and ort_driver.py (2
# warm-up runs). The plugin (spancount.c) counts executed guest instructions per thread between
# consecutive write(1, ...) syscalls, so span 1..CALLS are one inference each; the table shows
# the main thread's median (both run one thread: bert-edge bench's default, onnxruntime
# intra_op_num_threads=1). Same ONNX files (models/base, bind-mounted read-only in the arm64 root),
# same deterministic inputs (ort_driver.py rebuilds bert-edge bench's), batch 1.
#
# Counts are not cycles: they ignore memory stalls and how many NEON instructions a core issues
# per cycle. For matmul-bound NEON code on the same CPU model they rank kernels well, and they
# are exact and repeatable (same binary, inputs and CPU model). Not run in CI (needs root, a
# debootstrapped arm64 root and a qemu built with plugins: setup.sh).
#
# Output: a Markdown table on stdout, saved with the raw spans under $OUT (default
# $W/out, W = ~/.cache/arm-icount, the setup dir).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/arm-icount
W=${W:-${XDG_CACHE_HOME:-$HOME/.cache}/arm-icount}
ROOT=$W/root
MODELS=${MODELS:-models/base}          # on the host; mounted at /models/<basename> in the root
SEQ=${SEQ:-32}
CALLS=${CALLS:-3}
VARIANTS=${VARIANTS:-f32,f16,int8}
ARCH=${ARCH:-aarch64}                  # or armv7: 32-bit Raspberry Pi OS builds (bert-edge only)
case $ARCH in
    aarch64) TARGET=aarch64-unknown-linux-gnu; QEMU=$W/src/qemu-10.0.2/build/qemu-aarch64
             SYSROOT=${SYSROOT:-/usr/aarch64-linux-gnu}; CPUS=${CPUS:-cortex-a72,cortex-a76,cortex-a53} ;;
    armv7)   TARGET=armv7-unknown-linux-gnueabihf; QEMU=$W/src/qemu-10.0.2/build-arm/qemu-arm
             SYSROOT=${SYSROOT:-/usr/arm-linux-gnueabihf}
             # onnxruntime publishes no 32-bit ARM wheel. qemu-arm has no 64-bit cores: a Pi 3/4
             # on 32-bit Pi OS reports its own part (0xd03/0xd08), which tract's armv7 code treats
             # like cortex-a15 (the generic kernels); cortex-a7 is the Pi 2's core (own kernels).
             ENGINES=${ENGINES:-bert-edge}; CPUS=${CPUS:-cortex-a15,cortex-a7} ;;
    *) echo "count.sh: ARCH is aarch64 or armv7" >&2; exit 2 ;;
esac
ENGINES=${ENGINES:-bert-edge,onnxruntime}
BIN=${BIN:-target/$TARGET/release/bert-edge}
BE_ENV=${BE_ENV:-}                     # extra environment for bert-edge (tract knobs)
BENCH_ARGS=${BENCH_ARGS:-}             # extra `bert-edge bench` flags
PLUGIN=$W/libspancount.so
OUT=${OUT:-$W/out}
[ -x "$QEMU" ] && [ -f "$PLUGIN" ] || { echo "count.sh: run $HERE/setup.sh first (no $QEMU or $PLUGIN)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "count.sh: no $BIN (cargo build --release --target $TARGET --bin bert-edge)" >&2; exit 2; }
mkdir -p "$OUT" "$ROOT/tmp/icount"
cp "$HERE/ort_driver.py" "$ROOT/opt/ort_driver.py"
inroot=/models/$(basename "$MODELS")

stamp=$(date +%Y%m%d-%H%M%S)
md="$OUT/arm-icount-$stamp.md"
cpu_host=$(awk -F: '/model name/ {sub(/^ /, "", $2); print $2; exit}' /proc/cpuinfo)
ort_desc="not run"
if [[ ",$ENGINES," == *,onnxruntime,* ]]; then
    ort_desc="$(chroot "$ROOT" /opt/ortvenv/bin/python3 -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null || echo '?') (aarch64 wheel)"
fi
{
    echo "# guest instructions per inference, $(basename "$QEMU") 10.0.2 + spancount plugin ($TARGET)"
    echo
    echo "$MODELS, seq $SEQ, batch 1, 1 thread, median of $CALLS calls; bert-edge $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src vendor cli || echo '+dirty')${BE_ENV:+ ($BE_ENV)}, onnxruntime $ort_desc; host $cpu_host ($(date -u +%F))"
    echo
    echo "| cpu | variant | bert-edge M instr | onnxruntime M instr | bert-edge / onnxruntime |"
    echo "|---|---|---:|---:|---:|"
} | tee "$md"

median() { # spans file -> median main-thread instructions of spans 1..CALLS (empty if failed)
    python3 - "$1" "$CALLS" <<'PY'
import statistics, sys
spans = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) > 2 and f[0] == "span" and f[1] != "end":
        kv = dict(x.split("=", 1) for x in f[2:])
        spans.append(int(kv.get("v0", kv["instr"])))
runs = spans[1:1 + int(sys.argv[2])]
print(statistics.median(runs) if len(runs) == int(sys.argv[2]) else "")
PY
}

cmds=$( (for _ in $(seq "$CALLS"); do echo run; done; echo quit) )
IFS=, read -ra cpus <<<"$CPUS"
IFS=, read -ra variants <<<"$VARIANTS"
for cpu in "${cpus[@]}"; do
    for variant in "${variants[@]}"; do
        model="bert_ids_${variant}.onnx"
        be="" ort=""
        if [[ ",$ENGINES," == *,bert-edge,* ]]; then
            tag="be-$variant-$cpu-seq$SEQ"
            # shellcheck disable=SC2086
            printf '%s\n' "$cmds" | env $BE_ENV QEMU_LD_PREFIX="$SYSROOT" nice -n 10 "$QEMU" -cpu "$cpu" \
                -plugin "$PLUGIN,out=$OUT/$tag.spans" \
                "$BIN" bench --model "$MODELS/$model" --seq "$SEQ" --variant "$variant" $BENCH_ARGS --stdin \
                >"$OUT/$tag.stdout" 2>"$OUT/$tag.stderr" || echo "count.sh: bert-edge failed under $cpu ($OUT/$tag.stderr)" >&2
            be=$(median "$OUT/$tag.spans")
        fi
        if [[ ",$ENGINES," == *,onnxruntime,* ]]; then
            tag="ort-$variant-$cpu-seq$SEQ"
            printf '%s\n' "$cmds" | env OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 nice -n 10 chroot "$ROOT" \
                /usr/local/bin/qemu-aarch64-plugin -cpu "$cpu" \
                -plugin "/usr/local/lib/libspancount.so,out=/tmp/icount/$tag.spans" \
                /opt/ortvenv/bin/python3 /opt/ort_driver.py "$inroot/$model" "$SEQ" 2 \
                >"$OUT/$tag.stdout" 2>"$OUT/$tag.stderr" || echo "count.sh: onnxruntime failed under $cpu ($OUT/$tag.stderr)" >&2
            cp "$ROOT/tmp/icount/$tag.spans" "$OUT/$tag.spans" 2>/dev/null || true
            ort=$(median "$OUT/$tag.spans")
        fi
        python3 - "$cpu" "$variant" "$be" "$ort" <<'PY' | tee -a "$md"
import sys
cpu, variant, be, ort = sys.argv[1:]
f = lambda v: f"{float(v) / 1e6:,.1f}" if v else "-"
r = f"{float(be) / float(ort):.2f}" if be and ort else "-"
print(f"| {cpu} | {variant} | {f(be)} | {f(ort)} | {r} |")
PY
    done
done
echo "wrote $md" >&2
