#!/usr/bin/env bash
# Guest instruction counts of ONE bert-edge inference under qemu-aarch64, per CPU model.
#
#   bench/icount.sh                                   # tiny models, seq 8, a72 + a76, f32/int8/f16
#   MODELS=models/base SEQ=8 VARIANTS=int8 CPUS=cortex-a76 bench/icount.sh
#   FLAVOURS=ids,embeds bench/icount.sh
#   VARIANTS=f16 BENCH_ARGS="--f16-compute f32" bench/icount.sh   # extra `bert-edge bench` flags
#   MODELS=DIR EXT=nnef.tar BIN=… bench/icount.sh     # archives (bert_ids_int8.nnef.tar, …) for a
#                                                     # device build without the ONNX importer
#
# Counts *executed aarch64 instructions* of one steady-state `Encoder::run_*` call (not time:
# qemu's timing means nothing for a Pi). The CPU model matters because tract-linalg picks its
# kernels from /proc/cpuinfo, which qemu >= 9 emulates for -cpu: cortex-a72 (Pi 4: NEON only)
# and cortex-a76 (Pi 5: + fp16 arithmetic, dotprod) get different matmul kernels.
#
# How: Debian's qemu-user is built without TCG plugin support (`-plugin` is an unknown option,
# no libinsn.so), so this uses qemu's own logs instead: `-d in_asm,exec,nochain,strace`
# prints every translated block with its instructions, one line per executed block (chaining
# off, so none is skipped) and every syscall. A small C filter (built into bench/out/) reads
# the log through a FIFO, maps block address -> instruction count, and sums the executed
# blocks between consecutive `write(1, …)` syscalls. `bert-edge bench --stdin` writes one
# stdout line per command, so with stdin "run\nrun\nrun\n" the spans between its 1st/2nd/3rd/4th
# writes are exactly one inference each (the plan's first call happened before "ready").
# Load-time work (ONNX import + optimisation, also emulated and logged) is counted but not
# reported. Blocks exited early (faults, signals) would be over-counted: none happen here.
#
# Build: cargo build --release --target aarch64-unknown-linux-gnu --bin bert-edge
# (set BIN= to use another aarch64 build). Output: a Markdown table on stdout, also saved to
# bench/out/icount-<stamp>.md. Expect minutes: the load phase is emulated and logged too.
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS=${MODELS:-models/tiny}
EXT=${EXT:-onnx}
SEQ=${SEQ:-8}
VARIANTS=${VARIANTS:-f32,int8,f16}
FLAVOURS=${FLAVOURS:-ids}
CPUS=${CPUS:-cortex-a72,cortex-a76}
CALLS=${CALLS:-3}
TARGET=aarch64-unknown-linux-gnu
BIN=${BIN:-target/$TARGET/release/bert-edge}
SYSROOT=${SYSROOT:-/usr/aarch64-linux-gnu}   # the cross libc (gcc-aarch64-linux-gnu)
OUT=bench/out
mkdir -p "$OUT"

command -v qemu-aarch64 >/dev/null || { echo "icount.sh: no qemu-aarch64 (apt-get install qemu-user)" >&2; exit 2; }
if [ ! -x "$BIN" ]; then
    echo "icount.sh: building $BIN" >&2
    cargo build --release --target "$TARGET" --bin bert-edge
fi

