//! `com.microsoft.Attention` spelled out: `x·W + b` split into Q, K, V, heads of
//! `hidden / num_heads`, `softmax(Q·Kᵀ·scale + mask)·V`, heads merged.

use super::builder::{attr, base_name, graph_input_casts, int, ints, Builder, INT64};
use crate::error::{Error, Result};
use std::collections::HashMap;
use tract_onnx::pb;

/// What the replacement of an `Attention` node looks at besides the node itself.
struct Graph<'a> {
    initializers: &'a [pb::TensorProto],
    producers: HashMap<String, pb::NodeProto>,
    graph_inputs: Vec<String>,
    casts: HashMap<String, String>,
    opset: i64,
}

/// Replaces every `com.microsoft.Attention` node of `g`; returns how many.
pub(super) fn attention(g: &mut pb::GraphProto, opset: i64) -> Result<usize> {
    let fused = |n: &pb::NodeProto| n.domain == "com.microsoft" && n.op_type == "Attention";
    if !g.node.iter().any(fused) {
        return Ok(0);
    }
    let producers: HashMap<String, pb::NodeProto> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.clone(), n.clone())))
        .collect();
    let graph_inputs: Vec<String> = g.input.iter().map(|i| i.name.clone()).collect();
    let casts = graph_input_casts(g);
    let nodes = std::mem::take(&mut g.node);
    let ctx = Graph {
        initializers: &g.initializer,
        producers,
        graph_inputs,
        casts,
        opset,
    };
    let mut consts = Vec::new();
    let mut out = Vec::with_capacity(nodes.len() * 2);
    let mut count = 0;
    for n in nodes {
        if !fused(&n) {
            out.push(n);
            continue;
        }
        count += 1;
        out.extend(spell_out(&n, &ctx, &mut consts)?);
    }
    g.node = out;
    g.initializer.extend(consts);
    Ok(count)
}

/// The sizes and constants of one `Attention` node, checked.
struct Params<'a> {
    x: &'a str,
    w: &'a str,
    b: &'a str,
    float: i32,
    heads: i64,
    hidden: i64,
    head: i64,
    scale: f32,
    filter: f32,
}

/// What the BERT encoder form does not use (past state, unidirectional, rotary, attention
/// bias, different Q/K/V sizes), if `n` uses it.
fn unsupported(n: &pb::NodeProto) -> Option<String> {
    for a in ["unidirectional", "do_rotary", "past_present_share_buffer"] {
        if attr(n, a).is_some_and(|a| a.i != 0) {
            return Some(format!("attribute {a} is set"));
        }
    }
    if attr(n, "qkv_hidden_sizes").is_some_and(|a| !a.ints.is_empty()) {
        return Some("attribute qkv_hidden_sizes is set".into());
    }
    if n.input.iter().skip(4).any(|i| !i.is_empty()) {
        return Some("it has past state or attention bias inputs".into());
    }
    if n.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Some("it has a present-state output".into());
    }
    None
}

/// The node's inputs and sizes, checked; refuses what the BERT encoder form does not use.
fn params<'a>(
    n: &'a pb::NodeProto,
    ctx: &Graph,
    refuse: impl Fn(String) -> Error,
) -> Result<Params<'a>> {
    if let Some(what) = unsupported(n) {
        return Err(refuse(what));
    }
    let (x, w, b) = match n.input.as_slice() {
        [x, w, b, ..] if !w.is_empty() && !b.is_empty() => (x, w, b),
        _ => return Err(refuse("it lacks its weight or bias input".into())),
    };
    let weight = ctx
        .initializers
        .iter()
        .find(|t| &t.name == w)
        .ok_or_else(|| refuse(format!("its QKV weight {w:?} is not a constant")))?;
    let heads = attr(n, "num_heads").map(|a| a.i).unwrap_or(0);
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
    let scale = attr(n, "scale").map(|a| a.f).filter(|s| *s != 0.0);
    let scale = scale.unwrap_or(1.0 / (head as f32).sqrt());
    let filter = attr(n, "mask_filter_value")
        .map(|a| a.f)
        .unwrap_or(-10000.0);
    let float = weight.data_type;
    Ok(Params {
        x,
        w,
        b,
        float,
        heads,
        hidden,
        head,
        scale,
        filter,
    })
}

