#!/usr/bin/env bash
# Host setup for building and testing the Raspberry Pi targets on Debian 12 (bookworm) x86_64,
# as root (CI) or through sudo. Idempotent. Used by .ci/run; developers run it once.
#   - cross gcc + libc for aarch64 / armhf (linkers, and the assembler for tract's kernels)
#   - qemu-user, from bookworm-backports (10.0) when available: qemu >= 9 emulates
#     /proc/cpuinfo for the -cpu model, which tract-linalg reads to pick kernels (7.2 shows the
#     host's x86 cpuinfo; scripts/test-all.sh then forces the features with tract's knobs)
#   - binfmt_misc entries for aarch64/arm ELF, so a test that spawns the `bert-edge` binary
#     (tests/cli.rs) can exec it under qemu too: cargo's runner only wraps the test binary itself.
#     The spawned qemu takes its CPU model and sysroot from QEMU_CPU / QEMU_LD_PREFIX, which
#     the runners in .cargo/config.toml set and the child inherits.
#   - rustup targets, and the rustfmt and clippy components (test-all.sh's house checks)
#   - g++ for the native fuzz stage (cargo-fuzz builds libFuzzer from C++ source)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo

pkgs=(g++ gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross)
if ! dpkg -s "${pkgs[@]}" qemu-user >/dev/null 2>&1 || [[ ${FORCE_APT:-} == 1 ]]; then
    if grep -q '^VERSION_CODENAME=bookworm' /etc/os-release \
        && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        # Same mirror as the machine's own bookworm entry, with the backports suite.
        mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
        [[ -n $mirror ]] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
        if [[ -n $mirror ]]; then
            echo "deb $mirror bookworm-backports main" \
                | $SUDO tee /etc/apt/sources.list.d/bert-edge-bookworm-backports.list >/dev/null
        fi
    fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    if grep -q '^VERSION_CODENAME=bookworm' /etc/os-release; then
        $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-user >/dev/null 2>&1 \
            || { echo "bookworm-backports qemu-user unavailable, using bookworm's" >&2
                 $SUDO apt-get install -y -qq --no-install-recommends qemu-user >/dev/null; }
    else
        $SUDO apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
    fi
fi
echo "qemu-user: $(qemu-aarch64 --version | head -1)"

# binfmt_misc: mount if needed, register unless some qemu handler for the format is there already.
BM=/proc/sys/fs/binfmt_misc
register() { # name magic mask interpreter
    local name=$1
    if compgen -G "$BM/*$name" >/dev/null; then return 0; fi
    echo ":bert-edge-$name:M::$2:$3:$4:F" | $SUDO tee $BM/register >/dev/null
}
if [[ ! -e $BM/register ]]; then
    $SUDO mount -t binfmt_misc binfmt_misc $BM 2>/dev/null || true
fi
if [[ -w $BM/register || -n $SUDO ]] && [[ -e $BM/register ]]; then
    register qemu-aarch64 \
        '\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00' \
        '\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' \
        "$(command -v qemu-aarch64)" || echo "binfmt: could not register aarch64" >&2
    register qemu-arm \
        '\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00' \
        '\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' \
        "$(command -v qemu-arm)" || echo "binfmt: could not register arm" >&2
    echo "binfmt_misc: $(ls $BM | grep -E 'aarch64|arm' | tr '\n' ' ')"
else
    echo "binfmt_misc unavailable: tests that spawn an ARM binary will be skipped under qemu" >&2
fi

rustup target add aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf ${EXTRA_TARGETS:-}
rustup component add rustfmt clippy