# --- the log filter -----------------------------------------------------------------------
cat > "$OUT/icount-filter.c" <<'C'
/* Reads qemu -d in_asm,exec,nochain,strace output on stdin; prints, at every write(1,...)
 * syscall, the guest instructions executed since the previous one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#define CAP (1u << 22)
static uint64_t keys[CAP];
static uint32_t vals[CAP];
static uint32_t *slot(uint64_t pc) {
    uint64_t h = (pc * 0x9E3779B97F4A7C15ull) >> 42;
    for (;;) {
        uint32_t i = h & (CAP - 1);
        if (keys[i] == pc || keys[i] == 0) { keys[i] = pc; return &vals[i]; }
        h++;
    }
}
int main(void) {
    static char line[1 << 16];
    uint64_t count = 0, blocks = 0, unknown = 0, tb_pc = 0;
    uint32_t tb_len = 0;
    int in_tb = 0;
    while (fgets(line, sizeof line, stdin)) {
        if (line[0] == 'T' && !strncmp(line, "Trace ", 6)) {
            char *b = strchr(line, '[');
            char *s = b ? strchr(b, '/') : NULL;
            if (s) {
                uint64_t pc = strtoull(s + 1, NULL, 16);
                uint32_t n = *slot(pc);
                if (!n) unknown++;
                count += n;
                blocks++;
            }
        } else if (line[0] == 'I' && !strncmp(line, "IN:", 3)) {
            in_tb = 1; tb_len = 0; tb_pc = 0;
        } else if (in_tb && line[0] == '0' && line[1] == 'x') {
            if (!tb_len) tb_pc = strtoull(line, NULL, 16);
            tb_len++;
        } else if (in_tb && (line[0] == '\n' || line[0] == '-')) {
            if (tb_pc) *slot(tb_pc) = tb_len;
            in_tb = 0;
        } else if (strstr(line, " write(1,")) {
            printf("%llu %llu %llu\n", (unsigned long long)count, (unsigned long long)blocks,
                   (unsigned long long)unknown);
            fflush(stdout);
            count = blocks = unknown = 0;
        }
    }
    printf("end %llu %llu %llu\n", (unsigned long long)count, (unsigned long long)blocks,
           (unsigned long long)unknown);
    return 0;
}
C
cc -O2 -o "$OUT/icount-filter" "$OUT/icount-filter.c"

stamp=$(date +%Y%m%d-%H%M%S)
md="$OUT/icount-$stamp.md"
{
    echo "# bert-edge guest instructions per inference (qemu-aarch64 $(qemu-aarch64 --version | head -1 | awk '{print $3}'))"
    echo
    echo "models $MODELS, seq $SEQ, batch 1; one steady-state call (median of $CALLS calls after the first)."
    echo
    echo "| cpu | flavour | variant | instructions / call | M instr | executed blocks | instr / block | wall s (incl. load) |"
    echo "|---|---|---|---:|---:|---:|---:|---:|"
} | tee "$md"

IFS=, read -ra cpus <<<"$CPUS"
IFS=, read -ra variants <<<"$VARIANTS"
IFS=, read -ra flavours <<<"$FLAVOURS"
for cpu in "${cpus[@]}"; do
  for flavour in "${flavours[@]}"; do
    for variant in "${variants[@]}"; do
        model="$MODELS/bert_${flavour}_${variant}.$EXT"
        [ -f "$model" ] || { echo "| $cpu | $flavour | $variant | (no $model) | | | | |" | tee -a "$md"; continue; }
        fifo=$(mktemp -u "$OUT/icount-fifo.XXXXXX"); mkfifo "$fifo"
        res=$(mktemp "$OUT/icount-res.XXXXXX")
        "$OUT/icount-filter" <"$fifo" >"$res" &
        fpid=$!
        t0=$(date +%s.%N)
        cmds=$(for _ in $(seq "$CALLS"); do echo run; done; echo quit)
        if ! printf '%s\n' "$cmds" | env QEMU_LD_PREFIX="$SYSROOT" qemu-aarch64 -cpu "$cpu" \
                -d in_asm,exec,nochain,strace -D "$fifo" \
                "$BIN" bench --model "$model" --seq "$SEQ" --variant "$variant" ${BENCH_ARGS:-} --stdin \
                >"$res.stdout" 2>"$res.stderr"; then
            echo "icount.sh: bert-edge failed under $cpu: $(tail -3 "$res.stderr")" >&2
        fi
        wait "$fpid" || true
        t1=$(date +%s.%N)
        # lines: [0] up to "ready" (load + first call), [1..CALLS] one call each, then "end"
        python3 - "$res" "$cpu" "$flavour" "$variant${BENCH_ARGS:+ $BENCH_ARGS}" "$t0" "$t1" <<'PY' | tee -a "$md"
import sys, statistics
res, cpu, flavour, variant, t0, t1 = sys.argv[1:]
rows = [l.split() for l in open(res) if l.strip() and not l.startswith("end")]
calls = [(int(a), int(b), int(u)) for a, b, u in rows[1:]]  # rows[0]: start-up, load, first call
if not calls:
    print(f"| {cpu} | {flavour} | {variant} | (failed) | | | | |")
    sys.exit()
ins = statistics.median(c[0] for c in calls)
blk = statistics.median(c[1] for c in calls)
unk = max(c[2] for c in calls)
note = f" ({unk} unknown blocks)" if unk else ""
print(f"| {cpu} | {flavour} | {variant} | {int(ins):,}{note} | {ins / 1e6:.1f} | {int(blk):,} | "
      f"{ins / max(blk, 1):.1f} | {float(t1) - float(t0):.0f} |")
PY
        rm -f "$fifo"
        mv "$res.stderr" "$OUT/icount-last-$cpu-$flavour-$variant.stderr"
        rm -f "$res" "$res.stdout"
    done
  done
done
echo >&2
echo "wrote $md" >&2
