#!/usr/bin/env bash
# House sizes (issue #31; the same rule as ../shared/hooks/before-stop): every .rs file under
# src/ and cli/src/ holds at most MAX_LINES (500) lines before its first `#[cfg(test)]`, and
# README.md at most README_MAX (200) lines. README_WARN_ONLY=1 makes the README limit a
# warning. Run by scripts/test-all.sh (native stage).
set -euo pipefail
cd "$(dirname "$0")/.."
max=${MAX_LINES:-500}
readme_max=${README_MAX:-200}
fail=0

echo "check-sizes: .rs files under src/ and cli/src/: at most $max lines before their tests"
while IFS= read -r f; do
    n=$(awk '/#\[cfg\(test\)\]/ {exit} {c++} END {print c+0}' "$f")
    if ((n > max)); then
        echo "  $f: $n lines before its tests (max $max): split it by responsibility" >&2
        fail=1
    fi
done < <(find src cli/src -name '*.rs' | sort)

echo "check-sizes: README.md: at most $readme_max lines"
readme=$(wc -l <README.md)
if ((readme > readme_max)); then
    if [[ ${README_WARN_ONLY:-0} == 1 ]]; then
        echo "  WARNING: README.md has $readme lines (max $readme_max; README_WARN_ONLY=1)" >&2
    else
        echo "  README.md has $readme lines (max $readme_max): move reference text to docs/" >&2
        fail=1
    fi
fi

if ((fail)); then
    echo "check-sizes: FAILED" >&2
    exit 1
fi
echo "check-sizes: OK"
