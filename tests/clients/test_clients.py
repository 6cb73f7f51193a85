#!/usr/bin/env python3
"""Real clients against `bert-edge serve`: OpenAI's SDK, huggingface_hub's InferenceClient and
plain `requests` on TEI's routes, each answer compared with what the library computes
(`bert-edge encode`) or with onnxruntime on the same ONNX file and token ids.

Run by tests/clients/run.sh (which makes the venv); the last line printed is
`N passed, N failed`, and the exit status is 1 when a check failed.

    BIN=target/debug/bert-edge python tests/clients/test_clients.py [-k SUBSTRING] [-v]
"""

import argparse
import base64
import json
import math
import os
import queue
import re
import subprocess
import sys
import threading
import time
import traceback

import numpy as np
import onnxruntime as ort
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SEQ = 32
API_KEY = "client-tests-key-0123"

EMBED_MODEL = "models/tiny/bert_ids_f32.onnx"
CLASSIFIER = "models/tiny/tasks/text-classification/optimum_f32.onnx"
RERANKER = "models/tiny/tasks/rerank/optimum_f32.onnx"
FILL_MASK = "models/tiny/tasks/fill-mask/torch_f32.onnx"

TEXTS = ["我爱北京天安门。", "今天天气很好，我们去公园。", "张三在上海的公司工作。"]
QUERY = "北京是中国的首都吗？"
DOCS = ["我爱北京天安门。", "这部电影太难看了，浪费时间！", "我的iphone 15坏了，修理花了799元。",
        "《红楼梦》是曹雪芹写的，成书于18世纪。"]
LONG = "今天天气很好，我们一起去公园散步吧。" * 4     # 72 characters: > 32 tokens

BIN = os.environ.get("BIN") or os.path.join(ROOT, "target", "debug", "bert-edge")
VERBOSE = False


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Server and library
# --------------------------------------------------------------------------------------------

