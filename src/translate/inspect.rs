//! What an export is, read from the protobuf before tract parses it ([`OnnxFacts`]), and
//! onnxruntime's fused ops spelled out or refused first.

use super::proto::{gather_table, read_proto};
use crate::error::{Error, Result};
use crate::passes::{default_opset, ort_attention};
use crate::runtime::{Flavour, Variant};
use std::collections::BTreeMap;
use std::path::Path;
use tract_onnx::pb;

/// What the graph itself says it is, read from the protobuf before tract parses it.
#[derive(Debug, Clone)]
pub struct OnnxFacts {
    /// `input_ids` or `inputs_embeds` graph.
    pub flavour: Flavour,
    /// f32, f16 (f16 initializers) or int8 (integer matmuls).
    pub variant: Variant,
    /// Hidden size.
    pub hidden: usize,
    /// Vocabulary size (ids graphs).
    pub vocab_size: Option<usize>,
    /// Token-type vocabulary size.
    pub type_vocab_size: usize,
    /// Whether the graph takes `token_type_ids`.
    pub token_types: bool,
    /// Longest sequence the position table covers.
    pub max_positions: Option<usize>,
    /// Default-domain opset.
    pub opset: i64,
    /// ONNX op types and their counts.
    pub op_histogram: BTreeMap<String, usize>,
}

const FLOAT16: i32 = 10;

/// The graph's first input (ids or embeds); refuses a graph without an attention mask.
fn flavour_of(g: &pb::GraphProto, path: &Path) -> Result<Flavour> {
    let has_input = |n: &str| g.input.iter().any(|i| i.name == n);
    let flavour = match (has_input("input_ids"), has_input("inputs_embeds")) {
        (true, false) => Flavour::Ids,
        (false, true) => Flavour::Embeds,
        (true, true) => {
            return Err(Error::bad_model(
                "graph takes both input_ids and inputs_embeds",
            ));
        }
        (false, false) => {
            return Err(Error::bad_model(format!(
                "{} is not a BERT export: no input_ids or inputs_embeds input (inputs: {:?})",
                path.display(),
                g.input.iter().map(|i| i.name.as_str()).collect::<Vec<_>>()
            )));
        }
    };
    if !has_input("attention_mask") {
        return Err(Error::bad_model(format!(
            "{}: BERT export without an attention_mask input",
            path.display()
        )));
    }
    Ok(flavour)
}

/// int8 (integer matmuls), f16 (f16 initializers) or f32.
fn variant_of(g: &pb::GraphProto, op_histogram: &BTreeMap<String, usize>) -> Variant {
    let int8 = ["MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul"]
        .iter()
        .any(|op| op_histogram.contains_key(*op));
    let f16 = g.initializer.iter().any(|t| t.data_type == FLOAT16);
    if int8 {
        Variant::Int8
    } else if f16 {
        Variant::F16
    } else {
        Variant::F32
    }
}

pub(super) fn inspect(proto: &pb::ModelProto, path: &Path) -> Result<OnnxFacts> {
    let g = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::bad_model(format!("{}: ONNX file has no graph", path.display())))?;
    let flavour = flavour_of(g, path)?;
    check_external_data(g, path)?;
    let mut op_histogram = BTreeMap::new();
    for n in &g.node {
        *op_histogram.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    let variant = variant_of(g, &op_histogram);
    let dims = |t: &pb::TensorProto| t.dims.iter().map(|d| *d as usize).collect::<Vec<_>>();
    let first = |d: Vec<usize>| d.first().copied();
    let word = gather_table(g, "input_ids").map(|(_, t)| dims(t));
    let types = gather_table(g, "token_type_ids").map(|(_, t)| dims(t));
    let positions = g
        .initializer
        .iter()
        .find(|t| t.name.contains("position_embeddings") && t.dims.len() == 2)
        .map(dims);
    let hidden = word
        .as_ref()
        .or(types.as_ref())
        .and_then(|d| d.get(1).copied())
        .or_else(|| output_last_dim(g))
        .ok_or_else(|| Error::bad_model("cannot tell the hidden size from the graph"))?;
    let opset = default_opset(proto).unwrap_or(0);
    Ok(OnnxFacts {
        flavour,
        variant,
        hidden,
        vocab_size: word.and_then(first),
        type_vocab_size: types.and_then(first).unwrap_or(2),
        token_types: g.input.iter().any(|i| i.name == "token_type_ids"),
        max_positions: positions.and_then(first),
        opset,
        op_histogram,
    })
}

