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

mod attention;
mod builder;
mod embed;

use crate::error::Result;
use tract_onnx::pb;

/// Replaces every `com.microsoft.EmbedLayerNormalization` and `com.microsoft.Attention` node
/// of `proto`; returns how many.
pub fn apply(proto: &mut pb::ModelProto) -> Result<usize> {
    // Unsqueeze and ReduceSum take their axes as an input from opset 13 on, as an attribute
    // before.
    let opset = super::default_opset(proto).unwrap_or(13);
    let Some(g) = proto.graph.as_mut() else {
        return Ok(0);
    };
    let embeds = embed::embed_layer_norm(g, opset)?;
    let attentions = attention::attention(g, opset)?;
    Ok(embeds + attentions)
}

#[cfg(test)]
mod tests {
    use super::builder::int;
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
