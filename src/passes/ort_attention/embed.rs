//! `com.microsoft.EmbedLayerNormalization` spelled out: word + position (+ token-type)
//! lookups, their sum, LayerNorm, and the key lengths the attention nodes read.

use super::builder::{attr, base_name, graph_input_casts, int, ints, Builder};
use crate::error::{Error, Result};
use tract_onnx::pb;

/// Replaces every `com.microsoft.EmbedLayerNormalization` node of `g`; returns how many.
pub(super) fn embed_layer_norm(g: &mut pb::GraphProto, opset: i64) -> Result<usize> {
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
        out.extend(spell_out(&n, &g.initializer, &mut consts, opset)?);
    }
    g.node = out;
    g.initializer.extend(consts);
    Ok(count)
}

/// The nodes replacing one `EmbedLayerNormalization` node `n` (its constants go to `consts`).
fn spell_out(
    n: &pb::NodeProto,
    initializers: &[pb::TensorProto],
    consts: &mut Vec<pb::TensorProto>,
    opset: i64,
) -> Result<Vec<pb::NodeProto>> {
    let base = base_name(n)?;
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
    let float = initializers
        .iter()
        .find(|t| &t.name == word)
        .map(|t| t.data_type)
        .ok_or_else(|| refuse("its word table is not a constant"))?;
    let eps = attr(n, "epsilon").map(|a| a.f).unwrap_or(1e-12);
    let mut bd = Builder {
        base: base.clone(),
        nodes: Vec::new(),
        consts,
        float,
    };
    let (sum, normed) = lookups_and_norm(&mut bd, n, (ids, word, pos), (gamma, beta), eps);
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
        nodes.push(key_lengths(&mut bd, &base, mask, mask_index, opset));
    }
    nodes.extend(bd.nodes);
    Ok(nodes)
}

/// Word, position and (if given) token-type lookups, summed, then LayerNorm: the names of the
/// sum and of the normalized output.
fn lookups_and_norm(
    bd: &mut Builder,
    n: &pb::NodeProto,
    (ids, word, pos): (&String, &String, &String),
    (gamma, beta): (&String, &String),
    eps: f32,
) -> (String, String) {
    let input = |i: usize| n.input.get(i).filter(|s| !s.is_empty());
    let gather = |bd: &mut Builder, what: &str, table: &str, ix: &str| {
        bd.op("Gather", what, &[table, ix], vec![int("axis", 0)])
    };
    let mut sum = gather(bd, "words", word, ids);
    let positions = match input(8) {
        Some(p) => p.clone(),
        None => bd.positions(ids),
    };
    let p = gather(bd, "position_vectors", pos, &positions);
    sum = bd.op("Add", "words_positions", &[&sum, &p], vec![]);
    if let (Some(types), Some(table)) = (input(1), input(4)) {
        let t = gather(bd, "type_vectors", table, types);
        sum = bd.op("Add", "sum", &[&sum, &t], vec![]);
    }
    let attrs = vec![int("axis", -1), {
        let mut a = int("epsilon", 0);
        a.r#type = pb::attribute_proto::AttributeType::Float as i32;
        a.f = eps;
        a
    }];
    let normed = bd.op("LayerNormalization", "normed", &[&sum, gamma, beta], attrs);
    (sum, normed)
}

/// `ReduceSum(mask, axis 1)` written to the fused node's mask index output (the axes an
/// input from opset 13 on, an attribute before).
fn key_lengths(
    bd: &mut Builder,
    base: &str,
    mask: &str,
    mask_index: &str,
    opset: i64,
) -> pb::NodeProto {
    let mut reduce = if opset >= 13 {
        let axes = bd.i64s("mask_axes", &[1], false);
        pb::NodeProto {
            input: vec![mask.to_string(), axes],
            ..Default::default()
        }
    } else {
        pb::NodeProto {
            input: vec![mask.to_string()],
            attribute: vec![ints("axes", &[1])],
            ..Default::default()
        }
    };
    reduce.name = format!("{base}.bert_edge.mask_index");
    reduce.op_type = "ReduceSum".into();
    reduce.output = vec![mask_index.to_string()];
    reduce.attribute.push(int("keepdims", 0));
    reduce
}
