#!/usr/bin/env python3
"""Export BERT (bert-base-chinese architecture) to ONNX for bert-edge.

For one BERT config this writes, into --out:

  bert_ids_f32.onnx      inputs input_ids, attention_mask, token_type_ids (int64 [batch, sequence])
  bert_embeds_f32.onnx   inputs inputs_embeds (f32 [batch, sequence, H]), attention_mask, token_type_ids
                         both: outputs last_hidden_state [batch, sequence, H], pooler_output [batch, H]
  bert_*_f16.onnx        onnxconverter-common float16 conversion (keep_io_types=True), repaired (see below)
  bert_*_int8.onnx       onnxruntime dynamic quantization (QInt8 weights)
  config.json            copy of the config used
  refs/cases.json + refs/*.bin   PyTorch f32 reference inputs/outputs (raw little-endian, C order)
  manifest.json          sizes, sha256, op histograms, I/O, versions, seed, config, accuracy

Weights: either a real checkpoint (--from-pretrained DIR) or deterministic synthetic weights
(every float tensor of the state_dict is derived from the seed and the tensor NAME only, with
numpy's PCG64 generator: no torch RNG, no dependence on parameter order).

Everything is written to a temp dir next to --out and renamed into place at the end.
Re-running with the same config/seed/weights/tool/library versions is a no-op (manifest "key").
Errors the user can fix are reported as one line on stderr and a non-zero exit status.
"""

import argparse
import collections
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings

FORMAT_VERSION = 1           # refs/cases.json "format"
TOOL_NAME = "bert-edge models/export.py"
TOOL_REVISION = 1            # bump on intentional output changes (the file hash is in the key too)
OPSET = 17
DEFAULT_SEED = 1234
F32_MAX_ABS = 1e-4           # ORT f32 vs PyTorch f32
EMBEDS_VS_IDS_MAX_ABS = 1e-5  # PyTorch embeds-path vs ids-path
F16_MIN_COS = 0.9999
INT8_MIN_COS = 0.999
ARCH_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "vocab_size", "max_position_embeddings", "type_vocab_size")

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = time.time()


class ToolError(Exception):
    """An error with a one-line explanation for the user."""


def log(msg):
    print(f"[export {time.time() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def lib_versions():
    v = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "onnx", "onnxruntime", "onnxconverter-common",
                 "numpy", "tokenizers"):
        try:
            v[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            v[dist] = None
    return v


# --------------------------------------------------------------------------------------------
# Test cases (texts are fixed; ids come from the real tokenizer)
# --------------------------------------------------------------------------------------------

TEXT_SHORT = "我爱学习"
TEXT_32 = "今天天气很好，我们一起去公园散步吧。"
TEXT_PAIR_A = "北京是中国的首都。"
TEXT_PAIR_B = "上海是一座国际化大都市。"
TEXT_128 = ("机器学习是人工智能的一个分支，它使计算机能够在没有明确编程的情况下从数据中学习。"
            "近年来，深度学习在图像识别、语音识别和自然语言处理等领域取得了巨大的进展。"
            "预训练语言模型，例如基于变换器结构的双向编码器，通过在大规模文本语料上进行自监督训练，"
            "学到了丰富的语言知识，然后只需少量标注数据就可以在各种下游任务上进行微调。"
            "在树莓派这样的小型设备上运行这些模型，需要仔细地考虑内存、速度和数值精度之间的平衡。")
BATCH3_ROWS = [  # (text_a, text_b or None)
    ("我爱学习", None),
    ("今天天气很好，我们一起去公园散步吧。", None),
    ("北京是中国的首都。", "上海是一座国际化大都市。"),
]

# name, rows, seq
CASE_SPECS = [
    ("unpadded", [(TEXT_SHORT, None)], 6),
    ("seq8", [(TEXT_SHORT, None)], 8),
    ("seq32", [(TEXT_32, None)], 32),
    ("seq128", [(TEXT_128, None)], 128),
    ("pair32", [(TEXT_PAIR_A, TEXT_PAIR_B)], 32),
    ("batch3_seq32", BATCH3_ROWS, 32),
]


def tokenize_cases(tokenizer_path, vocab_size):
    import numpy as np
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_path)
    cases = []
    for name, rows, seq in CASE_SPECS:
        tok.no_padding()
        tok.enable_truncation(max_length=seq)
        tok.enable_padding(length=seq, pad_id=0, pad_type_id=0, pad_token="[PAD]")
        ids, mask, types = [], [], []
        for a, b in rows:
            enc = tok.encode(a, b) if b is not None else tok.encode(a)
            ids.append(enc.ids)
            mask.append(enc.attention_mask)
            types.append(enc.type_ids)
        ids = np.array(ids, dtype=np.int64)
        if ids.max() >= vocab_size:
            raise ToolError(f"tokenizer produced id {ids.max()} >= vocab_size {vocab_size}")
        text = [a if b is None else [a, b] for a, b in rows]
        cases.append({
            "name": name, "batch": len(rows), "seq": seq,
            "text": text[0] if len(text) == 1 else text,
            "input_ids": ids,
            "attention_mask": np.array(mask, dtype=np.int64),
            "token_type_ids": np.array(types, dtype=np.int64),
        })
    unp = cases[0]["input_ids"].tolist()
    if unp != [[101, 2769, 4263, 2110, 739, 102]]:
        raise ToolError(f"tokenizer sanity check failed: '{TEXT_SHORT}' -> {unp}")
    return cases