/// onnxruntime's fused ops that tract cannot run as they are, spelled out
/// ([`ort_attention`]); before anything reads the graph, so that it is read as the BERT graph
/// it is. Other onnxruntime contrib ops tract does not know (e.g. `QAttention` from quantizing an
/// `--optimize O2` export) are refused by name.
pub(super) fn unfuse(proto: &mut pb::ModelProto, path: &Path) -> Result<()> {
    ort_attention::apply(proto).map_err(|e| match e {
        Error::BadModel(m) => Error::bad_model(format!("{}: {m}", path.display())),
        e => e,
    })?;
    let Some(g) = proto.graph.as_ref() else {
        return Ok(());
    };
    let contrib = || g.node.iter().filter(|n| n.domain == "com.microsoft");
    if contrib().next().is_none() {
        return Ok(()); // the usual export: no op registry to build
    }
    let known = tract_onnx::onnx().op_register;
    let mut unknown: BTreeMap<&str, usize> = BTreeMap::new();
    for n in contrib() {
        if !known.0.contains_key(&n.op_type) {
            *unknown.entry(n.op_type.as_str()).or_default() += 1;
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unknown.iter().map(|(op, k)| format!("{op} ×{k}")).collect();
    Err(Error::bad_model(format!(
        "{}: onnxruntime-only ops tract cannot run: com.microsoft {}. These come from \
         onnxruntime's optimizer (optimum --optimize) and quantizing its output: quantize an \
         export made without --optimize instead",
        path.display(),
        list.join(", ")
    )))
}

fn output_last_dim(g: &pb::GraphProto) -> Option<usize> {
    let o = g.output.iter().find(|o| o.name == "last_hidden_state")?;
    let pb::type_proto::Value::TensorType(t) = o.r#type.as_ref()?.value.as_ref()?;
    let d = t.shape.as_ref()?.dim.last()?;
    match d.value.as_ref()? {
        pb::tensor_shape_proto::dimension::Value::DimValue(v) => Some(*v as usize),
        _ => None,
    }
}

/// Weights stored outside the `.onnx` file (`save_as_external_data`, exports over 2 GB) must
/// be beside it: checked here, so a missing file is a clear error rather than tract's.
fn check_external_data(g: &pb::GraphProto, path: &Path) -> Result<()> {
    const EXTERNAL: i32 = 1;
    let dir = path.parent().unwrap_or(Path::new("."));
    for t in g
        .initializer
        .iter()
        .filter(|t| t.data_location == Some(EXTERNAL))
    {
        let get = |k: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.as_str())
        };
        let location = get("location").unwrap_or_default();
        let need = get("offset")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + get("length")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        let file = dir.join(location);
        match std::fs::metadata(&file) {
            Ok(m) if m.is_file() && m.len() >= need => {}
            Ok(m) => {
                return Err(Error::bad_model(format!(
                    "{}: weight {} is stored in external data file {} ({} bytes), which is \
                     shorter than the model says ({need} bytes): the file is truncated or not \
                     this model's",
                    path.display(),
                    t.name,
                    file.display(),
                    m.len()
                )))
            }
            Err(_) => {
                return Err(Error::bad_model(format!(
                    "{}: weight {} is stored in an external data file {location:?}, which is \
                     missing: copy it beside the .onnx file",
                    path.display(),
                    t.name
                )))
            }
        }
    }
    Ok(())
}

/// Reads what an ONNX export is (flavour, variant, sizes, ops) without building a plan.
pub fn inspect_onnx(path: impl AsRef<Path>) -> Result<OnnxFacts> {
    let path = path.as_ref();
    crate::error::guard("reading the ONNX file", || {
        let mut proto = read_proto(path)?;
        unfuse(&mut proto, path)?;
        inspect(&proto, path)
    })
}
