#!/usr/bin/env bash
# Load time of two bert-edge builds, A and B, on the same plans, interleaved (A, B, A, B, …) in
# fresh processes, so that a noisy shared machine slows both alike. Prints the median load of
# each and the paired ratio B/A per model. Load = what `bert-edge info` reports as
# "plan ready in": read + translate/deserialize + optimize, the first run excluded.
#
#   bench/load-ab.sh OLD_BIN NEW_BIN MODEL [MODEL…]        # ROUNDS=7 SEQ=32
set -euo pipefail
(($# >= 3)) || { sed -n 2,7p "$0" >&2; exit 2; }
a=$1 b=$2; shift 2
ROUNDS=${ROUNDS:-7}
SEQ=${SEQ:-32}
load() { "$1" info --model "$2" --seq "$SEQ" 2>&1 | sed -n 's/.*plan ready in \([0-9.]*\) s.*/\1/p'; }
echo "| model | A median | B median | median of B/A | rounds |"
echo "| --- | --- | --- | --- | --- |"
for m in "$@"; do
    ta=() tb=()
    for ((i = 0; i < ROUNDS; i++)); do
        ta+=("$(load "$a" "$m")")
        tb+=("$(load "$b" "$m")")
    done
    python3 - "$m" "$ROUNDS" "${ta[@]}" "${tb[@]}" <<'EOF'
import statistics, sys
m, n = sys.argv[1], int(sys.argv[2])
a = [float(x) for x in sys.argv[3:3 + n]]
b = [float(x) for x in sys.argv[3 + n:]]
print(f"| {m} | {statistics.median(a):.2f} s | {statistics.median(b):.2f} s | "
      f"{statistics.median(y / x for x, y in zip(a, b)):.2f} | {n} |")
EOF
done