# --------------------------------------------------------------------------------------------
# Model construction
# --------------------------------------------------------------------------------------------

def synthetic_tensor(seed, name, shape, std, kind):
    """Deterministic tensor from (seed, name): independent of torch RNG and parameter order."""
    import numpy as np
    digest = hashlib.sha256(f"{seed}:{name}".encode("utf-8")).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    z = rng.standard_normal(size=shape, dtype=np.float64)
    if kind == "layernorm_weight":
        return (1.0 + 0.05 * z).astype(np.float32)
    if kind == "layernorm_bias":
        return (0.02 * z).astype(np.float32)
    if kind == "bias":
        return (0.02 * z).astype(np.float32)
    return (std * z).astype(np.float32)


SYNTHETIC_RULES = {
    "weights (matrices, embeddings)": "normal(0, initializer_range)",
    "LayerNorm.weight": "1 + normal(0, 0.05)",
    "LayerNorm.bias": "normal(0, 0.02)",
    "other biases": "normal(0, 0.02)",
    "generator": "numpy.random.default_rng(int.from_bytes(sha256(f'{seed}:{name}').digest()[:8], 'little'))"
                 ".standard_normal(shape, float64), scaled, cast to float32",
    "skipped": "non-floating-point buffers (none are persistent in transformers 4.46 BertModel)",
}


def set_synthetic_weights(model, seed, std):
    import numpy as np
    import torch
    sd = model.state_dict()
    new = {}
    for name, t in sd.items():
        if not t.is_floating_point():
            continue
        if name.endswith("LayerNorm.weight"):
            kind = "layernorm_weight"
        elif name.endswith("LayerNorm.bias"):
            kind = "layernorm_bias"
        elif name.endswith(".bias"):
            kind = "bias"
        else:
            kind = "weight"
        arr = synthetic_tensor(seed, name, tuple(t.shape), std, kind)
        new[name] = torch.from_numpy(np.ascontiguousarray(arr))
    missing, unexpected = model.load_state_dict(new, strict=False)
    float_missing = [k for k in missing if sd[k].is_floating_point()]
    if float_missing or unexpected:
        raise ToolError(f"synthetic weights do not cover the model: missing {float_missing}, "
                        f"unexpected {unexpected}")
    return len(new)


