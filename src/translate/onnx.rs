//! ONNX import: protobuf checks, tract parsing, pinning, fixes, precision, optimization.

use super::fixes;
use crate::error::{Error, Result};
use crate::runtime::{Flavour, Plan, PlanInfo, Variant};
use std::collections::BTreeMap;
use std::path::Path;
use tract_onnx::pb;
use tract_onnx::prelude::*;

/// How to build a plan from an ONNX export.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Sequence length N every call will use.
    pub seq: usize,
    /// Batch size every call will use.
    pub batch: usize,
    /// Expected flavour; `None` accepts what the file is.
    pub flavour: Option<Flavour>,
    /// Wanted variant; `None` takes the file's own. `F16` from an f32 file uses tract's own
    /// f32→f16 conversion; every other mismatch is an error.
    pub variant: Option<Variant>,
    /// Expected hidden size (from the config the caller uses); `None` accepts the file's.
    pub hidden_size: Option<usize>,
    /// Which graph fixes to apply (all by default; tests switch one off to show it matters).
    pub fixes: fixes::Fixes,
    /// What an f16 plan computes in (load time only: `compile` keeps f16 in the archive).
    pub f16_compute: crate::runtime::F16Compute,
}

impl PlanOptions {
    /// batch 1, sequence length `seq`, everything else taken from the file.
    pub fn new(seq: usize) -> Self {
        PlanOptions {
            seq,
            batch: 1,
            flavour: None,
            variant: None,
            hidden_size: None,
            fixes: fixes::Fixes::default(),
            f16_compute: Default::default(),
        }
    }
    /// Sets the batch size.
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }
    /// Requires the given flavour.
    pub fn flavour(mut self, f: Flavour) -> Self {
        self.flavour = Some(f);
        self
    }
    /// Requires (or converts to) the given variant.
    pub fn variant(mut self, v: Variant) -> Self {
        self.variant = Some(v);
        self
    }
}

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
    /// Longest sequence the position table covers.
    pub max_positions: Option<usize>,
    /// Default-domain opset.
    pub opset: i64,
    /// ONNX op types and their counts.
    pub op_histogram: BTreeMap<String, usize>,
}

const FLOAT16: i32 = 10;

fn read_proto(path: &Path) -> Result<pb::ModelProto> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::bad_model(format!("cannot read {}: {e}", path.display())))?;
    tract_onnx::onnx()
        .proto_model_for_read(&mut file)
        .map_err(|e| {
            Error::bad_model(format!(
                "{} is not an ONNX model (protobuf: {e})",
                path.display()
            ))
        })
}

fn initializer<'a>(g: &'a pb::GraphProto, name: &str) -> Option<&'a pb::TensorProto> {
    g.initializer.iter().find(|t| t.name == name)
}

/// The initializer feeding a `Gather` whose indices are the graph input `input`.
pub(crate) fn gather_table<'a>(
    g: &'a pb::GraphProto,
    input: &str,
) -> Option<(&'a pb::NodeProto, &'a pb::TensorProto)> {
    g.node.iter().find_map(|n| {
        (n.op_type == "Gather" && n.input.get(1).map(|s| s.as_str()) == Some(input))
            .then(|| {
                n.input
                    .first()
                    .and_then(|t| initializer(g, t))
                    .map(|t| (n, t))
            })
            .flatten()
    })
}

