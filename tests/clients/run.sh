#!/usr/bin/env bash
# Real-client tests of `bert-edge serve`: OpenAI's Python SDK, huggingface_hub's InferenceClient
# and plain requests on TEI's routes, answers compared with `bert-edge encode` and onnxruntime.
#
#   tests/clients/run.sh [-k SUBSTRING] [-v]
#
# Builds nothing: expects target/debug/bert-edge (cargo build -p bert-edge-cli), or BIN=PATH.
# Python: a venv at ${BERT_EDGE_CLIENTS_VENV:-target/clients-venv}, made from
# tests/clients/requirements.txt with python3 (PYTHON=...), remade when that file's sha256
# changes (~15 s, ~150 MB: no torch). Fixtures: models/tiny/ (committed).
# Exit status 0 only if every check passed; the last line is `N passed, N failed`.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root" || exit 2
prog="tests/clients/run.sh"

export BIN="${BIN:-$root/target/debug/bert-edge}"
case "$BIN" in /*) ;; *) BIN="$root/$BIN" ;; esac
if [ ! -x "$BIN" ]; then
    echo "$prog: error: no $BIN (cargo build -p bert-edge-cli, or BIN=...)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

venv="${BERT_EDGE_CLIENTS_VENV:-$root/target/clients-venv}"
py="$venv/bin/python"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$py" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    t0=$(date +%s)
    echo "$prog: creating $venv from tests/clients/requirements.txt..." >&2
    rm -rf "$venv"
    if ! { "${PYTHON:-python3}" -m venv "$venv" >&2 &&
           "$py" -m pip install --quiet --disable-pip-version-check \
               -r "$here/requirements.txt" >&2; }; then
        echo "$prog: error: cannot make the venv $venv" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "$want" > "$stamp"
    echo "$prog: venv ready in $(( $(date +%s) - t0 )) s" >&2
fi

t0=$(date +%s)
"$py" -u "$here/test_clients.py" "$@"
rc=$?
echo "$prog: finished in $(( $(date +%s) - t0 )) s (exit $rc)" >&2
if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
    # test_clients.py died before its closing line (the line printed last is what CI reads)
    echo "0 passed, 1 failed"
    exit 1
fi
exit $rc
