//! The pieces the replacements are built from: attribute and name helpers, and [`Builder`],
//! which names and collects the nodes and constants replacing one fused node.

use crate::error::{Error, Result};
use std::collections::HashMap;
use tract_onnx::pb;

const FLOAT: i32 = 1;
pub(super) const INT64: i32 = 7;
const FLOAT16: i32 = 10;

pub(super) fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

pub(super) fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub(super) fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

/// `Cast` nodes that read a graph input: their output → that input. The optimizer casts the
/// integer inputs (ids, types, mask) to int32 for its fused ops.
pub(super) fn graph_input_casts(g: &pb::GraphProto) -> HashMap<String, String> {
    g.node
        .iter()
        .filter(|c| c.op_type == "Cast" && c.input.len() == 1 && c.output.len() == 1)
        .filter(|c| g.input.iter().any(|i| i.name == c.input[0]))
        .map(|c| (c.output[0].clone(), c.input[0].clone()))
        .collect()
}

/// The name the replacement nodes of `n` are named after: its own, else its first output's.
pub(super) fn base_name(n: &pb::NodeProto) -> Result<String> {
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
pub(super) struct Builder<'a> {
    pub(super) base: String,
    pub(super) nodes: Vec<pb::NodeProto>,
    pub(super) consts: &'a mut Vec<pb::TensorProto>,
    pub(super) float: i32,
}

impl Builder<'_> {
    fn name(&self, what: &str) -> String {
        format!("{}.bert_edge.{what}", self.base)
    }

    pub(super) fn op(
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
    pub(super) fn positions(&mut self, of: &str) -> String {
        let shape = self.op("Shape", "shape", &[of], vec![]);
        let zero = self.i64s("positions_start", &[0], true);
        let one = self.i64s("positions_step", &[1], true);
        let seq = self.op("Gather", "seq", &[&shape, &one], vec![int("axis", 0)]);
        self.op("Range", "positions", &[&zero, &seq, &one], vec![])
    }

    pub(super) fn unsqueeze(
        &mut self,
        what: &str,
        input: &str,
        axes: &[i64],
        opset: i64,
    ) -> String {
        if opset >= 13 {
            let a = self.i64s(&format!("{what}_axes"), axes, false);
            self.op("Unsqueeze", what, &[input, &a], vec![])
        } else {
            self.op("Unsqueeze", what, &[input], vec![ints("axes", axes)])
        }
    }

    pub(super) fn i64s(&mut self, what: &str, v: &[i64], scalar: bool) -> String {
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
    pub(super) fn float(&mut self, what: &str, v: f32) -> String {
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