fn inspect(proto: &pb::ModelProto, path: &Path) -> Result<OnnxFacts> {
    let g = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::bad_model(format!("{}: ONNX file has no graph", path.display())))?;
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
    for needed in ["attention_mask", "token_type_ids"] {
        if !has_input(needed) {
            return Err(Error::bad_model(format!(
                "BERT export without a {needed} input"
            )));
        }
    }
    let mut op_histogram = BTreeMap::new();
    for n in &g.node {
        *op_histogram.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    let int8 = ["MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul"]
        .iter()
        .any(|op| op_histogram.contains_key(*op));
    let f16 = g.initializer.iter().any(|t| t.data_type == FLOAT16);
    let variant = if int8 {
        Variant::Int8
    } else if f16 {
        Variant::F16
    } else {
        Variant::F32
    };
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
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(0);
    Ok(OnnxFacts {
        flavour,
        variant,
        hidden,
        vocab_size: word.and_then(first),
        type_vocab_size: types.and_then(first).unwrap_or(2),
        max_positions: positions.and_then(first),
        opset,
        op_histogram,
    })
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

/// Reads what an ONNX export is (flavour, variant, sizes, ops) without building a plan.
pub fn inspect_onnx(path: impl AsRef<Path>) -> Result<OnnxFacts> {
    let path = path.as_ref();
    inspect(&read_proto(path)?, path)
}

/// ONNX file → decluttered typed model with pinned inputs and every fix applied, plus its
/// [`PlanInfo`] (also stored in the model's properties). Not yet optimized: this is what an
/// NNEF archive stores.
pub fn translate_onnx(
    path: impl AsRef<Path>,
    opts: &PlanOptions,
) -> Result<(TypedModel, PlanInfo)> {
    let path = path.as_ref();
    if opts.seq == 0 || opts.batch == 0 {
        return Err(Error::bad_input(
            "batch and sequence length must be at least 1",
        ));
    }
    let mut proto = read_proto(path)?;
    let facts = inspect(&proto, path)?;
    if let Some(f) = opts.flavour {
        if f != facts.flavour {
            return Err(Error::bad_model(format!(
                "{}: asked for an {f} graph, the file is an {} graph",
                path.display(),
                facts.flavour
            )));
        }
    }
    let variant = match (opts.variant, facts.variant) {
        (None, v) => v,
        (Some(a), v) if a == v => v,
        (Some(Variant::F16), Variant::F32) => Variant::F16,
        (Some(a), v) => {
            return Err(Error::bad_model(format!(
                "{}: asked for {a}, the file is {v} (only f32 → f16 is converted)",
                path.display()
            )));
        }
    };
    if let Some(h) = opts.hidden_size {
        if h != facts.hidden {
            return Err(Error::bad_model(format!(
                "{}: the config says hidden size {h}, the graph has {}",
                path.display(),
                facts.hidden
            )));
        }
    }
    if let Some(max) = facts.max_positions {
        if opts.seq > max {
            return Err(Error::bad_input(format!(
                "sequence length {} is over the model's {max} positions",
                opts.seq
            )));
        }
    }
    let info = PlanInfo {
        flavour: facts.flavour,
        variant,
        batch: opts.batch,
        seq: opts.seq,
        hidden: facts.hidden,
        vocab_size: facts.vocab_size,
        type_vocab_size: facts.type_vocab_size,
    };

    if opts.fixes.f16_gemm && facts.variant == Variant::F16 {
        fixes::f16_gemm::apply(&mut proto);
    }
    let onnx = tract_onnx::onnx().with_ignore_value_info(opts.fixes.ignore_value_info);
    let mut model = onnx.model_for_proto_model(&proto).map_err(|e| {
        Error::bad_model(format!("{}: tract cannot parse it: {e:#}", path.display()))
    })?;
    let (b, s, h) = (opts.batch, opts.seq, facts.hidden);
    let first_fact: InferenceFact = match facts.flavour {
        Flavour::Ids => i64::fact([b, s]).into(),
        Flavour::Embeds => f32::fact([b, s, h]).into(),
    };
    for (name, fact) in [
        (facts.flavour.input_name(), first_fact),
        ("attention_mask", i64::fact([b, s]).into()),
        ("token_type_ids", i64::fact([b, s]).into()),
    ] {
        let ix = model
            .inputs
            .iter()
            .position(|o| model.node(o.node).name == name)
            .ok_or_else(|| Error::bad_model(format!("tract sees no input {name}")))?;
        model.set_input_fact(ix, fact).map_err(Error::Engine)?;
    }
    let mut typed = model.into_typed().map_err(|e| {
        Error::Engine(e.context(format!(
            "{}: typing the graph with pinned inputs",
            path.display()
        )))
    })?;
    if variant == Variant::F16 && facts.variant == Variant::F32 {
        fixes::f16_convert::apply(&mut typed).map_err(Error::Engine)?;
    }
    let mut typed = typed.into_decluttered().map_err(Error::Engine)?;
    if variant == Variant::Int8 {
        fixes::dequant_arith::apply(&mut typed).map_err(Error::Engine)?;
        fixes::dequant_arith::swap_dynamic_quantize(&mut typed).map_err(Error::Engine)?;
    }
    info.write_properties(&mut typed);
    Ok((typed, info))
}

/// ONNX file → optimized runnable [`Plan`].
pub fn load_onnx(path: impl AsRef<Path>, opts: &PlanOptions) -> Result<Plan> {
    let _memory = crate::runtime::LoadMemory::begin();
    let (model, info) = translate_onnx(path, opts)?;
    Plan::from_translated(model, info, opts.f16_compute, opts.fixes.fold_int8_sums)
}

/// Reads the `word_embeddings` table (`[vocab, hidden]`) out of an `input_ids` export, in
/// f32 whatever the file stores (f16 tables are widened, int8 tables dequantized with the
/// graph's own scale and zero point).
pub fn word_embeddings_from_onnx(path: impl AsRef<Path>) -> Result<crate::WordEmbeddings> {
    let path = path.as_ref();
    let proto = read_proto(path)?;
    let g = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::bad_model("ONNX file has no graph"))?;
    let (gather, table) = gather_table(g, "input_ids").ok_or_else(|| {
        Error::bad_model(format!(
            "{}: no word-embedding Gather on input_ids (an embeds graph has no table: use the ids export)",
            path.display()
        ))
    })?;
    let load = |t: &pb::TensorProto| -> Result<Tensor> {
        tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::MmapDataResolver, t, None)
            .map_err(|e| Error::bad_model(format!("initializer {}: {e}", t.name)))
    };
    let t = load(table)?;
    let (vocab, hidden) = match t.shape() {
        [v, h] => (*v, *h),
        s => {
            return Err(Error::bad_model(format!(
                "word embedding table of shape {s:?}"
            )))
        }
    };
    let values: Vec<f32> = if t.datum_type().is_float() {
        let t = t.cast_to::<f32>().map_err(Error::Engine)?;
        t.try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .map_err(Error::Engine)?
    } else {
        // onnxruntime's quantizer: int8/uint8 table → Gather → DequantizeLinear(scale, zero_point).
        let deq = g
            .node
            .iter()
            .find(|n| n.op_type == "DequantizeLinear" && n.input.first() == gather.output.first())
            .ok_or_else(|| {
                Error::bad_model("quantized word embeddings without a DequantizeLinear")
            })?;
        let scalar = |ix: usize| -> Result<f32> {
            match deq.input.get(ix).and_then(|name| initializer(g, name)) {
                Some(t) => load(t)?
                    .cast_to_scalar::<f32>()
                    .map_err(|e| Error::bad_model(format!("dequantization parameter: {e}"))),
                None => Ok(0.0),
            }
        };
        let (scale, zero) = (scalar(1)?, scalar(2)?);
        let t = t.cast_to::<f32>().map_err(Error::Engine)?;
        let q = t
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .map_err(Error::Engine)?;
        q.into_iter().map(|x| (x - zero) * scale).collect()
    };
    crate::WordEmbeddings::new(vocab, hidden, values)
}
