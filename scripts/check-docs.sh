#!/usr/bin/env bash
# Checks that what the documents name exists (issue #31): every repository path they cite, in
# backticks or as a markdown link, and every `bert_edge::…` item. Exits 1 listing what is missing.
#
#   scripts/check-docs.sh            # README.md, docs/**/*.md, deploy/*.md, bench/README.md
#   scripts/check-docs.sh FILE.md…   # only these
#
# What counts as a path: a markdown link target that is not a URL or an in-page anchor
# (resolved from the linking file's directory; its #anchor must be a heading of the target
# when the target is markdown), and a backticked token that starts with one of the repository's
# top-level directories (src/ tests/ scripts/ cli/ docs/ bench/ models/ deploy/ fuzz/ vendor/
# examples/), resolved from the repository root. A path may end in `:LINE` or `::item`
# (stripped), or in `/` (a directory).
#
# Ignored (the ignore list, kept small on purpose):
#   - URLs, mailto:, in-page anchors; anything with a glob or placeholder character: * ? < > { } $ …
#   - generated trees: target/, bench/out/, fuzz/artifacts/, fuzz/corpus/, models/.venv/,
#     models/base/, models/real/ (made by models/generate, git-ignored)
#   - a missing path with a placeholder written in capitals: a component that is all caps,
#     digits, '_' or '-' (+ extension), or holds a word of 3+ capitals (FILE.onnx,
#     models/base/tasks/TASK, bench/results/tasks-base-TASK-20261203.md); paths that exist
#     (PATCHED.md) are always fine
#   - tokens with spaces (commands such as `bench/load.sh --x`: the first word is checked)
#   - `-o X.nnef.tar` style outputs are not paths under the prefixes above, so never checked
# Symbols: `bert_edge::a::b::Item` (in backticks) must name a `pub fn|struct|enum|trait|type|
# const|mod|use … Item` somewhere under src/ (a grep, not a resolver: `Item::Variant` checks
# Item; a lower-case last segment is checked as a fn or mod).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then
    files=("$@")