def read_json(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ToolError(f"cannot read {what} {path}: {e.strerror}")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ToolError(f"{what} {path} is not valid JSON: {e}")
    if not isinstance(obj, dict):
        raise ToolError(f"{what} {path} is not a JSON object")
    return data, obj


def validate_config(cfg, path):
    for k in ARCH_KEYS + ("num_attention_heads",):
        if not isinstance(cfg.get(k), int) or cfg[k] <= 0:
            raise ToolError(f"config {path}: '{k}' missing or not a positive integer")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ToolError(f"config {path}: hidden_size {cfg['hidden_size']} is not divisible by "
                        f"num_attention_heads {cfg['num_attention_heads']}")
    if cfg.get("model_type", "bert") != "bert":
        raise ToolError(f"config {path}: model_type is {cfg.get('model_type')!r}, expected 'bert'")


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def validate_pretrained_dir(d, cfg_from_arg, cfg_arg_path):
    if not os.path.exists(d):
        raise ToolError(f"--from-pretrained {d}: no such directory")
    if not os.path.isdir(d):
        raise ToolError(f"--from-pretrained {d}: not a directory")
    cpath = os.path.join(d, "config.json")
    if not os.path.isfile(cpath):
        raise ToolError(f"--from-pretrained {d}: no config.json in the checkpoint directory")
    raw, cfg = read_json(cpath, "checkpoint config")
    validate_config(cfg, cpath)
    weights = [w for w in WEIGHT_FILES if os.path.isfile(os.path.join(d, w))]
    if not weights:
        raise ToolError(f"--from-pretrained {d}: no weights ({' or '.join(WEIGHT_FILES)}) "
                        f"in the checkpoint directory")
    if cfg_from_arg is not None:
        for k in ARCH_KEYS:
            if cfg_from_arg.get(k) != cfg.get(k):
                raise ToolError(f"--from-pretrained {d}: {k} {cfg.get(k)} disagrees with "
                                f"--config {cfg_arg_path} ({cfg_from_arg.get(k)})")
    wpath = os.path.join(d, weights[0])
    return raw, cfg, wpath


def build_model(args, cfg_path, cfg_raw, cfg):
    import torch
    from transformers import BertConfig, BertModel
    from transformers.models.bert.modeling_bert import BertSelfAttention

    if args.from_pretrained:
        log(f"loading checkpoint {args.from_pretrained}")
        try:
            model, info = BertModel.from_pretrained(
                args.from_pretrained, attn_implementation="eager", torch_dtype=torch.float32,
                output_loading_info=True)
        except Exception as e:  # malformed weights etc.
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ToolError(f"--from-pretrained {args.from_pretrained}: cannot load checkpoint: "
                            f"{msg}")
        if info.get("missing_keys"):
            raise ToolError(f"--from-pretrained {args.from_pretrained}: checkpoint lacks "
                            f"{len(info['missing_keys'])} BertModel tensors, e.g. "
                            f"{info['missing_keys'][0]} (they would be random)")
        weights_desc = {"kind": "pretrained", "dir": os.path.abspath(args.from_pretrained),
                        "file": os.path.basename(args.weights_path),
                        "file_sha256": args.weights_sha256}
    else:
        try:
            config = BertConfig.from_json_file(cfg_path)
        except Exception as e:
            raise ToolError(f"config {cfg_path}: cannot build BertConfig: {e}")
        config._attn_implementation = "eager"
        torch.manual_seed(0)  # irrelevant (all floats overwritten) but keeps init quiet/stable
        model = BertModel(config, add_pooling_layer=True)
        n = set_synthetic_weights(model, args.seed, config.initializer_range)
        log(f"synthetic weights: {n} tensors from seed {args.seed}")
        weights_desc = {"kind": "synthetic", "seed": args.seed,
                        "std": config.initializer_range, "rules": SYNTHETIC_RULES}
    model.eval()
    if model.config._attn_implementation != "eager":
        raise ToolError(f"attention implementation is {model.config._attn_implementation}, "
                        f"expected eager")
    att = type(model.encoder.layer[0].attention.self)
    if att is not BertSelfAttention:
        raise ToolError(f"attention module is {att.__name__}, expected BertSelfAttention (eager)")
    model.config.return_dict = False
    return model, weights_desc


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------

def export_graphs(model, tmp, cases):
    import torch

    class IdsWrapper(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids, return_dict=False)
            return out[0], out[1]

    class EmbedsWrapper(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, inputs_embeds, attention_mask, token_type_ids):
            out = self.bert(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                            token_type_ids=token_type_ids, return_dict=False)
            return out[0], out[1]

    c = next(x for x in cases if x["name"] == "batch3_seq32")
    ids = torch.from_numpy(c["input_ids"])
    mask = torch.from_numpy(c["attention_mask"])
    types = torch.from_numpy(c["token_type_ids"])
    with torch.no_grad():
        embeds = model.embeddings.word_embeddings.weight[ids].detach().clone()

    bs = {0: "batch", 1: "sequence"}
    outs = ["last_hidden_state", "pooler_output"]
    out_axes = {"last_hidden_state": {0: "batch", 1: "sequence"}, "pooler_output": {0: "batch"}}
    jobs = [
        ("bert_ids_f32.onnx", IdsWrapper(model), (ids, mask, types),
         ["input_ids", "attention_mask", "token_type_ids"]),
        ("bert_embeds_f32.onnx", EmbedsWrapper(model), (embeds, mask, types),
         ["inputs_embeds", "attention_mask", "token_type_ids"]),
    ]
    for fname, mod, ex, ins in jobs:
        log(f"torch.onnx.export -> {fname}")
        mod.eval()
        axes = {n: bs for n in ins}
        axes.update(out_axes)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(mod, ex, os.path.join(tmp, fname), input_names=ins,
                              output_names=outs, dynamic_axes=axes, opset_version=OPSET,
                              do_constant_folding=True, export_params=True, dynamo=False)


def make_f16(src, dst):
    """float16 conversion with onnxconverter-common, keep_io_types=True, then check + repair.

    The converter is known to leave a float/float16 type mismatch at the pooler: the pooler's
    `hidden_states[:, 0]` Gather reads the tensor that is also the graph output
    `last_hidden_state`; with keep_io_types that output stays float32 (a Cast f16->f32 is
    appended), and if the Gather keeps reading the float32 name, its float32 result meets the
    float16 pooler weights in Gemm/MatMul ("Type parameter (T) ... bound to different types
    (tensor(float) and tensor(float16))"), or stale float32 value_info contradicts the new
    float16 tensors.  onnxconverter-common 1.14.0 rewires consumers of graph outputs to the
    internal float16 tensor (`graph_output_cast_0`), so with the pinned versions the graphs
    come out consistent; `repair_f16` nevertheless checks every node against ONNX type
    inference and, if a node still mixes float and float16 inputs, inserts Cast(to=float16)
    on the float32 input (and re-derives stale value_info).  What it did (normally nothing)
    is recorded in the manifest under variants[...]["repairs"].  Finally the model must pass
    onnx.checker.check_model(full_check=True) (strict type/shape inference).

    Returns (repairs, converter_warnings).
    """
    import onnx
    from onnxconverter_common import float16

    m = onnx.load(src)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m16 = float16.convert_float_to_float16(m, keep_io_types=True)
    # keep the converter's value-clamping notes; drop numpy deprecation noise
    conv_warnings = sorted({str(w.message) for w in caught if "truncated" in str(w.message)})
    repairs = repair_f16(m16)
    probe = onnx.ModelProto()
    probe.CopyFrom(m16)
    del probe.graph.value_info[:]
    inf = onnx.shape_inference.infer_shapes(probe)
    ty = {v.name: onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower()
          for v in list(inf.graph.value_info) + list(inf.graph.output)}
    pooler = [f"{n.op_type} '{n.name}' reads '{n.input[0]}' ({ty.get(n.input[0], '?')})"
              for n in m16.graph.node if n.op_type == "Gather" and "pooler" in n.name]
    try:
        onnx.checker.check_model(m16, full_check=True)
    except Exception as e:
        raise ToolError(f"float16 model {os.path.basename(dst)} fails onnx.checker after repair: "
                        f"{str(e).splitlines()[0]}")
    onnx.save(m16, dst)
    return repairs, conv_warnings, pooler


def repair_f16(m):
    """Insert Casts where a node mixes float and float16 inputs that must share a type.

    Modifies `m` only if something is wrong; returns a list of human-readable repair
    descriptions (empty if nothing was needed).
    """
    import onnx
    from onnx import TensorProto, helper, shape_inference

    F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16
    # Ops whose float inputs (by position; None = all) must have the same element type.
    SAME_TYPE_INPUTS = {
        "Add": (0, 1), "Sub": (0, 1), "Mul": (0, 1), "Div": (0, 1), "MatMul": (0, 1),
        "Gemm": (0, 1, 2), "Where": (1, 2), "Concat": None, "Pow": (0,), "Max": None,
        "Min": None, "Equal": (0, 1), "Less": (0, 1), "Greater": (0, 1),
        "LayerNormalization": (0, 1, 2),
    }

    def infer(model):
        # Infer from scratch: ignore value_info the converter may have left stale.
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.value_info[:]
        return shape_inference.infer_shapes(probe, strict_mode=False)

    repairs = []
    for _ in range(8):  # iterate to a fixed point (one Cast may expose another)
        inferred = infer(m)
        types = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + \
                list(inferred.graph.output):
            types[vi.name] = vi.type.tensor_type.elem_type
        for init in m.graph.initializer:
            types[init.name] = init.data_type
        changed = False
        new_nodes = []
        for node in m.graph.node:
            spec = SAME_TYPE_INPUTS.get(node.op_type, ())
            idx = range(len(node.input)) if spec is None else [i for i in spec if i < len(node.input)]
            ftypes = {i: types.get(node.input[i]) for i in idx if node.input[i]}
            ftypes = {i: t for i, t in ftypes.items() if t in (F32, F16)}
            if F32 in ftypes.values() and F16 in ftypes.values():
                for i, t in ftypes.items():
                    if t == F32:
                        src = node.input[i]
                        cast_out = f"{src}__f16repair"
                        new_nodes.append(helper.make_node(
                            "Cast", [src], [cast_out], to=F16, name=f"{node.name}__f16repair_in{i}"))
                        node.input[i] = cast_out
                        repairs.append(f"Cast(to=float16) inserted on input {i} ('{src}') of "
                                       f"{node.op_type} node '{node.name}'")
                        changed = True
            new_nodes.append(node)
        if not changed:
            break
        del m.graph.node[:]
        m.graph.node.extend(new_nodes)
    # Stale value_info (float where the tensor is now float16) makes loaders reject the model
    # ("Type (tensor(float16)) of output arg ... does not match expected type (tensor(float))").
    inferred = infer(m)
    old = {vi.name: vi.type.tensor_type.elem_type for vi in m.graph.value_info}
    new = {vi.name: vi.type.tensor_type.elem_type for vi in inferred.graph.value_info}
    stale = sorted(n for n, t in old.items() if n in new and new[n] != t)
    for n in stale:
        repairs.append(f"value_info of '{n}' corrected from "
                       f"{TensorProto.DataType.Name(old[n])} to {TensorProto.DataType.Name(new[n])}")
    if repairs:
        del m.graph.value_info[:]
        m.graph.value_info.extend(inferred.graph.value_info)
    return repairs


def make_int8(src, dst):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    import logging
    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(src, dst, weight_type=QuantType.QInt8)


# --------------------------------------------------------------------------------------------
# Reference outputs and checks
# --------------------------------------------------------------------------------------------

def torch_refs(model, cases):
    import torch
    H = model.config.hidden_size
    flav = []
    diffs = {}
    for c in cases:
        ids = torch.from_numpy(c["input_ids"])
        mask = torch.from_numpy(c["attention_mask"])
        types = torch.from_numpy(c["token_type_ids"])
        with torch.no_grad():
            lhs, pool = model(input_ids=ids, attention_mask=mask, token_type_ids=types,
                              return_dict=False)[:2]
            emb = model.embeddings.word_embeddings.weight[ids].detach().clone()
            lhs_e, pool_e = model(inputs_embeds=emb, attention_mask=mask, token_type_ids=types,
                                  return_dict=False)[:2]
        assert lhs.shape == (c["batch"], c["seq"], H) and pool.shape == (c["batch"], H)
        base = {k: c[k] for k in ("name", "batch", "seq", "text")}
        ids_case = dict(base, flavour="ids",
                        inputs={"input_ids": c["input_ids"], "attention_mask": c["attention_mask"],
                                "token_type_ids": c["token_type_ids"]},
                        outputs={"last_hidden_state": lhs.numpy().copy(),
                                 "pooler_output": pool.numpy().copy()})
        emb_case = dict(base, name=c["name"] + "_embeds", flavour="embeds",
                        inputs={"inputs_embeds": emb.numpy().copy(),
                                "attention_mask": c["attention_mask"],
                                "token_type_ids": c["token_type_ids"]},
                        outputs={"last_hidden_state": lhs_e.numpy().copy(),
                                 "pooler_output": pool_e.numpy().copy()})
        d = max(float((lhs - lhs_e).abs().max()), float((pool - pool_e).abs().max()))
        diffs[c["name"]] = d
        if d > EMBEDS_VS_IDS_MAX_ABS:
            raise ToolError(f"PyTorch embeds path differs from ids path on {c['name']}: "
                            f"max abs {d:.3g} > {EMBEDS_VS_IDS_MAX_ABS}")
        flav += [ids_case, emb_case]
    order = [x for x in flav if x["flavour"] == "ids"] + [x for x in flav if x["flavour"] == "embeds"]
    return order, diffs


DT = {"int64": "i64", "float32": "f32"}


def write_refs(refdir, all_cases, H, V):
    import numpy as np
    os.makedirs(refdir)
    out = []
    for c in all_cases:
        entry = {"name": c["name"], "flavour": c["flavour"], "batch": c["batch"], "seq": c["seq"],
                 "text": c["text"], "inputs": {}, "outputs": {}}
        for section in ("inputs", "outputs"):
            for k, arr in c[section].items():
                arr = np.ascontiguousarray(arr)
                fname = f"{c['name']}.{k}.bin"
                with open(os.path.join(refdir, fname), "wb") as f:
                    f.write(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes(order="C"))
                entry[section][k] = {"file": fname, "dtype": DT[str(arr.dtype)],
                                     "shape": list(arr.shape)}
        out.append(entry)
    doc = {"format": FORMAT_VERSION, "hidden_size": H, "vocab_size": V, "cases": out}
    with open(os.path.join(refdir, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")


def run_checks(tmp, all_cases):
    import numpy as np
    import onnxruntime as ort

    def cos(a, b):
        a = a.astype(np.float64)
        b = b.astype(np.float64)
        return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-30)

    so = ort.SessionOptions()
    so.log_severity_level = 3
    results = {}
    failures = []
    for flavour in ("ids", "embeds"):
        for variant in ("f32", "f16", "int8"):
            fname = f"bert_{flavour}_{variant}.onnx"
            try:
                sess = ort.InferenceSession(os.path.join(tmp, fname), so,
                                            providers=["CPUExecutionProvider"])
            except Exception as e:
                raise ToolError(f"onnxruntime cannot load {fname}: {str(e).splitlines()[0]}")
            per_case = {}
            for c in all_cases:
                if c["flavour"] != flavour:
                    continue
                try:
                    lhs, pool = sess.run(["last_hidden_state", "pooler_output"], c["inputs"])
                except Exception as e:
                    raise ToolError(f"onnxruntime cannot run {fname} on {c['name']}: "
                                    f"{str(e).splitlines()[0]}")
                rl, rp = c["outputs"]["last_hidden_state"], c["outputs"]["pooler_output"]
                m = c["inputs"]["attention_mask"].astype(bool)
                tc = cos(rl, lhs)[m]           # per real token
                pc = cos(rp, pool)             # per batch row
                per_case[c["name"]] = {
                    "max_abs_last_hidden_state": float(np.abs(lhs - rl).max()),
                    "max_abs_pooler_output": float(np.abs(pool - rp).max()),
                    "cos_tokens_mean": float(tc.mean()),
                    "cos_tokens_min": float(tc.min()),
                    "cos_pooler_min": float(pc.min()),
                }
            agg = {
                "max_abs": max(max(v["max_abs_last_hidden_state"], v["max_abs_pooler_output"])
                               for v in per_case.values()),
                "cos_tokens_mean_min_over_cases": min(v["cos_tokens_mean"] for v in per_case.values()),
                "cos_tokens_min": min(v["cos_tokens_min"] for v in per_case.values()),
                "cos_pooler_min": min(v["cos_pooler_min"] for v in per_case.values()),
            }
            if variant == "f32":
                agg["criterion"] = f"max_abs <= {F32_MAX_ABS}"
                ok = agg["max_abs"] <= F32_MAX_ABS
            else:
                thr = F16_MIN_COS if variant == "f16" else INT8_MIN_COS
                agg["criterion"] = (f"per case: mean over real tokens of cos(last_hidden_state) "
                                    f">= {thr} and every pooler row cos >= {thr}")
                ok = all(v["cos_tokens_mean"] >= thr and v["cos_pooler_min"] >= thr
                         for v in per_case.values())
            agg["pass"] = bool(ok)
            results[fname] = {"summary": agg, "cases": per_case}
            log(f"check {fname:24s} max_abs={agg['max_abs']:.3e} "
                f"cos_tok_mean>={agg['cos_tokens_mean_min_over_cases']:.7f} "
                f"cos_tok_min={agg['cos_tokens_min']:.7f} cos_pool>={agg['cos_pooler_min']:.7f} "
                f"{'ok' if ok else 'FAIL'}")
            if not ok:
                failures.append(f"{fname} ({agg['criterion']})")
    return results, failures


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------

def describe_onnx(path):
    import onnx
    m = onnx.load(path, load_external_data=False)
    hist = collections.Counter(n.op_type for n in m.graph.node)

    def io(vs):
        out = []
        for v in vs:
            tt = v.type.tensor_type
            shape = [d.dim_param if d.dim_param else d.dim_value for d in tt.shape.dim]
            out.append({"name": v.name, "dtype": onnx.TensorProto.DataType.Name(tt.elem_type).lower(),
                        "shape": shape})
        return out
    init_types = collections.Counter(onnx.TensorProto.DataType.Name(i.data_type).lower()
                                     for i in m.graph.initializer)
    return {
        "size": os.path.getsize(path),
        "sha256": sha256_file(path),
        "opset": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "ir_version": m.ir_version,
        "inputs": io(m.graph.input),
        "outputs": io(m.graph.output),
        "nodes": len(m.graph.node),
        "op_histogram": dict(sorted(hist.items())),
        "initializer_dtypes": dict(sorted(init_types.items())),
    }


def compute_key(cfg_obj, args, versions, weights_ident):
    with open(os.path.abspath(__file__), "rb") as f:
        tool_sha = hashlib.sha256(f.read()).hexdigest()
    with open(args.tokenizer, "rb") as f:
        tok_sha = hashlib.sha256(f.read()).hexdigest()
    ident = {"config": cfg_obj, "seed": args.seed, "weights": weights_ident,
             "tool_revision": TOOL_REVISION, "tool_sha256": tool_sha,
             "tokenizer_sha256": tok_sha, "versions": versions}
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest(), tool_sha


def up_to_date(out, key):
    mpath = os.path.join(out, "manifest.json")
    try:
        with open(mpath, encoding="utf-8") as f:
            man = json.load(f)
    except (OSError, ValueError):
        return False, "no readable manifest"
    if man.get("key") != key:
        return False, "manifest key differs (config/seed/weights/tool/versions changed)"
    for rel, info in man.get("files", {}).items():
        p = os.path.join(out, rel)
        if not os.path.isfile(p) or os.path.getsize(p) != info["size"] or \
                sha256_file(p) != info["sha256"]:
            return False, f"{rel} missing or modified"
    return True, "manifest matches"


# --------------------------------------------------------------------------------------------

def check_writable(out):
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ToolError(f"output {out} exists and is not a directory")
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise ToolError(f"cannot create output parent directory {parent}: {e.strerror}")
    try:
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    except OSError as e:
        raise ToolError(f"output location {parent} is not writable: {e.strerror}")
    if os.path.isdir(out) and not os.access(out, os.W_OK | os.X_OK):
        shutil.rmtree(tmp, ignore_errors=True)
        raise ToolError(f"output directory {out} is not writable")
    return out, tmp


def install(tmp, out):
    """Atomically-ish replace `out` by `tmp` (both in the same parent directory)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700; give the final dir normal permissions
    old = None
    if os.path.exists(out):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=os.path.dirname(out))
        os.rmdir(old)
        os.rename(out, old)
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="BERT config.json (required without --from-pretrained)")
    ap.add_argument("--out", required=True, help="output directory (replaced atomically)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed for synthetic weights")
    ap.add_argument("--from-pretrained", metavar="DIR",
                    help="export this HuggingFace checkpoint dir instead of synthetic weights")
    ap.add_argument("--tokenizer", default=os.path.join(HERE, "tokenizer.json"))
    ap.add_argument("--force", action="store_true", help="regenerate even if up to date")
    args = ap.parse_args(argv)

    cfg_arg = None
    if args.config:
        if not os.path.isfile(args.config):
            raise ToolError(f"--config {args.config}: no such file")
        cfg_raw, cfg_arg = read_json(args.config, "config")
        validate_config(cfg_arg, args.config)
    if args.from_pretrained:
        cfg_raw, cfg_obj, wpath = validate_pretrained_dir(args.from_pretrained, cfg_arg, args.config)
        cfg_path = os.path.join(args.from_pretrained, "config.json")
        log(f"hashing {wpath}")
        args.weights_path = wpath
        args.weights_sha256 = sha256_file(wpath)
        weights_ident = {"pretrained_sha256": args.weights_sha256}
    else:
        if cfg_arg is None:
            raise ToolError("--config is required without --from-pretrained")
        cfg_obj, cfg_path = cfg_arg, args.config
        weights_ident = {"synthetic": True}
    if not os.path.isfile(args.tokenizer):
        raise ToolError(f"tokenizer {args.tokenizer}: no such file")

    versions = lib_versions()
    missing = [k for k, v in versions.items() if v is None]
    if missing:
        raise ToolError(f"missing python packages: {', '.join(missing)} "
                        f"(install models/requirements.txt)")
    key, tool_sha = compute_key(cfg_obj, args, versions, weights_ident)
    out = os.path.abspath(args.out)
    if not args.force:
        ok, why = up_to_date(out, key)
        if ok:
            log(f"{out} is up to date ({why}); nothing to do (use --force to regenerate)")
            print(f"up to date: {out}")
            return 0
        log(f"regenerating {out}: {why}")

    out, tmp = check_writable(out)
    try:
        import numpy as np
        import torch
        torch.set_grad_enabled(False)
        H, V = cfg_obj["hidden_size"], cfg_obj["vocab_size"]

        cases = tokenize_cases(args.tokenizer, V)
        model, weights_desc = build_model(args, cfg_path, cfg_raw, cfg_obj)
        nparams = sum(p.numel() for p in model.parameters())
        log(f"model: {cfg_obj['num_hidden_layers']} layers, hidden {H}, vocab {V}, "
            f"{nparams / 1e6:.2f}M parameters")

        log("PyTorch f32 reference outputs")
        all_cases, embeds_diffs = torch_refs(model, cases)
        write_refs(os.path.join(tmp, "refs"), all_cases, H, V)

        export_graphs(model, tmp, cases)
        variants = {}
        for fl in ("ids", "embeds"):
            f32 = os.path.join(tmp, f"bert_{fl}_f32.onnx")
            variants[f"bert_{fl}_f32.onnx"] = {
                "how": f"torch.onnx.export (TorchScript exporter, dynamo=False), opset {OPSET}, "
                       f"do_constant_folding=True, BertModel eval(), attn_implementation=eager, "
                       f"wrapped so forward({'input_ids' if fl == 'ids' else 'inputs_embeds'}, "
                       f"attention_mask, token_type_ids) -> (last_hidden_state, pooler_output); "
                       f"dynamic axes batch/sequence"}
            log(f"float16 conversion -> bert_{fl}_f16.onnx")
            repairs, conv_warnings, pooler = make_f16(f32, os.path.join(tmp, f"bert_{fl}_f16.onnx"))
            for r in repairs:
                log(f"  f16 repair: {r}")
            if not repairs:
                log(f"  f16 check: no float/float16 mismatch, no repair needed; pooler: {pooler}")
            for w in conv_warnings:
                log(f"  converter: {w}")
            variants[f"bert_{fl}_f16.onnx"] = {
                "how": "onnxconverter_common.float16.convert_float_to_float16(model, "
                       "keep_io_types=True) (defaults otherwise: min_positive_val=1e-7, "
                       "max_finite_val=1e4, no block lists), then repair_f16(): "
                       "Cast(to=float16) inserted wherever a node mixes float/float16 inputs "
                       "(e.g. the pooler Gather -> Gemm), stale value_info replaced by ONNX "
                       "type inference; then onnx.checker full_check. Graph inputs stay "
                       "int64/float32 (Cast to float16 after inputs_embeds), outputs float32 "
                       "(Cast after the float16 tensors). The attention-mask fill value "
                       "finfo(float32).min is clamped to -1e4 by the converter.",
                "repairs": repairs or ("none needed: type inference found no node mixing float "
                                       "and float16 inputs"),
                "pooler_gather_after_conversion": pooler,
                "converter_warnings": conv_warnings}
            log(f"int8 dynamic quantization -> bert_{fl}_int8.onnx")
            make_int8(f32, os.path.join(tmp, f"bert_{fl}_int8.onnx"))
            variants[f"bert_{fl}_int8.onnx"] = {
                "how": "onnxruntime.quantization.quantize_dynamic(f32 model, "
                       "weight_type=QuantType.QInt8) with defaults (per_channel=False, "
                       "reduce_range=False, all default op types); applied directly to the "
                       "exported f32 graph: no quant_pre_process / symbolic shape inference / "
                       "ORT graph optimisation was run beforehand"}

        log("onnxruntime checks")
        accuracy, failures = run_checks(tmp, all_cases)
        if failures:
            raise ToolError("accuracy check failed: " + "; ".join(failures) +
                            f" (output left in {tmp} for inspection)")

        with open(os.path.join(tmp, "config.json"), "wb") as f:
            f.write(cfg_raw)

        files = {}
        for rel in sorted(os.listdir(tmp)):
            if rel.endswith(".onnx"):
                files[rel] = describe_onnx(os.path.join(tmp, rel))
        files["config.json"] = {"size": len(cfg_raw), "sha256": hashlib.sha256(cfg_raw).hexdigest()}
        for rel in sorted(os.listdir(os.path.join(tmp, "refs"))):
            p = os.path.join(tmp, "refs", rel)
            files[f"refs/{rel}"] = {"size": os.path.getsize(p), "sha256": sha256_file(p)}

        manifest = {
            "tool": TOOL_NAME, "tool_revision": TOOL_REVISION, "tool_sha256": tool_sha,
            "key": key,
            "key_covers": "config, seed, weights identity, tool revision + export.py sha256, "
                          "tokenizer.json sha256, library versions",
            "versions": versions,
            "seed": args.seed,
            "weights": weights_desc,
            "config": cfg_obj,
            "parameters": nparams,
            "variants": variants,
            "refs": {"dir": "refs", "computed_by": "PyTorch f32 (BertModel eval, eager attention)",
                     "embeds_vs_ids_max_abs": embeds_diffs,
                     "embeds_vs_ids_limit": EMBEDS_VS_IDS_MAX_ABS},
            "accuracy": accuracy,
            "files": files,
        }
        with open(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, ensure_ascii=False, indent=1)
            f.write("\n")
        install(tmp, out)
        tmp = None
    except ToolError as e:
        if tmp and "for inspection" not in str(e):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    except BaseException:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out) for f in fs)
    log(f"wrote {out} ({total / 1e6:.1f} MB)")
    for rel, info in manifest["files"].items():
        if rel.endswith(".onnx"):
            print(f"  {rel:24s} {info['size'] / 1e6:9.2f} MB  sha256 {info['sha256'][:16]}…")
    print(f"wrote: {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ToolError as e:
        print(f"export.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("export.py: interrupted", file=sys.stderr)
        sys.exit(130)
