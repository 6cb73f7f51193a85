#!/usr/bin/env bash
# One-command device build: the `bert-edge` binary with the `device` profile (Cargo.toml:
# fat LTO, 1 codegen unit, stripped, opt-level 3, panic=unwind), then its size.
#
#   scripts/build-device.sh [TARGET] [extra cargo args...]
#     TARGET: aarch64-unknown-linux-gnu (default; Pi 3/4/5, 64-bit OS)
#             armv7-unknown-linux-gnueabihf (32-bit Raspberry Pi OS)
#             aarch64-unknown-linux-musl (static; any 64-bit distro/glibc)
#             x86_64-unknown-linux-gnu / native (for comparison)
#   BIN=name  build another binary or example (EXAMPLE=kernels) instead of bert-edge
#
# Output: target/TARGET/device/bert-edge (copy it to the board, see deploy/rpi.md).
# Cost on a 2-core host: 5-10 min per target from scratch (tract under fat LTO).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-aarch64-unknown-linux-gnu}
[[ $# -gt 0 ]] && shift
host=$(rustc -vV | sed -n 's/^host: //p')
[[ $target == native ]] && target=$host

case $target in
    aarch64-unknown-linux-*) bu=aarch64-linux-gnu- ;;
    armv7-unknown-linux-gnueabihf) bu=arm-linux-gnueabihf- ;;
    "$host") bu= ;;
    *) echo "untested target $target" >&2; bu= ;;
esac
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

if [[ -n ${EXAMPLE:-} ]]; then
    what=(--example "$EXAMPLE"); name=$EXAMPLE; dir=examples/
else
    name=${BIN:-bert-edge}; what=(--bin "$name"); dir=
fi

t0=$SECONDS
cargo build --profile device --target "$target" "${what[@]}" "$@"
out=${CARGO_TARGET_DIR:-target}/$target/device/$dir$name
echo "built $out in $((SECONDS - t0))s"

# The profile already strips; strip again with the target's binutils to prove nothing is left.
size=$(stat -c %s "$out")
tmp=$(mktemp); cp "$out" "$tmp"; "${bu}strip" "$tmp" 2>/dev/null || true
stripped=$(stat -c %s "$tmp"); rm -f "$tmp"
file "$out" 2>/dev/null | sed 's/^[^:]*: //' || true
if [[ $target == *-gnu* ]]; then
    # Highest glibc symbol version the binary needs (Raspberry Pi OS Bookworm ships 2.36).
    "${bu}objdump" -T "$out" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 | sed 's/^/needs /' || true
fi
awk -v t="$target" -v n="$name" -v s="$size" -v x="$stripped" \
    'BEGIN { printf "%s %s: %d bytes (%.2f MiB); after a second strip: %d bytes\n", t, n, s, s / 1048576, x }'
