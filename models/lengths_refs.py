#!/usr/bin/env python3
"""onnxruntime references for plans of any length (tests/lengths.rs): the tiny int8 exports run
on UNPADDED inputs of every real length 1..16, the way onnxruntime users run each text.

    models/.venv/bin/python models/lengths_refs.py      # -> models/tiny/refs-lengths/

int8 dynamic quantization takes its ranges over the whole activation tensor, so an int8 graph's
output for a text depends on how much padding rides along; at its real length it does not.
bert-edge's plans of any length run at the real length and are checked against these.

Inputs per length L: ids [CLS] w... [SEP] with w_j = 672 + (j*7919) mod 20428 (L=1: [CLS] only),
mask ones, types zeros; embeds = the f32 ids export's word_embeddings[ids]. Written:
<flavour>_int8.bin = for L in 1..16: last_hidden_state [L, 64] then pooler_output [64], f32
little-endian; index.json says so, with the onnxruntime version.
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "tiny")
OUT = os.path.join(TINY, "refs-lengths")
MAX_LEN = 16


def ids_for(length):
    if length == 1:
        return np.array([101], dtype=np.int64)
    w = [672 + (j * 7919) % 20428 for j in range(length - 2)]
    return np.array([101] + w + [102], dtype=np.int64)


def word_embeddings():
    m = onnx.load(os.path.join(TINY, "bert_ids_f32.onnx"))
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    for n in g.node:
        if n.op_type == "Gather" and n.input[1] == "input_ids" and n.input[0] in inits:
            return numpy_helper.to_array(inits[n.input[0]]).astype(np.float32)
    sys.exit("no word-embedding Gather on input_ids")


def main():
    os.makedirs(OUT, exist_ok=True)
    table = word_embeddings()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    for flavour in ["ids", "embeds"]:
        sess = ort.InferenceSession(os.path.join(TINY, f"bert_{flavour}_int8.onnx"), opts,
                                    providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        outs = [o.name for o in sess.get_outputs()]
        chunks = []
        for length in range(1, MAX_LEN + 1):
            ids = ids_for(length)[None, :]
            feeds = {"attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
            if flavour == "ids":
                feeds["input_ids"] = ids
            else:
                feeds["inputs_embeds"] = table[ids]
            feeds = {k: v for k, v in feeds.items() if k in names}
            r = dict(zip(outs, sess.run(None, feeds)))
            chunks += [r["last_hidden_state"].astype("<f4").ravel(),
                       r["pooler_output"].astype("<f4").ravel()]
        np.concatenate(chunks).tofile(os.path.join(OUT, f"{flavour}_int8.bin"))
    index = {
        "engine": f"onnxruntime {ort.__version__}, CPUExecutionProvider, 1 thread",
        "lengths": [1, MAX_LEN], "hidden": int(table.shape[1]),
        "layout": "per length L = 1..16: last_hidden_state [L, hidden] then pooler_output [hidden], f32 LE",
        "inputs": "ids [CLS] w.. [SEP], w_j = 672 + (j*7919) mod 20428 (L=1: [CLS]); mask 1; types 0; "
                  "embeds = word_embeddings[ids] of bert_ids_f32.onnx",
        "files": ["ids_int8.bin", "embeds_int8.bin"],
    }
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
