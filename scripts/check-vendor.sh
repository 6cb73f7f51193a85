#!/usr/bin/env bash
# Check that each vendored crate under vendor/ is exactly its crates.io release plus the patches
# in vendor/<crate>/patches/ (issue #14).
#
#   scripts/check-vendor.sh [CRATE...]     # default: every crate listed in CRATES below
#
# For each crate: download NAME-VERSION.crate from crates.io (cached in target/vendor-check/, or
# $VENDOR_CHECK_CACHE), check its sha256 against the one below, unpack it in a temp dir, delete
# the paths listed in patches/removed-paths (if any), apply patches/*.patch in name order with
# `patch -p1 --fuzz=0`, and `diff -r` the result against vendor/<crate>. The only paths of
# vendor/<crate> not compared are the KNOWN_ADDITIONS at its root. Prints one OK line per crate;
# on any difference prints the diff and exits 1. Needs bash, curl, tar, patch, diff, sha256sum.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VENDOR_CHECK_CACHE:-$ROOT/target/vendor-check}

# name version sha256-of-the-.crate (= the "cksum" of that version in the crates.io index,
# https://index.crates.io/tr/ac/<name>)
CRATES=(
  "tract-core 0.23.9 bb76580817f14ceb9f054d3732c1d09575940e88fa5bbfc85c3eae34482bb089"
  "tract-linalg 0.23.9 ca57ed3a2f6293e7866c6ceed7c6ca3413b4e083a892a00a79f5e9b607154982"
)

# Paths at the root of vendor/<crate> that are not part of the published crate:
#   PATCHED.md  what was changed and why        patches/  this check's inputs
#   .cargo-ok   marker cargo writes when it unpacks a .crate (the copy was taken from cargo's
#               registry cache); content {"v":1}
#   target      cargo's build output if `cargo test` is run inside the folder (git-ignored)
KNOWN_ADDITIONS=(PATCHED.md patches .cargo-ok target)

for tool in curl tar patch diff sha256sum; do
  command -v "$tool" >/dev/null || { echo "check-vendor: $tool not found" >&2; exit 2; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-vendor.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

sha_ok() { # file sha256
  echo "$2  $1" | sha256sum -c --status 2>/dev/null
}

# fetch NAME VERSION SHA256 -> path of the verified .crate in the cache (on stdout)
fetch() {
  local name=$1 ver=$2 sum=$3 f url part
  f=$CACHE/$name-$ver.crate
  if [ -f "$f" ] && sha_ok "$f" "$sum"; then echo "$f"; return 0; fi
  [ -f "$f" ] && echo "check-vendor: cached $f has the wrong sha256, downloading again" >&2
  mkdir -p "$CACHE"
  part=$(mktemp "$CACHE/.$name-$ver.crate.XXXXXX")
  for url in "https://static.crates.io/crates/$name/$name-$ver.crate" \
             "https://crates.io/api/v1/crates/$name/$ver/download"; do
    if curl -fsSL --retry 2 --connect-timeout 20 -A "bert-edge scripts/check-vendor.sh" \
         -o "$part" "$url"; then
      if sha_ok "$part" "$sum"; then
        chmod 644 "$part"; mv -f "$part" "$f"; echo "$f"; return 0
      fi
      echo "check-vendor: $url: sha256 $(sha256sum "$part" | cut -d' ' -f1), expected $sum" >&2
    else
      echo "check-vendor: download failed: $url" >&2
    fi
  done
  rm -f "$part"
  return 1
}

# check NAME VERSION SHA256 -> 0 if vendor/NAME == crate + patches
check() {
  local name=$1 ver=$2 sum=$3 vend=$ROOT/vendor/$1 crate work exp p n_patch=0 n_rm=0 a
  local pdir=$vend/patches
  work=$TMP/$name
  mkdir -p "$work/vendor"
  if [ ! -d "$vend" ]; then echo "FAIL $name: no $vend"; return 1; fi
  crate=$(fetch "$name" "$ver" "$sum") || { echo "FAIL $name $ver: no verified .crate"; return 1; }
  tar -xzf "$crate" -C "$work"
  [ -d "$work/$name-$ver" ] || { echo "FAIL $name: $crate has no $name-$ver/"; return 1; }
  exp=$work/crates.io+patches
  mv "$work/$name-$ver" "$exp"

  # patches/ holds *.patch and removed-paths, nothing else (a stray file is never silently ignored)
  for p in "$pdir"/* "$pdir"/.[!.]*; do
    [ -e "$p" ] || continue
    case ${p##*/} in *.patch | removed-paths) [ -f "$p" ] && continue ;; esac
    echo "FAIL $name: unexpected vendor/$name/patches/${p##*/} (only *.patch and removed-paths)"
    return 1
  done

  if [ -f "$pdir/removed-paths" ]; then
    while IFS= read -r p || [ -n "$p" ]; do
      case $p in '' | '#'*) continue ;; esac
      case /$p/ in
        //* | */../* | */./*) echo "FAIL $name: bad path in patches/removed-paths: $p"; return 1 ;;
      esac
      if [ ! -e "$exp/$p" ] && [ ! -L "$exp/$p" ]; then
        echo "FAIL $name: patches/removed-paths lists $p, which $name-$ver.crate does not have"
        return 1
      fi
      rm -rf -- "${exp:?}/$p"
      n_rm=$((n_rm + 1))
    done <"$pdir/removed-paths"
  fi

  shopt -s nullglob
  for p in "$pdir"/*.patch; do
    if ! patch -d "$exp" -p1 -N -t --fuzz=0 --no-backup-if-mismatch --reject-file=- \
           -i "$p" >"$work/patch.log" 2>&1; then
      echo "FAIL $name: patches/${p##*/} does not apply (after $n_patch earlier patch(es)):"
      sed 's/^/    /' "$work/patch.log"
      return 1
    fi
    n_patch=$((n_patch + 1))
  done
  shopt -u nullglob

  # the vendored tree minus the known additions, under a readable name for diff's output
  cp -a "$vend" "$work/vendor/$name"
  for a in "${KNOWN_ADDITIONS[@]}"; do rm -rf -- "${work:?}/vendor/$name/$a"; done
  if ! (cd "$work" && diff -ru "crates.io+patches" "vendor/$name") >"$work/diff" 2>&1; then
    echo "FAIL $name: vendor/$name differs from crates.io $name $ver" \
         "- $n_rm removed path(s) + $n_patch patch(es):"
    cat "$work/diff"
    return 1
  fi
  echo "OK $name $ver: vendor/$name = crates.io .crate (sha256 ${sum:0:12}…)" \
       "- $n_rm removed path(s) + $n_patch patch(es)"
}

want=("$@")
status=0
for entry in "${CRATES[@]}"; do
  read -r name ver sum <<<"$entry"
  if [ ${#want[@]} -gt 0 ]; then
    skip=1
    for w in "${want[@]}"; do [ "$w" = "$name" ] && skip=0; done
    [ $skip = 1 ] && continue
  fi
  check "$name" "$ver" "$sum" || status=1
done
for w in "${want[@]}"; do
  found=0
  for entry in "${CRATES[@]}"; do [ "${entry%% *}" = "$w" ] && found=1; done
  [ $found = 1 ] || { echo "check-vendor: unknown crate $w" >&2; status=2; }
done
exit $status