class Server:
    """`bert-edge serve` on an ephemeral port; `url` once it answers GET /health with 200."""

    def __init__(self, model, *extra, start_timeout=60.0, health_timeout=30.0):
        self.model = model
        self.argv = [BIN, "serve", "--model", model, "--seq", str(SEQ), "--bind", "127.0.0.1:0",
                     "--workers", "1", *extra]
        self.lines = []
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        found = queue.Queue()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                m = re.search(r"listening on (http://\S+)", line)
                if m:
                    found.put(m.group(1))
            found.put(None)
        threading.Thread(target=read, daemon=True).start()
        try:
            url = found.get(timeout=start_timeout)
        except queue.Empty:
            url = None
        if url is None:
            self.stop()
            raise RuntimeError(f"{' '.join(self.argv)}: no 'listening on' line within "
                               f"{start_timeout} s; stderr: {self.lines[-5:]}")
        self.url = url.rstrip("/")
        deadline = time.time() + health_timeout
        while True:
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"{self.url}/health not 200 within {health_timeout} s")
            time.sleep(0.05)
        log(f"server: {model} on {self.url}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def post(self, path, body, **kw):
        return requests.post(self.url + path, json=body, timeout=30, **kw)


def library(model, lines, normalize=False):
    """`bert-edge encode` on JSON lines: one answer dict per line."""
    argv = [BIN, "encode", "--model", model, "--seq", str(SEQ)] + (["--normalize"] if normalize
                                                                   else [])
    p = subprocess.run(argv, cwd=ROOT, input="".join(json.dumps(x, ensure_ascii=False) + "\n"
                                                     for x in lines),
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.strip()[-400:]}")
    out = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    if len(out) != len(lines):
        raise RuntimeError(f"encode answered {len(out)} lines for {len(lines)}")
    for x in out:
        if "error" in x:
            raise RuntimeError(f"encode: {x['error']}")
    return out


def lib_vectors(texts):
    return [np.array(a["embedding"], dtype=np.float64)
            for a in library(EMBED_MODEL, [{"text": t} for t in texts], normalize=True)]


def feed(answer):
    """onnxruntime feed of one `encode` answer: its ids cut to its real length."""
    n = answer["tokens"]
    return {k: np.array([answer[k][:n]], dtype=np.int64)
            for k in ("input_ids", "attention_mask", "token_type_ids")}


_sessions = {}


def onnx_run(model, answer):
    if model not in _sessions:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        _sessions[model] = ort.InferenceSession(os.path.join(ROOT, model), so,
                                                providers=["CPUExecutionProvider"])
    return _sessions[model].run(None, feed(answer))[0][0]


def softmax(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def labels_of(model):
    with open(os.path.join(ROOT, os.path.dirname(model), "config.json"), encoding="utf-8") as f:
        id2label = json.load(f)["id2label"]
    return [id2label[str(i)] for i in range(len(id2label))]


class CheckFailed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def close(got, want, tol, what):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    expect(got.shape == want.shape, f"{what}: shape {got.shape} != expected {want.shape}")
    d = float(np.abs(got - want).max()) if got.size else 0.0
    expect(d <= tol, f"{what}: max |difference| {d:.3g} > {tol}")
    return d


def answer_of(r, limit=400):
    return f"{r.status_code} {r.text[:limit]}"


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

CHECKS = []


def check(name, server):
    def deco(fn):
        CHECKS.append((name, server, fn))
        return fn
    return deco


# ---- OpenAI SDK ----

def openai_client(srv, key="unused-key-0000"):
    import openai
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0, timeout=30)


@check("openai: embeddings.create default (base64) = library", "embed")
def _(srv):
    want = lib_vectors(TEXTS)
    r = openai_client(srv).embeddings.with_raw_response.create(model="x", input=TEXTS)
    sent = json.loads(r.http_request.content)
    expect(sent.get("encoding_format") == "base64",
           f"the SDK sent encoding_format {sent.get('encoding_format')!r}, expected 'base64'")
    raw = r.http_response.json()
    expect(all(isinstance(d["embedding"], str) for d in raw["data"]),
           "the server did not answer base64 strings")
    resp = r.parse()
    expect(resp.model == "x", f"model {resp.model!r}, expected the request's 'x'")
    expect([d.index for d in resp.data] == list(range(len(TEXTS))), "indices out of order")
    for i, d in enumerate(resp.data):
        close(d.embedding, want[i], 1e-5, f"text {i}")
    # the base64 bytes themselves: little-endian f32
    v0 = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    close(v0, want[0], 1e-5, "decoded base64 of text 0")
    expect(resp.usage.prompt_tokens > 0, f"usage {resp.usage}")


@check("openai: embeddings.create encoding_format=float = library", "embed")
def _(srv):
    want = lib_vectors(TEXTS)
    resp = openai_client(srv).embeddings.create(model="x", input=TEXTS, encoding_format="float")
    expect(len(resp.data) == len(TEXTS), f"{len(resp.data)} vectors for {len(TEXTS)} texts")
    for i, d in enumerate(resp.data):
        close(d.embedding, want[i], 1e-5, f"text {i}")
    one = openai_client(srv).embeddings.create(model="x", input=TEXTS[0], encoding_format="float")
    close(one.data[0].embedding, want[0], 1e-5, "a single string input")


@check("openai: dimensions=16 = library's first 16 values, renormalized", "embed")
def _(srv):
    want = lib_vectors(TEXTS[:1])[0][:16]
    want = want / np.linalg.norm(want)
    resp = openai_client(srv).embeddings.create(model="x", input=TEXTS[0], dimensions=16)
    close(resp.data[0].embedding, want, 1e-5, "16-dimension vector")


@check("openai: wrong api_key -> AuthenticationError (401)", "embed_key")
def _(srv):
    import openai
    try:
        openai_client(srv, "wrong-key-9999").embeddings.create(model="x", input="我爱学习")
    except openai.AuthenticationError as e:
        expect(e.status_code == 401, f"status {e.status_code}")
        return
    except openai.APIStatusError as e:
        raise CheckFailed(f"{type(e).__name__} {e.status_code}: {e.response.text[:300]}")
    raise CheckFailed("the request with the wrong key succeeded")


@check("openai: right api_key works (and no key -> 401)", "embed_key")
def _(srv):
    want = lib_vectors(["我爱学习"])
    resp = openai_client(srv, API_KEY).embeddings.create(model="x", input="我爱学习")
    close(resp.data[0].embedding, want[0], 1e-5, "vector")
    r = requests.post(srv.url + "/v1/embeddings", json={"model": "x", "input": "我爱学习"},
                      timeout=30)
    expect(r.status_code == 401, f"no Authorization header: {answer_of(r)}")


@check("openai: too long input (truncate off) -> an API error naming the counts", "embed")
def _(srv):
    import openai
    n = len(srv.post("/tokenize", {"inputs": LONG}).json()[0])
    try:
        openai_client(srv).embeddings.create(model="x", input=LONG, encoding_format="float")
    except openai.APIStatusError as e:
        expect(e.status_code in (400, 413, 422), f"status {e.status_code}")
        body = e.response.json()
        msg = body.get("error", {}).get("message", "") if isinstance(body.get("error"), dict) \
            else ""
        expect(msg, f"not OpenAI's error shape {{error: {{message, type, ...}}}}: {body}")
        expect(str(n) in msg and str(SEQ) in msg,
               f"message does not name {n} tokens and the limit {SEQ}: {msg!r}")
        return
    raise CheckFailed(f"a {n}-token input was embedded without truncation")


# ---- huggingface_hub InferenceClient ----

def hf_client(srv):
    from huggingface_hub import InferenceClient
    return InferenceClient(model=srv.url, timeout=30)


@check("huggingface_hub: feature_extraction = library", "embed")
def _(srv):
    want = lib_vectors([TEXTS[1]])
    got = np.asarray(hf_client(srv).feature_extraction(TEXTS[1]))
    expect(got.size == want[0].size, f"shape {got.shape}, expected {want[0].size} values")
    close(got.reshape(-1), want[0], 1e-5, "vector")


@check("huggingface_hub: sentence_similarity = cosines of library vectors", "embed")
def _(srv):
    v = lib_vectors(TEXTS)
    want = [float(v[0] @ x / (np.linalg.norm(v[0]) * np.linalg.norm(x))) for x in v[1:]]
    got = hf_client(srv).sentence_similarity(TEXTS[0], TEXTS[1:])
    close(got, want, 1e-5, "cosines")


@check("huggingface_hub: text_classification = onnxruntime softmax", "classifier")
def _(srv):
    text = "这部电影太难看了，浪费时间！"
    a = library(CLASSIFIER, [{"text": text}])[0]
    p = softmax(onnx_run(CLASSIFIER, a))
    labels = labels_of(CLASSIFIER)
    want = sorted(zip(labels, p), key=lambda x: -x[1])
    got = hf_client(srv).text_classification(text)
    if not isinstance(got, list):
        # huggingface_hub takes element [0] of the answer: HF's Inference API answers [[...]],
        # TEI's /predict a flat [...] for one input, so against TEI the client gets the top one
        got = [got]
    expect(len(got) >= 1, "no prediction")
    for i, g in enumerate(got):
        expect(g.label == want[i][0], f"rank {i}: label {g.label!r}, expected {want[i][0]!r} "
                                      f"(expected {[(l, round(s, 6)) for l, s in want]})")
        close(g.score, want[i][1], 1e-4, f"score of {g.label}")
    if len(got) != len(want):
        print(f"    note: text_classification returned {len(got)} of {len(want)} labels "
              f"(the client indexes [0] of TEI's flat list)")


# ---- TEI routes with requests ----

def rerank_reference(texts):
    answers = library(RERANKER, [{"text": QUERY, "text_pair": t} for t in texts])
    return np.array([onnx_run(RERANKER, a)[0] for a in answers], dtype=np.float64)


@check("/rerank: order and sigmoid scores = onnxruntime", "reranker")
def _(srv):
    logits = rerank_reference(DOCS)
    r = srv.post("/rerank", {"query": QUERY, "texts": DOCS})
    expect(r.status_code == 200, answer_of(r))
    got = r.json()
    expect(isinstance(got, list) and all({"index", "score"} <= set(x) for x in got),
           f"not [{{index, score}}]: {got}")
    order = [x["index"] for x in got]
    want_order = [int(i) for i in np.argsort(-logits, kind="stable")]
    expect(order == want_order, f"order {order}, onnxruntime's {want_order} (logits "
                                f"{np.round(logits, 5).tolist()})")
    for x in got:
        close(x["score"], sigmoid(logits[x["index"]]), 1e-4, f"score of text {x['index']}")


@check("/rerank: raw_scores = onnxruntime logits", "reranker")
def _(srv):
    logits = rerank_reference(DOCS)
    r = srv.post("/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": True,
                             "return_text": True})
    expect(r.status_code == 200, answer_of(r))
    got = r.json()
    for x in got:
        close(x["score"], logits[x["index"]], 1e-4, f"raw score of text {x['index']}")
        expect(x.get("text") == DOCS[x["index"]], f"return_text: {x}")


