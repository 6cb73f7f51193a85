//! Pass: onnxruntime's fused `com.microsoft.Attention`, spelled out in standard ONNX ops.
//!
//! Why: onnxruntime's transformer optimizer (`optimum-cli export onnx --optimize O2`/`O3`,
//! `onnxruntime.transformers.optimizer`) fuses each self-attention block into one
//! `com.microsoft.Attention` node with a packed QKV weight. tract-onnx 0.23.9 reads any
//! `Attention` as ONNX's own (opset 23: separate Q, K, V inputs) and panics on the packed
//! input. The other fused ops of these exports (`SkipLayerNormalization`, `BiasGelu`,
//! `FastGelu`) tract runs as they are.
//! How: before tract parses the graph, each such node becomes the computation onnxruntime's
//! contrib op defines for a BERT encoder: `x·W + b` split into Q, K, V, heads of
//! `hidden / num_heads`, `softmax(Q·Kᵀ·scale + mask)·V`, heads merged. The mask input is
//! either a `[batch]` vector of key lengths (the optimizer's `ReduceSum` of the attention
//! mask: keys at and after the length are masked) or the raw `[batch, seq]` mask (0 = masked),
//! told apart by what produces it; masked keys get `mask_filter_value` (default −10000).
//! Anything else the op can do (past state, unidirectional, attention bias, different Q/K/V
//! sizes, rotary embeddings) is refused with a `BadModel` naming the attribute or input.
//!
//! The optimizer also fuses an ids graph's embeddings into `com.microsoft.EmbedLayerNormalization`
//! (word + position + token-type lookups, LayerNorm, and the key lengths the attention nodes
//! read), which tract does not know: it is spelled out the same way, first.

use crate::error::{Error, Result};
use std::collections::HashMap;
use tract_onnx::pb;

const FLOAT: i32 = 1;
const INT64: i32 = 7;
const FLOAT16: i32 = 10;

fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

/// `Cast` nodes that read a graph input: their output → that input. The optimizer casts the
/// integer inputs (ids, types, mask) to int32 for its fused ops.
fn graph_input_casts(g: &pb::GraphProto) -> HashMap<String, String> {
    g.node
        .iter()
        .filter(|c| c.op_type == "Cast" && c.input.len() == 1 && c.output.len() == 1)
        .filter(|c| g.input.iter().any(|i| i.name == c.input[0]))
        .map(|c| (c.output[0].clone(), c.input[0].clone()))
        .collect()
}

/// The name the replacement nodes of `n` are named after: its own, else its first output's.
fn base_name(n: &pb::NodeProto) -> Result<String> {
    match n.output.first().filter(|o| !o.is_empty()) {
        None => Err(Error::bad_model(format!(
            "onnxruntime-fused com.microsoft.{} node {:?} has no output",
            n.op_type, n.name
        ))),
        Some(_) if !n.name.is_empty() => Ok(n.name.clone()),
        Some(o) => Ok(o.clone()),
    }
}

/// Builds the replacement nodes and constants of one fused node.
struct Builder<'a> {
    base: String,
    nodes: Vec<pb::NodeProto>,
    consts: &'a mut Vec<pb::TensorProto>,
    float: i32,
}

