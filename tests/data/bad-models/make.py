"""Makes tests/data/bad-models/*.onnx from the committed tiny fixtures (run with the models/
venv: models/.venv/bin/python tests/data/bad-models/make.py). Each is a graph bert-edge must
refuse with a clear error.

- no_usable_output.onnx: the tiny embeds encoder whose only output is the sum of its hidden
  states per sequence, shape [batch]: no hidden states, pooled vector or logits.
"""
import os
import onnx
from onnx import helper, TensorProto

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(os.path.dirname(here)))

m = onnx.load(os.path.join(root, "models/tiny/bert_embeds_f32.onnx"))
g = m.graph
axes = helper.make_tensor("sum_axes", TensorProto.INT64, [2], [1, 2])
g.initializer.append(axes)
g.node.append(helper.make_node("ReduceSum", ["last_hidden_state", "sum_axes"], ["total"], keepdims=0))
del g.output[:]
g.output.append(helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch"]))
onnx.checker.check_model(m)
onnx.save(m, os.path.join(here, "no_usable_output.onnx"))
print("wrote no_usable_output.onnx")
