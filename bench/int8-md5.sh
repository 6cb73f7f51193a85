#!/usr/bin/env bash
# Digests of every base int8 graph's outputs, to show a change leaves int8 bit-identical:
# md5 of `bert-edge encode --seq 32 --hidden-states` on three texts (6, 18 and 44 tokens) for
# models/base/bert_{ids,embeds}_int8.onnx and every int8 export under models/base/tasks/
# (the embeds graph is fed `embed-lookup` of bert_ids_f32.onnx). Run it with the binary before
# and after a change and diff the two outputs. Extra arguments go to every `encode`
# (e.g. --fixed-length). Not run in CI (needs models/generate base [--task all --checks warn]).
#
#   bench/int8-md5.sh target/release/bert-edge > after.txt
#   RUN="env QEMU_CPU=cortex-a15 QEMU_LD_PREFIX=/usr/arm-linux-gnueabihf qemu-arm" \
#       bench/int8-md5.sh target/armv7-unknown-linux-gnueabihf/release/bert-edge
set -euo pipefail
BIN=$1; shift
read -r -a RUN <<<"${RUN:-}"
BASE=${BASE:-models/base}
TEXTS='{"text": "我爱学习"}
{"text": "今天北京的天气很好，我们去公园散步吧。"}
{"text": "深度学习模型在边缘设备上运行时，内存和算力都很有限，所以量化和算子融合非常重要，也要注意延迟。"}'
be() { "${RUN[@]}" "$BIN" "$@"; }
ids=$(be embed-lookup --model "$BASE/bert_ids_f32.onnx" --seq 32 <<<"$TEXTS")
for m in "$BASE"/bert_*_int8.onnx "$BASE"/tasks/*/*int8*.onnx; do
    [[ -e $m ]] || continue
    if [[ $m == *embeds* ]]; then feed=$ids; else feed=$TEXTS; fi
    out=$(be encode --model "$m" --seq 32 --hidden-states "$@" <<<"$feed")
    if [[ $(grep -c '"last_hidden_state"\|"logits"' <<<"$out") != 3 ]]; then
        echo "int8-md5: $m did not give 3 outputs: ${out:0:300}" >&2; exit 1
    fi
    echo "$(md5sum <<<"$out" | cut -c1-12) $m"
done