@check("/rerank: documents + top_n -> results [{index, relevance_score, document}]", "reranker")
def _(srv):
    logits = rerank_reference(DOCS)
    r = srv.post("/rerank", {"query": QUERY, "documents": DOCS, "top_n": 2})
    expect(r.status_code == 200, answer_of(r))
    body = r.json()
    res = body.get("results") if isinstance(body, dict) else None
    expect(isinstance(res, list) and len(res) == 2, f"not 2 results: {body}")
    want = [int(i) for i in np.argsort(-logits, kind="stable")[:2]]
    expect([x.get("index") for x in res] == want, f"indices {[x.get('index') for x in res]}, "
                                                  f"expected {want}")
    for x in res:
        expect({"index", "relevance_score", "document"} <= set(x), f"fields {sorted(x)}")
        close(x["relevance_score"], sigmoid(logits[x["index"]]), 1e-4, "relevance_score")
        doc = x["document"]
        text = doc.get("text") if isinstance(doc, dict) else doc
        expect(text == DOCS[x["index"]], f"document {doc!r}")


@check("/predict: a pair [a, b] = onnxruntime softmax of the pair", "classifier")
def _(srv):
    a, b = "北京是中国的首都。", "上海是一座国际化大都市。"
    ans = library(CLASSIFIER, [{"text": a, "text_pair": b}])[0]
    expect(1 in ans["token_type_ids"], "encode did not tokenize a pair")
    p = softmax(onnx_run(CLASSIFIER, ans))
    labels = labels_of(CLASSIFIER)
    r = srv.post("/predict", {"inputs": [a, b]})
    expect(r.status_code == 200, answer_of(r))
    got = r.json()
    expect(isinstance(got, list) and len(got) == len(labels) and
           all(isinstance(x, dict) for x in got), f"not [{{score, label}}] x {len(labels)}: {got}")
    want = sorted(zip(labels, p), key=lambda x: -x[1])
    expect([x["label"] for x in got] == [l for l, _ in want],
           f"labels {[x['label'] for x in got]}, expected {[l for l, _ in want]}")
    close([x["score"] for x in got], [s for _, s in want], 1e-4, "scores")


