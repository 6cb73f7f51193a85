#!/usr/bin/env bash
# Load test for `bert-edge serve` on loopback with wrk (Debian: `apt-get install -y wrk`).
#
#   bench/load.sh                       # 10 s per phase, base int8 model, seq 128
#   SOAK=10m bench/load.sh              # + a 10-minute run at 8 clients: RSS before/after
#   MODEL=models/tiny/bert_ids_f32.onnx SEQ=32 DURATION=5s bench/load.sh   # quick smoke
#   SERVE_ARGS=--fixed-length PHASES="c1 c8" bench/load.sh   # a plan pinned to SEQ; two phases
#
# Phases, one server for all: 1, 2 and 8 concurrent clients (keep-alive connections, one
# single-text POST /embed at a time each), then OVERLOAD clients against a small --queue
# (expect 429s with Retry-After, not collapse), then 1 client again (latency back to the
# first phase's = no collapse). Reports req/s, p50/p99 latency, non-2xx counts, the server's
# own per-status counters (/metrics), and the server's RSS before/after each phase.
# Everything is bounded: wrk -d per phase, `timeout` around it, the server is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${MODEL:-models/base/bert_ids_int8.onnx}
SEQ=${SEQ:-128}
DURATION=${DURATION:-10s}
WORKERS=${WORKERS:-$(nproc)}
QUEUE=${QUEUE:-16}
OVERLOAD=${OVERLOAD:-64}
PORT=${PORT:-18080}
BIN=${BIN:-target/debug/bert-edge}
SERVE_ARGS=${SERVE_ARGS:-}          # extra `serve` arguments, e.g. --fixed-length, --threads 2
PHASES=${PHASES:-c1 c2 c8 overload c1-after}
[ -x "$BIN" ] || cargo build --bin bert-edge
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "no $MODEL: run models/generate base (or set MODEL=...)" >&2; exit 2; }

URL="http://127.0.0.1:$PORT"
TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; fi
  [ -n "${KEEP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

cat > "$TMP/embed.lua" <<'LUA'
-- Round-robin over a few Chinese texts of different lengths (one text per request).
local texts = {
  "我爱学习",
  "今天天气很好，我们一起去公园散步吧。",
  "树莓派是一款基于ARM的微型电脑主板，以SD卡为内存硬盘，卡片主板周围有USB接口和以太网接口。",
  "自然语言处理是计算机科学领域与人工智能领域中的一个重要方向。它研究能实现人与计算机之间用自然语言进行有效通信的各种理论和方法。自然语言处理是一门融语言学、计算机科学、数学于一体的科学。",
}
local i = 0
request = function()
  i = i + 1
  local body = '{"inputs": "' .. texts[(i % #texts) + 1] .. '"}'
  return wrk.format("POST", "/embed", {["Content-Type"] = "application/json"}, body)
end
LUA

rss() { awk '/VmRSS|VmHWM/ {printf "%s %d MiB  ", $1, $2/1024}' "/proc/$SERVER_PID/status"; }
status_counts() { curl -s "$URL/metrics" | awk -F'[{}]' '/^bert_edge_requests_total\{endpoint="\/embed"/ {split($2,a,"status=\""); s=substr(a[2],1,3); printf "%s=%s ", s, $3+0}'; }

echo "== bert-edge serve: $MODEL seq $SEQ, $WORKERS workers, queue $QUEUE, $DURATION per phase, $(nproc) cores, cpu $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) ${SERVE_ARGS}"
# shellcheck disable=SC2086  # SERVE_ARGS is a list of words
"$BIN" serve --model "$MODEL" --seq "$SEQ" --bind "127.0.0.1:$PORT" --workers "$WORKERS" --queue "$QUEUE" \
  $SERVE_ARGS 2> "$TMP/server.log" &
SERVER_PID=$!
for _ in $(seq 1 600); do  # model load: up to 5 min on a Pi
  grep -q "listening on" "$TMP/server.log" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log"; exit 1; }
  sleep 0.5
done
grep "plan ready\|listening" "$TMP/server.log"
curl -s -XPOST "$URL/embed" -d '{"inputs":"预热"}' -o /dev/null   # warm-up
echo "RSS after start + warm-up: $(rss)"

# Seconds of DURATION (for the timeout guard).
secs=$(echo "$DURATION" | awk '/m$/ {print $1*60; next} /h$/ {print $1*3600; next} {print $1+0}')
phase() {  # name, connections
  local name=$1 c=$2 t=$(( $2 < 4 ? $2 : 4 ))
  timeout $(( secs + 60 )) wrk -t "$t" -c "$c" -d "$DURATION" --timeout 30s --latency -s "$TMP/embed.lua" "$URL" \
    > "$TMP/$name.txt" 2>&1 || true
  local rps ok p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/$name.txt")
  # 2xx per second (under overload most answers are fast 429s).
  ok=$(awk '/requests in/ {n=$1; d=$4; sub(/,$/,"",d)} /Non-2xx/ {e=$NF} END {
    if (d ~ /ms$/) s=d/1000; else if (d ~ /m$/) s=d*60; else s=d+0; if (s>0) printf "%.1f", (n-e)/s}' "$TMP/$name.txt")
  p50=$(awk '$1=="50%" {print $2}' "$TMP/$name.txt")
  p99=$(awk '$1=="99%" {print $2}' "$TMP/$name.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$TMP/$name.txt")
  printf "%-9s c=%-3s %9s req/s (2xx %9s/s)  p50 %-9s p99 %-9s non-2xx %-6s | server: %s| %s\n" \
    "$name" "$c" "${rps:-?}" "${ok:-?}" "${p50:-?}" "${p99:-?}" "${non2xx:-0}" "$(status_counts)" "$(rss)"
}
# Between phases: wait (bounded) until what the last one left queued has drained, so each
# phase starts from an idle server (wrk abandons its in-flight requests when it stops).
idle() {
  for _ in $(seq 1 600); do
    curl -s "$URL/metrics" | grep -qE '^bert_edge_(queue_depth|workers_busy) [1-9]' || return 0
    sleep 0.5
  done
  echo "server still busy after 300 s" >&2
}
for p in $PHASES; do
  case $p in
    c1|c1-after) phase "$p" 1 ;;
    c2) phase c2 2 ;;
    c8) phase c8 8 ;;
    overload) phase overload "$OVERLOAD" ;;
    *) echo "unknown phase $p" >&2; exit 2 ;;
  esac
  idle
done
if [ -n "${SOAK:-}" ]; then
  # Memory over a long run: 8 clients for SOAK; RSS read before and after (same process).
  idle
  before=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
  secs=$(echo "$SOAK" | awk '/m$/ {print $1*60; next} /h$/ {print $1*3600; next} {print $1+0}')
  DURATION=$SOAK phase soak 8; idle
  after=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
  awk -v b="$before" -v a="$after" -v d="$SOAK" 'BEGIN {
    printf "soak %s at 8 clients: VmRSS %.1f MiB before, %.1f MiB after (%+.1f%%)\n", d, b/1024, a/1024, (a-b)*100/b }'
fi
echo "--- server counters (/metrics) at the end:"
curl -s "$URL/metrics" | grep -E '^bert_edge_(requests_total|inferences_total|inference_errors_total|queue_depth|truncated_inputs_total)'
kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; code=$?; SERVER_PID=
echo "server exit status after SIGTERM: $code"