impl Builder<'_> {
    fn name(&self, what: &str) -> String {
        format!("{}.bert_edge.{what}", self.base)
    }

    fn op(
        &mut self,
        op: &str,
        what: &str,
        input: &[&str],
        attrs: Vec<pb::AttributeProto>,
    ) -> String {
        let out = self.name(what);
        self.nodes.push(pb::NodeProto {
            name: out.clone(),
            op_type: op.into(),
            input: input.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// `0, 1, …, seq − 1` (int64), `seq` being axis 1 of `of`.
    fn positions(&mut self, of: &str) -> String {
        let shape = self.op("Shape", "shape", &[of], vec![]);
        let zero = self.i64s("positions_start", &[0], true);
        let one = self.i64s("positions_step", &[1], true);
        let seq = self.op("Gather", "seq", &[&shape, &one], vec![int("axis", 0)]);
        self.op("Range", "positions", &[&zero, &seq, &one], vec![])
    }

    fn unsqueeze(&mut self, what: &str, input: &str, axes: &[i64], opset: i64) -> String {
        if opset >= 13 {
            let a = self.i64s(&format!("{what}_axes"), axes, false);
            self.op("Unsqueeze", what, &[input, &a], vec![])
        } else {
            self.op("Unsqueeze", what, &[input], vec![ints("axes", axes)])
        }
    }

    fn i64s(&mut self, what: &str, v: &[i64], scalar: bool) -> String {
        let name = self.name(what);
        self.consts.push(pb::TensorProto {
            name: name.clone(),
            dims: if scalar { vec![] } else { vec![v.len() as i64] },
            data_type: INT64,
            int64_data: v.to_vec(),
            ..Default::default()
        });
        name
    }

    /// A scalar of the graph's float type.
    fn float(&mut self, what: &str, v: f32) -> String {
        let name = self.name(what);
        let t = if self.float == FLOAT16 {
            pb::TensorProto {
                name: name.clone(),
                data_type: FLOAT16,
                raw_data: half::f16::from_f32(v).to_le_bytes().to_vec(),
                ..Default::default()
            }
        } else {
            pb::TensorProto {
                name: name.clone(),
                data_type: FLOAT,
                float_data: vec![v],
                ..Default::default()
            }
        };
        self.consts.push(t);
        name
    }
}

/// Replaces every `com.microsoft.EmbedLayerNormalization` node of `g`; returns how many.
fn embed_layer_norm(g: &mut pb::GraphProto, opset: i64) -> Result<usize> {
    let fused =
        |n: &pb::NodeProto| n.domain == "com.microsoft" && n.op_type == "EmbedLayerNormalization";
    if !g.node.iter().any(fused) {
        return Ok(0);
    }
    // The lookups read the graph inputs themselves, not their int32 casts (Gather takes any
    // integer indices), so that the rest of the import sees the usual `Gather(table, input_ids)`.
    let uncast = graph_input_casts(g);
    let mut consts = Vec::new();
    let mut out = Vec::with_capacity(g.node.len() + 16);
    let mut count = 0;
    for mut n in std::mem::take(&mut g.node) {
        if !fused(&n) {
            out.push(n);
            continue;
        }
        count += 1;
        for i in [0, 1] {
            if let Some(src) = n.input.get(i).and_then(|x| uncast.get(x)) {
                n.input[i] = src.clone();
            }
        }
        let base = base_name(&n)?;
        let refuse = |what: &str| {
            Error::bad_model(format!(
                "onnxruntime-fused com.microsoft.EmbedLayerNormalization node {base:?}: {what}; \
                 bert-edge runs the BERT form only. Export without --optimize (or with O1)"
            ))
        };
        let input = |i: usize| n.input.get(i).filter(|s| !s.is_empty());
        let (Some(ids), Some(word), Some(pos), Some(gamma), Some(beta)) =
            (input(0), input(2), input(3), input(5), input(6))
        else {
            return Err(refuse("it lacks ids, a table or the LayerNorm weights"));
        };
        let float = g
            .initializer
            .iter()
            .find(|t| &t.name == word)
            .map(|t| t.data_type)
            .ok_or_else(|| refuse("its word table is not a constant"))?;
        let eps = attr(&n, "epsilon").map(|a| a.f).unwrap_or(1e-12);
        let mut bd = Builder {
            base: base.clone(),
            nodes: Vec::new(),
            consts: &mut consts,
            float,
        };
        let gather = |bd: &mut Builder, what: &str, table: &str, ix: &str| {
            bd.op("Gather", what, &[table, ix], vec![int("axis", 0)])
        };
        let mut sum = gather(&mut bd, "words", word, ids);
        let positions = match input(8) {
            Some(p) => p.clone(),
            None => bd.positions(ids),
        };
        let p = gather(&mut bd, "position_vectors", pos, &positions);
        sum = bd.op("Add", "words_positions", &[&sum, &p], vec![]);
        if let (Some(types), Some(table)) = (input(1), input(4)) {
            let t = gather(&mut bd, "type_vectors", table, types);
            sum = bd.op("Add", "sum", &[&sum, &t], vec![]);
        }
        let attrs = vec![int("axis", -1), {
            let mut a = int("epsilon", 0);
            a.r#type = pb::attribute_proto::AttributeType::Float as i32;
            a.f = eps;
            a
        }];
        let normed = bd.op("LayerNormalization", "normed", &[&sum, gamma, beta], attrs);
        let mut nodes = std::mem::take(&mut bd.nodes);
        let rename = |nodes: &mut Vec<pb::NodeProto>, from: &str, to: &str| {
            nodes
                .iter_mut()
                .find(|x| x.output[0] == from)
                .unwrap()
                .output[0] = to.to_string();
        };
        rename(&mut nodes, &normed, &n.output[0]);
        if let Some(sum_out) = n.output.get(2).filter(|o| !o.is_empty()) {
            nodes.push(pb::NodeProto {
                name: format!("{base}.bert_edge.embedding_sum"),
                op_type: "Identity".into(),
                input: vec![sum.clone()],
                output: vec![sum_out.clone()],
                ..Default::default()
            });
        }
        if let Some(mask_index) = n.output.get(1).filter(|o| !o.is_empty()) {
            // Key lengths: the count of ones in each row of the mask (right-padded rows).
            let Some(mask) = input(7) else {
                return Err(refuse("its mask index is used but it has no mask input"));
            };
            let mut reduce = if opset >= 13 {
                let axes = bd.i64s("mask_axes", &[1], false);
                pb::NodeProto {
                    input: vec![mask.clone(), axes],
                    ..Default::default()
                }
            } else {
                pb::NodeProto {
                    input: vec![mask.clone()],
                    attribute: vec![ints("axes", &[1])],
                    ..Default::default()
                }
            };
            reduce.name = format!("{base}.bert_edge.mask_index");
            reduce.op_type = "ReduceSum".into();
            reduce.output = vec![mask_index.clone()];
            reduce.attribute.push(int("keepdims", 0));
            nodes.push(reduce);
        }
        nodes.extend(bd.nodes);
        out.extend(nodes);
    }
    g.node = out;
    g.initializer.extend(consts);
    Ok(count)
}

/// Replaces every `com.microsoft.EmbedLayerNormalization` and `com.microsoft.Attention` node
/// of `proto`; returns how many.
pub fn apply(proto: &mut pb::ModelProto) -> Result<usize> {
    // Unsqueeze and ReduceSum take their axes as an input from opset 13 on, as an attribute
    // before.
    let opset = crate::translate::default_opset(proto).unwrap_or(13);
    let Some(g) = proto.graph.as_mut() else {
        return Ok(0);
    };
    let embeds = embed_layer_norm(g, opset)?;
    let fused = |n: &pb::NodeProto| n.domain == "com.microsoft" && n.op_type == "Attention";
    if !g.node.iter().any(fused) {
        return Ok(embeds);
    }
    let producers: HashMap<String, pb::NodeProto> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.clone(), n.clone())))
        .collect();
    let graph_inputs: Vec<String> = g.input.iter().map(|i| i.name.clone()).collect();
    let casts = graph_input_casts(g);
    let mut consts = Vec::new();
    let mut out = Vec::with_capacity(g.node.len() * 2);
    let mut count = 0;
    for n in std::mem::take(&mut g.node) {
        if !fused(&n) {
            out.push(n);
            continue;
        }
        count += 1;
        let base = base_name(&n)?;
        let refuse = |what: String| {
            Error::bad_model(format!(
                "onnxruntime-fused com.microsoft.Attention node {base:?}: {what}; bert-edge runs \
                 the BERT encoder form only. Export without --optimize (or with O1)"
            ))
        };
        for a in ["unidirectional", "do_rotary", "past_present_share_buffer"] {
            if attr(&n, a).is_some_and(|a| a.i != 0) {
                return Err(refuse(format!("attribute {a} is set")));
            }
        }
        if attr(&n, "qkv_hidden_sizes").is_some_and(|a| !a.ints.is_empty()) {
            return Err(refuse("attribute qkv_hidden_sizes is set".into()));
        }
        if n.input.iter().skip(4).any(|i| !i.is_empty()) {
            return Err(refuse("it has past state or attention bias inputs".into()));
        }
        if n.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err(refuse("it has a present-state output".into()));
        }
        let (x, w, b) = match n.input.as_slice() {
            [x, w, b, ..] if !w.is_empty() && !b.is_empty() => (x, w, b),
            _ => return Err(refuse("it lacks its weight or bias input".into())),
        };
        let weight = g
            .initializer
            .iter()
            .find(|t| &t.name == w)
            .ok_or_else(|| refuse(format!("its QKV weight {w:?} is not a constant")))?;
        let heads = attr(&n, "num_heads").map(|a| a.i).unwrap_or(0);
        let hidden = match weight.dims.as_slice() {
            [_, three_h] if three_h % 3 == 0 && (3..=3 << 20).contains(three_h) => three_h / 3,
            d => {
                return Err(refuse(format!(
                    "QKV weight of shape {d:?}, not [in, 3·hidden]"
                )))
            }
        };
        if heads <= 0 || hidden % heads != 0 {
            return Err(refuse(format!(
                "num_heads {heads} does not divide hidden {hidden}"
            )));
        }
        let head = hidden / heads;
        let scale = attr(&n, "scale").map(|a| a.f).filter(|s| *s != 0.0);
        let scale = scale.unwrap_or(1.0 / (head as f32).sqrt());
        let filter = attr(&n, "mask_filter_value")
            .map(|a| a.f)
            .unwrap_or(-10000.0);
        let mut bd = Builder {
            base: base.clone(),
            nodes: Vec::new(),
            consts: &mut consts,
            float: weight.data_type,
        };

        let qkv = bd.op("MatMul", "qkv", &[x, w], vec![]);
        let qkv = bd.op("Add", "qkv_bias", &[&qkv, b], vec![]);
        let axes = bd.i64s("last_axis", &[-1], false);
        let shape = bd.i64s("heads_shape", &[0, 0, heads, head], false);
        let mut parts = Vec::new();
        for (i, (what, perm)) in [
            ("q", [0, 2, 1, 3]),
            ("k", [0, 2, 3, 1]),
            ("v", [0, 2, 1, 3]),
        ]
        .into_iter()
        .enumerate()
        {
            let i = i as i64;
            let start = bd.i64s(&format!("{what}_start"), &[i * hidden], false);
            let end = bd.i64s(&format!("{what}_end"), &[(i + 1) * hidden], false);
            let t = bd.op("Slice", what, &[&qkv, &start, &end, &axes], vec![]);
            let t = bd.op("Reshape", &format!("{what}_heads"), &[&t, &shape], vec![]);
            parts.push(bd.op(
                "Transpose",
                &format!("{what}_t"),
                &[&t],
                vec![ints("perm", &perm)],
            ));
        }
        let scores = bd.op("MatMul", "scores", &[&parts[0], &parts[1]], vec![]);
        let scale = bd.float("scale", scale);
        let mut scores = bd.op("Mul", "scaled", &[&scores, &scale], vec![]);

        if let Some(mask) = n.input.get(3).filter(|m| !m.is_empty()) {
            // Where a key is kept: [batch, seq] booleans.
            let lengths = producers.get(mask).is_some_and(|p| {
                p.op_type == "ReduceSum" && attr(p, "keepdims").is_some_and(|k| k.i == 0)
            });
            let raw = graph_inputs.contains(mask) || casts.contains_key(mask);
            let keep = if lengths {
                let pos = bd.positions(x);
                let len = bd.op("Cast", "lengths", &[mask], vec![int("to", INT64 as i64)]);
                let len = bd.unsqueeze("lengths_col", &len, &[-1], opset);
                bd.op("Less", "keep", &[&pos, &len], vec![])
            } else if raw {
                let m = bd.op("Cast", "mask", &[mask], vec![int("to", INT64 as i64)]);
                let zero = bd.i64s("zero", &[0], true);
                bd.op("Greater", "keep", &[&m, &zero], vec![])
            } else {
                return Err(refuse(format!(
                    "its mask input {mask:?} is neither key lengths (ReduceSum) nor the raw \
                     attention mask"
                )));
            };
            let zero_f = bd.float("zero_f", 0.0);
            let filter = bd.float("filter", filter);
            let add = bd.op("Where", "mask_add", &[&keep, &zero_f, &filter], vec![]);
            let add = bd.unsqueeze("mask_add_4d", &add, &[1, 2], opset);
            scores = bd.op("Add", "masked", &[&scores, &add], vec![]);
        }
        let probs = bd.op("Softmax", "probs", &[&scores], vec![int("axis", -1)]);
        let ctx = bd.op("MatMul", "context", &[&probs, &parts[2]], vec![]);
        let ctx = bd.op(
            "Transpose",
            "context_t",
            &[&ctx],
            vec![ints("perm", &[0, 2, 1, 3])],
        );
        let merged = bd.i64s("merged_shape", &[0, 0, hidden], false);
        let last = bd.op("Reshape", "out", &[&ctx, &merged], vec![]);
        // The last node writes the fused node's own output name.
        let mut nodes = bd.nodes;
        nodes.last_mut().unwrap().output = vec![n.output[0].clone()];
        debug_assert_eq!(nodes.last().unwrap().name, last);
        out.extend(nodes);
    }
    g.node = out;
    g.initializer.extend(consts);
    Ok(embeds + count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::*;

    fn fused_file(flavour: &str) -> pb::ModelProto {
        let path = format!(
            "{}/tests/data/ort-fused/bert_{flavour}_f32_ort_fused.onnx",
            env!("CARGO_MANIFEST_DIR")
        );
        tract_onnx::onnx().proto_model_for_path(path).unwrap()
    }

    fn fused() -> pb::ModelProto {
        fused_file("embeds")
    }

    #[test]
    fn every_fused_node_is_spelled_out() {
        // embeds: 2 Attention; ids: 2 Attention + 1 EmbedLayerNormalization
        for (flavour, want) in [("embeds", 2), ("ids", 3)] {
            let mut p = fused_file(flavour);
            assert_eq!(apply(&mut p).unwrap(), want, "{flavour}");
            check_spelled_out(p);
        }
    }

    fn check_spelled_out(mut p: pb::ModelProto) {
        let g = p.graph.as_ref().unwrap();
        let left = ["Attention", "EmbedLayerNormalization"];
        assert!(!g.node.iter().any(|n| left.contains(&n.op_type.as_str())));
        // Every value a node reads is defined (graph input, initializer or node output).
        let mut defined: std::collections::HashSet<&str> =
            g.input.iter().map(|i| i.name.as_str()).collect();
        defined.extend(g.initializer.iter().map(|t| t.name.as_str()));
        for n in &g.node {
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                assert!(
                    defined.contains(i.as_str()),
                    "{} reads undefined {i}",
                    n.name
                );
            }
            defined.extend(n.output.iter().map(|o| o.as_str()));
        }
        // A second pass finds nothing to do.
        assert_eq!(apply(&mut p).unwrap(), 0);
    }

    fn first_attention(p: &mut pb::ModelProto) -> &mut pb::NodeProto {
        let g = p.graph.as_mut().unwrap();
        g.node
            .iter_mut()
            .find(|n| n.op_type == "Attention")
            .unwrap()
    }

    #[test]
    fn what_the_bert_form_lacks_is_refused_by_name() {
        for (attr_name, want) in [
            ("unidirectional", "attribute unidirectional is set"),
            ("do_rotary", "attribute do_rotary is set"),
        ] {
            let mut p = fused();
            first_attention(&mut p).attribute.push(int(attr_name, 1));
            let e = apply(&mut p).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("without --optimize"), "{e}");
        }
        let mut p = fused();
        first_attention(&mut p)
            .input
            .extend(["".into(), "past".into()]);
        let e = apply(&mut p).unwrap_err().to_string();
        assert!(e.contains("past state"), "{e}");
    }
}