@check("/embed: too long with truncate false -> 413/422 naming count and limit", "embed")
def _(srv):
    n = len(srv.post("/tokenize", {"inputs": LONG}).json()[0])
    expect(n > SEQ, f"test text has only {n} tokens")
    r = srv.post("/embed", {"inputs": LONG, "truncate": False})
    expect(r.status_code in (413, 422), f"expected 413/422, got {answer_of(r)}")
    body = r.json()
    msg = body.get("error", "") if isinstance(body, dict) else ""
    expect(isinstance(msg, str) and str(n) in msg and str(SEQ) in msg,
           f"body does not name {n} tokens and the limit {SEQ}: {body}")
    # TEI's ErrorType is serialized by serde's default: the variant name, "Validation"
    expect(body.get("error_type") == "Validation", f"error_type {body.get('error_type')!r}, "
                                                   f"TEI says 'Validation'")


@check("/embed: too long with truncate true -> 200 (= library's truncated vector)", "embed")
def _(srv):
    r = srv.post("/embed", {"inputs": LONG, "truncate": True})
    expect(r.status_code == 200, answer_of(r))
    got = r.json()
    expect(len(got) == 1, f"{len(got)} vectors")
    close(got[0], lib_vectors([LONG])[0], 1e-5, "vector")
    expect(r.headers.get("x-truncated-inputs") in (None, "1"),
           f"x-truncated-inputs {r.headers.get('x-truncated-inputs')}")


