#!/usr/bin/env bash
# Load time, first-run + steady latency, allocations per call and peak RSS of every base
# variant, from the ONNX export and from a precompiled archive, each in a fresh process.
# Prints a Markdown table (docs/reference/performance.md, "Plans"). Needs models/generate base.
#
#   scripts/plan-figures.sh            # SEQ=128 REPS=5
#   SEQ=32 REPS=3 VARIANTS=int8 scripts/plan-figures.sh   # some variants only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SEQ=${SEQ:-128}
REPS=${REPS:-5}
cargo build --release --quiet --bin bert-edge --features bert-edge-cli/count-allocs
bin=target/release/bert-edge
out=target/plans
mkdir -p "$out"
row() { # label model
    "$bin" bench --model "$2" --seq "$SEQ" --reps "$REPS" --warmup 1 --json 2>/dev/null | python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
print("| %s | %.2f s | %.0f ms | %.0f | %.0f kB | %.0f MB |" % (sys.argv[1], j["load_s"],
      j["latency_ms"]["median"], j["allocations_per_call"], j["bytes_per_call"] / 1e3, j["peak_rss_mb"]))
' "$1"
}
echo "seq $SEQ, batch 1, 1 thread, $REPS reps; load = fresh process, translate/read + optimize"
echo
echo "| plan | load | median latency | allocations/call (tract) | bytes/call | peak RSS (load + runs) |"
echo "| --- | --- | --- | --- | --- | --- |"
for v in ${VARIANTS:-f32 f16 int8}; do
    onnx=models/base/bert_ids_$v.onnx
    arch=$out/bert_ids_${v}_s$SEQ.nnef.${ARCHIVE_EXT:-tar}
    [ -f "$arch" ] || "$bin" compile --model "$onnx" --seq "$SEQ" -o "$arch" 2>/dev/null
    row "$v ONNX ($(du -m "$onnx" | cut -f1) MB)" "$onnx"
    row "$v archive ($(du -m "$arch" | cut -f1) MB)" "$arch"
done
