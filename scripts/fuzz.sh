#!/usr/bin/env bash
# Fuzz every target (cargo-fuzz / libFuzzer) for a bounded time, natively.
#
#   scripts/fuzz.sh                            # each target 60 s on its seeds
#   SECONDS_PER_TARGET=1800 scripts/fuzz.sh    # the long run by hand (30 min each)
#   TARGETS="tokenizer encode_line" scripts/fuzz.sh
#   BUILD_ONLY=1 scripts/fuzz.sh               # build the targets, run nothing
#
# Why libFuzzer via cargo-fuzz: it builds here with the machine's one (stable) toolchain
# (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags; no nightly can be fetched), runs
# in-process (fast for the small targets) and cargo-fuzz is on crates.io. No sanitizer
# (`-s none`): the code under test is safe Rust plus tract's kernels, and ASan would
# triple the time of the slow model-loading targets; run `SANITIZER=address` by hand.
# Seeds (committed): fuzz/seeds/<target>/; the working corpus grows under
# target/fuzz-corpus/<target>/. A crash stops the run (exit 1) with its input under
# fuzz/artifacts/<target>/; each one found becomes a regression test (tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECONDS_PER_TARGET:-60}
TARGETS=${TARGETS:-"encode_line http_request tokenizer archive onnx"}
SANITIZER=${SANITIZER:-none}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build --dev -s "$SANITIZER")
[[ ${BUILD_ONLY:-0} == 1 ]] && exit 0
summary=()
for t in $TARGETS; do
    corpus=target/fuzz-corpus/$t
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    cp -n fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
    log=target/fuzz-corpus/$t.log
    echo "=== fuzz $t: ${SECS}s ==="
    set +e
    (cd fuzz && cargo fuzz run --dev -s "$SANITIZER" "$t" "../$corpus" -- \
        -max_total_time="$SECS" -timeout=20 -rss_limit_mb=3072 -max_len=1048576 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/") >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    tail -3 "$log"
    summary+=("$(printf '%-14s %12s execs in %ss, exit %s' "$t" "${execs:-?}" "$SECS" "$rc")")
    if [[ $rc != 0 ]]; then
        echo "fuzz: $t failed (exit $rc); log: $log" >&2
        grep -m5 -E "panicked|ERROR|SUMMARY" "$log" >&2 || true
        printf '%s\n' "${summary[@]}"
        exit 1
    fi
done
echo "=== fuzz summary ==="
printf '%s\n' "${summary[@]}"
