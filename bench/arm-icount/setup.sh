#!/usr/bin/env bash
# One-time setup for bench/arm-icount/count.sh: aarch64 instruction counts of bert-edge and
# onnxruntime (x86_64 Debian 12 host, qemu-user). From the workplace's arm-icount recipe, minus
# its exec-log cross-check (bench/icount.sh is that method). Idempotent; run as root from the
# project root; everything lives under $W (default ~/.cache/arm-icount); not run in CI.
#
#  1. arm64 Debian bookworm chroot with python3 + onnxruntime + numpy (aarch64 manylinux wheels
#     downloaded on the host with pip, installed offline in the chroot venv /opt/ortvenv).
#  2. qemu-aarch64 10.0.2 (Debian's orig tarball, same version as the installed static qemu-user)
#     built with TCG plugins + capstone (and qemu-arm the same way, for armv7 builds: ~5 min
#     more), and the spancount plugin; qemu-aarch64 and the plugin copied into the chroot
#     together with their x86_64 shared libraries (multiarch dirs do not collide with arm64).
#  3. bind mounts: /proc, /sys (onnxruntime's pytorch-cpuinfo needs /sys/devices/system/cpu),
#     /dev, and the models (read-only).
set -euo pipefail
W=${W:-${XDG_CACHE_HOME:-$HOME/.cache}/arm-icount}
ROOT=$W/root
HERE=$(cd "$(dirname "$0")" && pwd)
# The machine's own Debian mirror (as scripts/arm-setup.sh finds it), unless MIRROR is set.
MIRROR=${MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}
[ -n "$MIRROR" ] || MIRROR=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
BASE_MODELS=$(realpath "${BASE_MODELS:-models/base}")
TINY_MODELS=$(realpath "${TINY_MODELS:-models/tiny}")   # run from the project root
QV=10.0.2
mkdir -p "$W"
cd "$W"

# 1. chroot + onnxruntime
command -v debootstrap >/dev/null || apt-get install -y debootstrap
if [ ! -x "$ROOT/usr/bin/python3" ]; then
    nice -n 19 debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$ROOT" "$MIRROR"
fi
cp /usr/bin/qemu-aarch64 "$ROOT/usr/local/bin/qemu-aarch64"     # Debian's static qemu-user
if [ ! -x "$ROOT/opt/ortvenv/bin/python3" ]; then
    mkdir -p "$W/wheels"
    nice -n 19 pip download --only-binary=:all: --platform manylinux_2_28_aarch64 \
        --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --python-version 3.11 \
        --implementation cp --abi cp311 -d "$W/wheels" onnxruntime numpy
    rm -rf "$ROOT/tmp/wheels"; cp -r "$W/wheels" "$ROOT/tmp/wheels"
    nice -n 19 chroot "$ROOT" /bin/sh -c 'python3 -m venv /opt/ortvenv &&
        /opt/ortvenv/bin/pip install --no-index --find-links /tmp/wheels onnxruntime numpy'
fi

# 2. plugin-capable qemu (Debian's qemu-user is static, hence no plugins): qemu-aarch64, and
#    qemu-arm for armv7 builds (32-bit Raspberry Pi OS), each in its own build dir
if [ ! -x "$W/src/qemu-$QV/configure" ]; then
    mkdir -p "$W/apt/lists/partial" "$W/apt/cache/archives/partial" "$W/src"
    echo "deb-src $MIRROR bookworm-backports main" >"$W/apt/sources.list"
    A="-o Dir::Etc::SourceList=$W/apt/sources.list -o Dir::Etc::SourceParts=/dev/null
       -o Dir::State::Lists=$W/apt/lists -o Dir::Cache=$W/apt/cache"
    apt-get $A update
    (cd "$W/src" && apt-get $A source --download-only "qemu=1:$QV+ds-2+deb13u1~bpo12+1" || true)
    (cd "$W/src" && tar xf "qemu_$QV+ds.orig.tar.xz")   # the .debian.tar.xz may 404; not needed
fi
build_qemu() { # build-dir target-list binary
    [ -x "$W/src/qemu-$QV/$1/$3" ] && return
    apt-get install -y --no-install-recommends libglib2.0-dev ninja-build flex bison libcapstone-dev
    [ -x "$W/qvenv/bin/python3" ] || python3 -m venv "$W/qvenv"
    "$W/qvenv/bin/pip" install -q 'meson>=1.5,<1.9' 'pycotap==1.3.1'   # +ds dropped python/wheels
    mkdir -p "$W/src/qemu-$QV/$1"
    (cd "$W/src/qemu-$QV/$1" &&
        nice -n 19 ../configure --python="$W/qvenv/bin/python3" --target-list="$2" \
            --enable-plugins --enable-capstone --disable-system --disable-tools --disable-docs \
            --disable-werror --disable-debug-info --without-default-features --disable-install-blobs &&
        nice -n 19 ninja -j2 "$3")
}
build_qemu build aarch64-linux-user qemu-aarch64
build_qemu build-arm arm-linux-user qemu-arm      # ~5 min more
Q=$W/src/qemu-$QV/build/qemu-aarch64
nice -n 19 gcc -O2 -shared -fPIC -Wall -I "$W/src/qemu-$QV/include/qemu" $(pkg-config --cflags glib-2.0) \
    -o "$W/libspancount.so" "$HERE/spancount.c" $(pkg-config --libs glib-2.0)
mkdir -p "$ROOT/lib/x86_64-linux-gnu" "$ROOT/lib64" "$ROOT/usr/local/lib"
for l in $( (ldd "$Q"; ldd "$W/libspancount.so") | awk '/=>/ {print $3}' | sort -u) \
         /lib/x86_64-linux-gnu/libgcc_s.so.1; do
    cp -L "$l" "$ROOT/lib/x86_64-linux-gnu/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$ROOT/lib64/"
cp "$Q" "$ROOT/usr/local/bin/qemu-aarch64-plugin"
cp "$W/libspancount.so" "$ROOT/usr/local/lib/"

# 3. mounts
for m in proc sys dev; do mountpoint -q "$ROOT/$m" || mount --bind "/$m" "$ROOT/$m"; done
mkdir -p "$ROOT/models/base" "$ROOT/models/tiny"
mountpoint -q "$ROOT/models/base" || mount --bind -o ro "$BASE_MODELS" "$ROOT/models/base"
mountpoint -q "$ROOT/models/tiny" || mount --bind -o ro "$TINY_MODELS" "$ROOT/models/tiny"
echo "setup done; undo the mounts with: umount $ROOT/models/base $ROOT/models/tiny $ROOT/dev $ROOT/sys $ROOT/proc"
