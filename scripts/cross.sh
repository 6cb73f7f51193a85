#!/usr/bin/env bash
# `cross` with this repo's lowercase cross.toml (cross 0.2.5 only finds `Cross.toml` by itself).
#   scripts/cross.sh test --target aarch64-unknown-linux-gnu
#   scripts/cross.sh build --profile device --target armv7-unknown-linux-gnueabihf --bin bert-edge
#   QEMU_CPU=cortex-a76 TRACT_CPU_ISA=+fp16 scripts/cross.sh test --target aarch64-unknown-linux-gnu -- f16
# QEMU_CPU, when set, replaces the per-target default CPU of cross.toml (cross lets
# CROSS_TARGET_<TRIPLE>_ENV_PASSTHROUGH override a target's `env.passthrough`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CROSS_CONFIG=$PWD/cross.toml
if [[ -n ${QEMU_CPU:-} ]]; then
    target=
    prev=
    for a in "$@"; do
        [[ $prev == --target ]] && target=$a
        [[ $a == --target=* ]] && target=${a#--target=}
        prev=$a
    done
    if [[ -n $target ]]; then
        var=CROSS_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_ENV_PASSTHROUGH
        extra=
        [[ $target == armv7-* ]] && extra=" TRACT_CPU_ARM32_NEON=true"
        export "$var=QEMU_CPU=$QEMU_CPU$extra"
    fi
fi
exec cross "$@"
