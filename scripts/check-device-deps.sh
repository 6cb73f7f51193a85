#!/usr/bin/env bash
# A device build of the library alone (no CLI, no ONNX importer) must not link an HTTP,
# argument-parsing or JSON-lines crate: those belong to the CLI (cli/). Fails listing any
# that `cargo tree` finds; run by scripts/test-all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-aarch64-unknown-linux-gnu}
tree=$(cargo tree -p bert-edge --no-default-features --features tokenizer --edges normal \
    --target "$target" --prefix none --format '{p}' | awk '{print $1}' | sort -u)
bad=$(grep -xE 'tiny_http|hyper|axum|ureq|reqwest|signal-hook|pico-args|clap|bert-edge-cli' <<<"$tree" || true)
echo "device library build ($target): $(wc -l <<<"$tree") crates"
if [[ -n $bad ]]; then
    echo "check-device-deps: the library's device build links: $bad" >&2
    exit 1
fi
echo "check-device-deps: OK (no HTTP or argument-parsing crate)"
