#!/usr/bin/env bash
# Layering, one way (docs/reference/design.md, ../shared/DESIGN.md): translate (ONNX import, its passes,
# compile) -> runtime (plan, encoder, io, archive read) -> model info. Only lib-level code
# (src/lib.rs, src/load.rs's Plan::load, src/unstable.rs) sees both sides.
#
# Fails if a file under src/runtime/, src/kernels/, src/passes/ or src/heads/ names the importer
# (`translate::` / `crate::translate`) in code (comments are not counted); then prints, for
# information, how often each top-level module of src/ names each other one (`crate::X`,
# code lines, tests included). Run by scripts/test-all.sh (native stage).
set -euo pipefail
cd "$(dirname "$0")/.."

# Code lines only: drop `//`, `///` and `//!` comment lines.
code() { grep -v -E '^[[:space:]]*//' "$@" 2>/dev/null || true; }

echo "check-layers: src/runtime, src/kernels, src/passes, src/heads must not name translate"
bad=0
for dir in src/runtime src/kernels src/passes src/heads; do
    [[ -d $dir ]] || continue
    while IFS= read -r f; do
        hits=$(code "$f" | grep -n -E '(^|[^a-z_])(crate::)?translate::' || true)
        if [[ -n $hits ]]; then
            echo "  $f names translate:" >&2
            sed 's/^/    /' <<<"$hits" >&2
            bad=1
        fi
    done < <(find "$dir" -name '*.rs' | sort)
done

# The modules: each directory or file directly under src/ (lib.rs is the crate root).
mapfile -t mods < <(find src -mindepth 1 -maxdepth 1 \( -type d -o -name '*.rs' \) \
    | sed -e 's|^src/||' -e 's|\.rs$||' | sort -u)
files_of() { # module -> its files
    if [[ -d src/$1 ]]; then find "src/$1" -name '*.rs'; fi
    if [[ -f src/$1.rs ]]; then echo "src/$1.rs"; fi
}
printf '\nuses of crate::TO in src/FROM (code lines; "." = none):\n%-10s' "from\\to"
for to in "${mods[@]}"; do [[ $to == lib ]] || printf ' %9.9s' "$to"; done
echo
for from in "${mods[@]}"; do
    mapfile -t fs < <(files_of "$from")
    printf '%-10s' "$from"
    for to in "${mods[@]}"; do
        [[ $to == lib ]] && continue
        if [[ $to == "$from" ]]; then printf ' %9s' "-"; continue; fi
        n=$({ code "${fs[@]}" | grep -o -E "crate::$to(::|[^a-z_]|$)" || true; } | wc -l)
        if [[ $n == 0 ]]; then printf ' %9s' "."; else printf ' %9s' "$n"; fi
    done
    echo
done

if [[ $bad != 0 ]]; then
    echo "check-layers: FAILED: the run-time side must not depend on the importer (move the" >&2
    echo "  shared piece down into runtime/ or passes/, or the dispatch up into lib-level code)" >&2
    exit 1
fi
echo "check-layers: OK"