@check("/tokenize: TEI's [[{id, text, special, start, stop}]] with byte offsets", "embed")
def _(srv):
    text = "我爱 AI"
    r = srv.post("/tokenize", {"inputs": text})
    expect(r.status_code == 200, answer_of(r))
    got = r.json()
    expect(isinstance(got, list) and len(got) == 1 and isinstance(got[0], list),
           f"not [[...]]: {got}")
    toks = got[0]
    raw = text.encode("utf-8")
    for t in toks:
        expect(set(t) == {"id", "text", "special", "start", "stop"}, f"fields {sorted(t)}")
        if t["special"]:
            continue
        expect(isinstance(t["start"], int) and isinstance(t["stop"], int), f"offsets {t}")
        expect(raw[t["start"]:t["stop"]].decode("utf-8") == t["text"],
               f"bytes {t['start']}..{t['stop']} of {text!r} are not {t['text']!r}")
    want_ids = [a for a in library(EMBED_MODEL, [{"text": text}])[0]["input_ids"] if a][:len(toks)]
    expect([t["id"] for t in toks] == want_ids, f"ids {[t['id'] for t in toks]}, "
                                               f"library {want_ids}")
    expect(toks[0]["special"] and toks[-1]["special"], "no [CLS]/[SEP] marked special")
    expect([(t["start"], t["stop"]) for t in toks[1:3]] == [(0, 3), (3, 6)],
           f"the CJK characters' offsets are not bytes: {toks[1:3]}")


@check("/decode: ids round-trip /tokenize -> /decode -> /tokenize", "embed")
def _(srv):
    text = "我爱 AI"
    ids = [t["id"] for t in srv.post("/tokenize", {"inputs": text}).json()[0]]
    # "AI" is [UNK] in this cased vocabulary, a special token that the default
    # skip_special_tokens drops: keep the special tokens to get every id back
    r = srv.post("/decode", {"ids": ids, "skip_special_tokens": False})
    expect(r.status_code == 200, answer_of(r))
    dec = r.json()
    expect(isinstance(dec, list) and len(dec) == 1 and isinstance(dec[0], str),
           f"not [string]: {dec}")
    back = srv.post("/tokenize", {"inputs": dec[0], "add_special_tokens": False}).json()[0]
    expect([t["id"] for t in back] == ids, f"{ids} -> {dec[0]!r} -> {[t['id'] for t in back]}")
    # and without the [UNK]: the default decode, then tokenize again
    text2 = "我爱北京天安门。"
    ids2 = [t["id"] for t in srv.post("/tokenize", {"inputs": text2}).json()[0]]
    dec2 = srv.post("/decode", {"ids": ids2}).json()[0]
    back2 = [t["id"] for t in srv.post("/tokenize", {"inputs": dec2}).json()[0]]
    expect(back2 == ids2, f"{ids2} -> {dec2!r} -> {back2}")


@check("/info: model_id, model_type, max_input_length, max_client_batch_size", "embed")
def _(srv):
    r = requests.get(srv.url + "/info", timeout=10)
    expect(r.status_code == 200, answer_of(r))
    info = r.json()
    missing = [k for k in ("model_id", "model_type", "max_input_length", "max_client_batch_size")
               if k not in info]
    expect(not missing, f"missing {missing}: {info}")
    expect(info["max_input_length"] == SEQ, f"max_input_length {info['max_input_length']}")
    expect("embedding" in info["model_type"], f"model_type {info['model_type']}")


@check("/info: the reranker is a reranker, the classifier a classifier", "reranker")
def _(srv):
    info = requests.get(srv.url + "/info", timeout=10).json()
    expect(set(info.get("model_type", {})) == {"reranker"}, f"model_type {info.get('model_type')}")
    expect(info["model_type"]["reranker"].get("id2label") == {"0": "LABEL_0"},
           f"id2label {info['model_type']['reranker']}")