else
    mapfile -t files < <(ls README.md bench/README.md deploy/*.md 2>/dev/null; find docs -name '*.md' | sort)
fi

python3 - "${files[@]}" <<'PY'
import os, re, sys

PREFIXES = ("src/", "tests/", "scripts/", "cli/", "docs/", "bench/", "models/", "deploy/",
            "fuzz/", "vendor/", "examples/")
GENERATED = ("target/", "bench/out/", "fuzz/artifacts/", "fuzz/corpus/", "models/.venv/",
             "models/base/", "models/real/")
PLACEHOLDER = re.compile(r"^[A-Z0-9_\-]+(\.[a-z0-9.]+)?$")
GLOBBY = re.compile(r"[*?<>{}$|…\[\]]")
SRC_TEXT = None
problems = []

def slug(heading):
    h = heading.strip().lower()
    h = re.sub(r"[`*_]", lambda m: "_" if m.group(0) == "_" else "", h)
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")

anchor_cache = {}
def anchors(path):
    if path not in anchor_cache:
        found, fence = set(), False
        counts = {}
        for line in open(path, encoding="utf-8"):
            if line.startswith("```"):
                fence = not fence
            if fence:
                continue
            m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                s = slug(m.group(1))
                n = counts.get(s, 0)
                counts[s] = n + 1
                found.add(s if n == 0 else f"{s}-{n}")
        anchor_cache[path] = found
    return anchor_cache[path]

CAPS_WORD = re.compile(r"(^|[^A-Za-z])[A-Z]{3,}([^A-Za-z]|$)")

def skip(p):
    """Not checked at all: globs, placeholders' syntax, generated trees."""
    if not p or GLOBBY.search(p) or " " in p:
        return True
    return (p.rstrip("/") + "/").startswith(GENERATED)

def placeholder(p):
    """A missing path is forgiven if a component is a capitals placeholder (FILE.onnx,
    tasks/TASK, compare-XXXX.json); real capitals files (PATCHED.md) exist and pass anyway."""
    return any(PLACEHOLDER.match(c) or CAPS_WORD.search(c.rsplit(".", 1)[0])
               for c in p.rstrip("/").split("/") if any(ch.isalpha() for ch in c))

def strip_suffix(p):
    p = re.sub(r"::.*$", "", p)
    p = re.sub(r":\d+(-\d+)?$", "", p)
    return re.sub(r"[.,;:)]+$", "", p) if not p.endswith("/") else p

def src_text():
    global SRC_TEXT
    if SRC_TEXT is None:
        chunks = []
        for root, _, names in os.walk("src"):
            for n in names:
                if n.endswith(".rs"):
                    chunks.append(open(os.path.join(root, n), encoding="utf-8").read())
        SRC_TEXT = "\n".join(chunks)
    return SRC_TEXT

def symbol_exists(sym):
    parts = [s for s in sym.split("::")[1:] if s]
    if not parts:
        return True
    # the last item written in CamelCase, else the last segment (a fn or a module)
    item = next((s for s in reversed(parts) if s[:1].isupper()), None)
    if item is not None:
        idx = parts.index(item)
        if idx > 0 and parts[idx - 1][:1].isupper():   # Type::Variant → Type
            item = parts[idx - 1]
        pat = rf"pub(\([^)]*\))?\s+(struct|enum|trait|type|const|static)\s+{re.escape(item)}\b" \
              rf"|pub\s+use\s+[^;]*\b{re.escape(item)}\b"
    else:
        item = parts[-1]
        pat = rf"pub(\([^)]*\))?\s+(fn|mod)\s+{re.escape(item)}\b|pub\s+use\s+[^;]*\b{re.escape(item)}\b"
    return re.search(pat, src_text()) is not None

for doc in sys.argv[1:]:
    text = open(doc, encoding="utf-8").read()
    base = os.path.dirname(doc)
    # code blocks: only their backticked spans count, not their bodies (shell examples)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    lines_of = {}
    def where(s):
        return f"{doc}:{text[:text.find(s)].count(chr(10)) + 1}" if s in text else doc
    # markdown links and images
    for m in re.finditer(r"\]\(([^)\s]+)\)", prose):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        if skip(path):
            continue
        full = os.path.normpath(os.path.join(base, path))
        if full.startswith(".."):
            problems.append(f"{where(m.group(0))}: link leaves the repository: {target}")
        elif not os.path.exists(full) and not placeholder(path):
            problems.append(f"{where(m.group(0))}: no such file: {target} ({full})")
        elif anchor and full.endswith(".md") and anchor not in anchors(full):
            problems.append(f"{where(m.group(0))}: no heading #{anchor} in {full}")
    # backticked repository paths and bert_edge:: symbols
    for m in re.finditer(r"`([^`\n]+)`", prose):
        token = m.group(1).strip()
        first = token.split()[0] if token.split() else ""
        if first.startswith("bert_edge::"):
            sym = re.sub(r"[^\w:].*$", "", first)
            if not symbol_exists(sym):
                problems.append(f"{where(m.group(0))}: no pub item for {sym} under src/")
            continue
        # `PATH --flags`, `VAR=x PATH`, `cargo run ... PATH`: check path-like words
        for word in token.split():
            if "=" in word:
                word = word.split("=", 1)[1]
            if not word.startswith(PREFIXES):
                continue
            p = strip_suffix(word)
            if skip(p):
                continue
            if not os.path.exists(p) and not placeholder(p):
                problems.append(f"{where(m.group(0))}: no such path: {p}")

if problems:
    print("check-docs: %d reference(s) to nothing:" % len(problems))
    for p in problems:
        print("  " + p)
    sys.exit(1)
print("check-docs: %d files, every path and bert_edge:: item they name exists" % len(sys.argv[1:]))
PY