/// The nodes replacing one `Attention` node `n` (its constants go to `consts`).
fn spell_out(
    n: &pb::NodeProto,
    ctx: &Graph,
    consts: &mut Vec<pb::TensorProto>,
) -> Result<Vec<pb::NodeProto>> {
    let base = base_name(n)?;
    let refuse = |what: String| {
        Error::bad_model(format!(
            "onnxruntime-fused com.microsoft.Attention node {base:?}: {what}; bert-edge runs \
             the BERT encoder form only. Export without --optimize (or with O1)"
        ))
    };
    let p = params(n, ctx, refuse)?;
    let mut bd = Builder {
        base: base.clone(),
        nodes: Vec::new(),
        consts,
        float: p.float,
    };
    let parts = qkv_heads(&mut bd, &p);
    let scores = bd.op("MatMul", "scores", &[&parts[0], &parts[1]], vec![]);
    let scale = bd.float("scale", p.scale);
    let mut scores = bd.op("Mul", "scaled", &[&scores, &scale], vec![]);
    if let Some(mask) = n.input.get(3).filter(|m| !m.is_empty()) {
        let add = mask_add(&mut bd, ctx, mask, &p).map_err(refuse)?;
        scores = bd.op("Add", "masked", &[&scores, &add], vec![]);
    }
    let probs = bd.op("Softmax", "probs", &[&scores], vec![int("axis", -1)]);
    let context = bd.op("MatMul", "context", &[&probs, &parts[2]], vec![]);
    let context = bd.op(
        "Transpose",
        "context_t",
        &[&context],
        vec![ints("perm", &[0, 2, 1, 3])],
    );
    let merged = bd.i64s("merged_shape", &[0, 0, p.hidden], false);
    let last = bd.op("Reshape", "out", &[&context, &merged], vec![]);
    // The last node writes the fused node's own output name.
    let mut nodes = bd.nodes;
    nodes.last_mut().unwrap().output = vec![n.output[0].clone()];
    debug_assert_eq!(nodes.last().unwrap().name, last);
    Ok(nodes)
}

/// `x·W + b` split into Q, Kᵀ and V, each `[batch, heads, seq, head]` (Kᵀ: `[…, head, seq]`).
fn qkv_heads(bd: &mut Builder, p: &Params) -> Vec<String> {
    let qkv = bd.op("MatMul", "qkv", &[p.x, p.w], vec![]);
    let qkv = bd.op("Add", "qkv_bias", &[&qkv, p.b], vec![]);
    let axes = bd.i64s("last_axis", &[-1], false);
    let shape = bd.i64s("heads_shape", &[0, 0, p.heads, p.head], false);
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
        let start = bd.i64s(&format!("{what}_start"), &[i * p.hidden], false);
        let end = bd.i64s(&format!("{what}_end"), &[(i + 1) * p.hidden], false);
        let t = bd.op("Slice", what, &[&qkv, &start, &end, &axes], vec![]);
        let t = bd.op("Reshape", &format!("{what}_heads"), &[&t, &shape], vec![]);
        parts.push(bd.op(
            "Transpose",
            &format!("{what}_t"),
            &[&t],
            vec![ints("perm", &perm)],
        ));
    }
    parts
}

/// What the mask adds to the scores, `[batch, 1, 1, seq]`: 0 where a key is kept,
/// `mask_filter_value` where it is masked. The mask is either key lengths (the optimizer's
/// `ReduceSum` of the attention mask) or the raw `[batch, seq]` mask; anything else is
/// refused (the error's text).
fn mask_add(
    bd: &mut Builder,
    ctx: &Graph,
    mask: &str,
    p: &Params,
) -> std::result::Result<String, String> {
    // Where a key is kept: [batch, seq] booleans.
    let lengths = ctx
        .producers
        .get(mask)
        .is_some_and(|p| p.op_type == "ReduceSum" && attr(p, "keepdims").is_some_and(|k| k.i == 0));
    let raw = ctx.graph_inputs.iter().any(|i| i == mask) || ctx.casts.contains_key(mask);
    let keep = if lengths {
        let pos = bd.positions(p.x);
        let len = bd.op("Cast", "lengths", &[mask], vec![int("to", INT64 as i64)]);
        let len = bd.unsqueeze("lengths_col", &len, &[-1], ctx.opset);
        bd.op("Less", "keep", &[&pos, &len], vec![])
    } else if raw {
        let m = bd.op("Cast", "mask", &[mask], vec![int("to", INT64 as i64)]);
        let zero = bd.i64s("zero", &[0], true);
        bd.op("Greater", "keep", &[&m, &zero], vec![])
    } else {
        return Err(format!(
            "its mask input {mask:?} is neither key lengths (ReduceSum) nor the raw \
             attention mask"
        ));
    };
    let zero_f = bd.float("zero_f", 0.0);
    let filter = bd.float("filter", p.filter);
    let add = bd.op("Where", "mask_add", &[&keep, &zero_f, &filter], vec![]);
    Ok(bd.unsqueeze("mask_add_4d", &add, &[1, 2], ctx.opset))
}