@check("/embed_sparse (SPLADE) = max over tokens of log1p(relu(onnxruntime logits))", "fill_mask")
def _(srv):
    text = "今天天气很好，我们去公园。"
    a = library(FILL_MASK, [{"text": text}])[0]
    logits = onnx_run(FILL_MASK, a).astype(np.float64)          # (tokens, vocab)
    want = np.log1p(np.maximum(logits, 0.0)).max(axis=0)
    r = srv.post("/embed_sparse", {"inputs": text})
    expect(r.status_code == 200, answer_of(r))
    got = r.json()
    expect(isinstance(got, list) and len(got) == 1, f"not [[...]]: {str(got)[:200]}")
    idx = np.array([x["index"] for x in got[0]], dtype=np.int64)
    val = np.array([x["value"] for x in got[0]], dtype=np.float64)
    expect(len(idx) > 0, "no weights")
    expect((val > 0).all(), f"{int((val <= 0).sum())} values <= 0")
    expect((idx >= 0).all() and (idx < 21128).all(), f"indices outside 0..21127: {idx.max()}")
    expect(len(set(idx.tolist())) == len(idx), "repeated indices")
    nz = np.flatnonzero(want > 0)
    if set(nz.tolist()) != set(idx.tolist()):
        # what differs, and whether leaving out [CLS]/[SEP] explains it
        inner = np.log1p(np.maximum(logits[1:-1], 0.0)).max(axis=0)
        raise CheckFailed(f"{len(idx)} indices, onnxruntime has {len(nz)} positive "
                          f"(without [CLS]/[SEP]: {int((inner > 0).sum())})")
    dense = np.zeros_like(want)
    dense[idx] = val
    close(dense, want, 1e-4 + 1e-5 * float(want.max()), "weights")


# --------------------------------------------------------------------------------------------

SERVERS = {
    "embed": (EMBED_MODEL, ()),
    "embed_key": (EMBED_MODEL, ("--api-key", API_KEY)),
    "classifier": (CLASSIFIER, ()),
    "reranker": (RERANKER, ()),
    "fill_mask": (FILL_MASK, ()),
}


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", help="run only the checks whose name contains this")
    ap.add_argument("-v", action="store_true", help="tracebacks of failures")
    args = ap.parse_args()
    VERBOSE = args.v
    if not os.access(BIN, os.X_OK):
        print(f"test_clients.py: error: no executable {BIN} (cargo build -p bert-edge-cli, or "
              f"BIN=...)", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    for m in {m for m, _ in SERVERS.values()}:
        if not os.path.isfile(os.path.join(ROOT, m)):
            print(f"test_clients.py: error: no {m}", file=sys.stderr)
            print("0 passed, 1 failed")
            return 1
    t0 = time.time()
    checks = [c for c in CHECKS if not args.k or args.k in c[0]]
    passed = failed = 0
    for key, (model, extra) in SERVERS.items():
        group = [c for c in checks if c[1] == key]
        if not group:
            continue
        try:
            srv = Server(model, *extra)
        except Exception as e:
            for name, _, _ in group:
                print(f"FAIL {name}: server did not start: {e}")
                failed += 1
            continue
        try:
            for name, _, fn in group:
                t = time.time()
                try:
                    fn(srv)
                    print(f"ok   {name} ({time.time() - t:.2f} s)", flush=True)
                    passed += 1
                except CheckFailed as e:
                    print(f"FAIL {name}: {e}", flush=True)
                    failed += 1
                except Exception as e:
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    print(f"FAIL {name}: {type(e).__name__}: {first[:500]}", flush=True)
                    if VERBOSE:
                        traceback.print_exc()
                    failed += 1
                if srv.proc.poll() is not None:
                    print(f"     server exited with {srv.proc.returncode}: {srv.lines[-3:]}")
        finally:
            srv.stop()
    print(f"clients: {len(checks)} checks in {time.time() - t0:.1f} s", file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
