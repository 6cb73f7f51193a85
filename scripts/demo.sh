#!/usr/bin/env bash
# The main job on a fresh machine: generate the base models if absent (models/generate base:
# torch export of the bert-base-chinese architecture, synthetic weights unless you pass
# --from-pretrained DIR), build bert-edge in release, and encode "我爱学习" and a few more
# sentences with every variant, as a device would: ids, shapes, first values.
#
#   scripts/demo.sh                          # synthetic weights
#   scripts/demo.sh --from-pretrained DIR    # a real bert-base-chinese checkpoint directory
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SEQ=${SEQ:-32}
models/generate base "$@"
echo "== building bert-edge (release) ==" >&2
cargo build --release --quiet --bin bert-edge
bin=target/release/bert-edge

sentences='{"text": "我爱学习"}
{"text": "今天天气很好，我们去公园散步吧。"}
{"text": "北京是中华人民共和国的首都。", "text_pair": "上海是中国最大的城市。"}'

for flavour in ids embeds; do
  for variant in f32 f16 int8; do
    model="models/base/bert_${flavour}_${variant}.onnx"
    echo
    echo "== $model (seq $SEQ) =="
    if [ "$flavour" = ids ]; then
      input="$sentences"
    else
      # inputs_embeds = word_embeddings[ids] of "我爱学习", built by the library from the ids model.
      input=$("$bin" embed-lookup --model "models/base/bert_ids_${variant}.onnx" --seq "$SEQ" <<<'{"text": "我爱学习"}')
    fi
    "$bin" encode --model "$model" --seq "$SEQ" <<<"$input" | python3 -c '
import json, sys
for line in sys.stdin:
    o = json.loads(line)
    if "error" in o:
        print("  error:", o["error"]); continue
    n = o["tokens"]
    ids = o.get("input_ids")
    if ids is not None:
        print("  input_ids      ", ids[:n], "+ %d pad" % (len(ids) - n))
    print("  token_type_ids ", o["token_type_ids"][:n])
    p = o["pooler_output"]
    print("  pooler_output   [%d] " % len(p) + " ".join("%.4f" % v for v in p[:6]) + " ...")
'
  done
done
