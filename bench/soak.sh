#!/usr/bin/env bash
# Soak test of `bert-edge serve`: 8 keep-alive clients (wrk) posting texts of mixed real
# Chinese lengths for DURATION, the server's RSS and thread count sampled every minute,
# then /metrics (errors, restarts = the server's pid never changes) and a PNG plot.
#
#   bench/soak.sh                                  # base int8, seq 128, 60 min
#   DURATION=5m MODEL=models/tiny/bert_ids_int8.onnx bench/soak.sh   # smoke
#
# Needs wrk and gnuplot (apt-get install -y wrk gnuplot-nox), models/generate base.
# Output: docs/soak-<date>.{csv,png,log,metrics.txt}: samples, plot, the run's output, final counters.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/base/bert_ids_int8.onnx}
SEQ=${SEQ:-128}
DURATION=${DURATION:-60m}
CLIENTS=${CLIENTS:-8}
WORKERS=${WORKERS:-$(nproc)}
PORT=${PORT:-18181}
BIN=${BIN:-target/release/bert-edge}
OUT=${OUT:-docs/soak-$(date +%Y%m%d)}
exec > >(tee "$OUT.log") 2>&1   # the whole run, wrk's report included
[ -x "$BIN" ] || cargo build --release --bin bert-edge
URL="http://127.0.0.1:$PORT"
TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
# Mixed real lengths: the tokenizer golden corpus's Chinese inputs (tests/data/tokenizer).
python3 - "$TMP/soak.lua" <<'PY'
import json, sys
texts = []
for line in open("tests/data/tokenizer/goldens.jsonl", encoding="utf-8"):
    o = json.loads(line)
    t = o.get("text") or o.get("a") or ""
    if t and any("\u4e00" <= c <= "\u9fff" for c in t) and t not in texts:
        texts.append(t)
texts = texts[:200]
lua = ["local texts = {"] + ["  %s," % json.dumps(json.dumps({"inputs": t}, ensure_ascii=False), ensure_ascii=False) for t in texts] + ["}"]
lua += ["local i = 0", "request = function()", "  i = i + 1",
        '  return wrk.format("POST", "/embed", {["Content-Type"] = "application/json"}, texts[(i % #texts) + 1])',
        "end"]
open(sys.argv[1], "w", encoding="utf-8").write("\n".join(lua) + "\n")
print("soak: %d distinct texts, %d..%d chars" % (len(texts), min(map(len, texts)), max(map(len, texts))), file=sys.stderr)
PY
echo "== soak: $MODEL seq $SEQ, $WORKERS workers, $CLIENTS clients, $DURATION; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
"$BIN" serve --model "$MODEL" --seq "$SEQ" --bind "127.0.0.1:$PORT" --workers "$WORKERS" --queue 64 2> "$TMP/server.log" &
SERVER_PID=$!
for _ in $(seq 1 600); do
  grep -q "listening on" "$TMP/server.log" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log"; exit 1; }
  sleep 0.5
done
curl -s -XPOST "$URL/embed" -d '{"inputs":"预热"}' -o /dev/null
secs=$(echo "$DURATION" | awk '/m$/ {print $1*60; next} /h$/ {print $1*3600; next} {print $1+0}')
wrk -t 4 -c "$CLIENTS" -d "$DURATION" --timeout 30s --latency -s "$TMP/soak.lua" "$URL" > "$TMP/wrk.txt" 2>&1 &
WRK=$!
sample() {  # minute, rss MiB, threads
  awk -v m="$1" '/^VmRSS/ {r=$2/1024} /^Threads/ {t=$2} END {printf "%d,%.1f,%d\n", m, r, t}' "/proc/$SERVER_PID/status"
}
echo "minute,rss_mib,threads" > "$OUT.csv"
sample 0 | tee -a "$OUT.csv"
for m in $(seq 1 $(( secs / 60 ))); do
  sleep 60
  kill -0 "$SERVER_PID" || { echo "server died" >&2; exit 1; }
  sample "$m" | tee -a "$OUT.csv"
done
wait "$WRK" || true
cat "$TMP/wrk.txt"
curl -s "$URL/metrics" | grep -E '^bert_edge_(requests_total|inference_errors_total|inferences_total)' | tee "$OUT.metrics.txt"
kill -0 "$SERVER_PID" && echo "server pid $SERVER_PID alive throughout: 0 restarts"
awk -F, 'NR>2 {if (min=="" || $2<min) min=$2; if ($2>max) max=$2} END {printf "RSS after minute 1: min %.1f max %.1f MiB, spread %.2f %%\n", min, max, 100*(max-min)/min}' "$OUT.csv" | tee -a "$OUT.metrics.txt"
gnuplot <<GP
set terminal png size 900,420 noenhanced
set output "$OUT.png"
set datafile separator ","
set title "bert-edge serve soak: $(basename "$MODEL") seq $SEQ, $CLIENTS clients, $WORKERS workers ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date +%F))"
set xlabel "minute"; set ylabel "RSS (MiB)"; set y2label "threads"; set y2tics; set grid
set yrange [0:*]; set y2range [0:*]
plot "$OUT.csv" every ::1 using 1:2 with linespoints title "RSS", "" every ::1 using 1:3 axes x1y2 with lines title "threads"
GP
echo "wrote $OUT.csv $OUT.png"
