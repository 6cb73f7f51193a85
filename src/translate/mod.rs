//! Translate time (host, or once at start-up; feature `onnx`): ONNX export → decluttered
//! tract model with pinned inputs and every import pass applied, then a [`Plan`] or an archive.
//!
//! Steps, in order: read the protobuf, check it is a BERT export and detect its flavour and
//! variant from the graph itself, parse it with tract, pin the input shapes, apply the
//! passes these exports need ([`crate::passes`]), convert precision if asked, declutter.

mod config;
mod sentence;

use crate::error::{Error, Result};
use crate::passes::{dequant_arith, dyn_quant, f16_convert, f16_gemm, ort_attention};
use crate::runtime::{read_outputs, Flavour, LoadOptions, Plan, PlanInfo, Variant, WordEmbeddings};
use std::collections::BTreeMap;
use std::path::Path;
use tract_onnx::pb;
use tract_onnx::prelude::*;

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

fn read_proto(path: &Path) -> Result<pb::ModelProto> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    tract_onnx::onnx()
        .proto_model_for_read(&mut file)
        .map_err(|e| {
            Error::bad_model(format!(
                "{} is not an ONNX model (protobuf: {e})",
                path.display()
            ))
        })
}

/// The version of the default (`ai.onnx`) operator set the file imports.
pub(crate) fn default_opset(proto: &pb::ModelProto) -> Option<i64> {
    proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
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
    if !has_input("attention_mask") {
        return Err(Error::bad_model(format!(
            "{}: BERT export without an attention_mask input",
            path.display()
        )));
    }
    check_external_data(g, path)?;
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
    let opset = default_opset(proto).unwrap_or(0);
    Ok(OnnxFacts {
        flavour,
        variant,
        hidden,
        vocab_size: word.and_then(first),
        type_vocab_size: types.and_then(first).unwrap_or(2),
        token_types: has_input("token_type_ids"),
        max_positions: positions.and_then(first),
        opset,
        op_histogram,
    })
}

/// onnxruntime's fused ops that tract cannot run as they are, spelled out
/// ([`ort_attention`]); before anything reads the graph, so that it is read as the BERT graph
/// it is. Other onnxruntime contrib ops tract does not know (e.g. `QAttention` from quantizing an
/// `--optimize O2` export) are refused by name.
fn unfuse(proto: &mut pb::ModelProto, path: &Path) -> Result<()> {
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

/// The element type the graph declares for input `name` (`None` if it declares none).
fn declared_type(g: &pb::GraphProto, name: &str) -> Option<DatumType> {
    let i = g.input.iter().find(|i| i.name == name)?;
    let pb::type_proto::Value::TensorType(t) = i.r#type.as_ref()?.value.as_ref()?;
    Some(match t.elem_type {
        1 => DatumType::F32,
        2 => DatumType::U8,
        3 => DatumType::I8,
        4 => DatumType::U16,
        5 => DatumType::I16,
        6 => DatumType::I32,
        7 => DatumType::I64,
        10 => DatumType::F16,
        12 => DatumType::U32,
        13 => DatumType::U64,
        _ => return None,
    })
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

/// ONNX file → decluttered typed model with pinned inputs and every fix applied, plus its
/// [`PlanInfo`] (also stored in the model's properties). Not yet optimized: this is what an
/// NNEF archive stores.
pub fn translate_onnx(path: &Path, opts: &LoadOptions) -> Result<(TypedModel, PlanInfo)> {
    opts.check()?;
    let (seq, batch) = (opts.seq_or_default(), opts.batch.unwrap_or(1));
    let mut proto = read_proto(path)?;
    unfuse(&mut proto, path)?;
    let facts = inspect(&proto, path)?;
    let config_path = config::locate(opts.config.as_deref(), path);
    let cfg = match &config_path {
        Some(p) => config::read(p)?,
        None => config::ModelConfig::default(),
    };
    let mut info = plan_info(&facts, opts, path, seq, batch)?;
    let variant = info.variant;

    if opts.fixes.f16_gemm && facts.variant == Variant::F16 {
        f16_gemm::apply(&mut proto);
    }
    let mut model = parse(&proto, path, opts)?;
    // int8 batches run row by row: dynamic quantization takes one range per tensor, so rows
    // run together would change each other's outputs.
    let b = if variant == Variant::Int8 { 1 } else { batch };
    let h = facts.hidden;
    // The sequence axis: a symbol S in 1..=N (one plan for every length), or N itself.
    let s: TDim = if info.fixed_length {
        seq.to_dim()
    } else {
        let sym = model.symbols.sym(crate::runtime::SEQ_SYMBOL);
        // S ≥ 1 lets tract prove S-sized tensors non-empty (its fast binary-op kernels
        // need that); S ≤ N keeps the position slice's bound simple. tract does not check
        // them at run time: the encoder does (L ≤ N).
        model
            .symbols
            .add_assertion(format!("{}>=1", crate::runtime::SEQ_SYMBOL))
            .and_then(|_| {
                model
                    .symbols
                    .add_assertion(format!("{}<={seq}", crate::runtime::SEQ_SYMBOL))
            })
            .map_err(Error::Engine)?;
        sym.into()
    };
    let bs = || -> TVec<TDim> { tvec![b.to_dim(), s.clone()] };
    let g = proto.graph.as_ref();
    let ty =
        |name: &str, default: DatumType| g.and_then(|g| declared_type(g, name)).unwrap_or(default);
    let first_fact = match facts.flavour {
        Flavour::Ids => InferenceFact::dt_shape(ty("input_ids", DatumType::I64), bs()),
        Flavour::Embeds => {
            let mut shape = bs();
            shape.push(h.to_dim());
            InferenceFact::dt_shape(ty("inputs_embeds", DatumType::F32), shape)
        }
    };
    let mut pins = vec![
        (facts.flavour.input_name(), first_fact),
        (
            "attention_mask",
            InferenceFact::dt_shape(ty("attention_mask", DatumType::I64), bs()),
        ),
    ];
    if facts.token_types {
        let t = ty("token_type_ids", DatumType::I64);
        pins.push(("token_type_ids", InferenceFact::dt_shape(t, bs())));
    }
    if model.inputs.len() != pins.len() {
        let names: Vec<&str> = model
            .inputs
            .iter()
            .map(|o| model.node(o.node).name.as_str())
            .collect();
        return Err(Error::bad_model(format!(
            "{}: inputs {names:?}: bert-edge feeds {} (input_ids or inputs_embeds, \
             attention_mask, token_type_ids if present)",
            path.display(),
            pins.len()
        )));
    }
    for (name, fact) in pins {
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
        f16_convert::apply(&mut typed).map_err(Error::Engine)?;
    }
    let mut typed = typed.into_decluttered().map_err(Error::Engine)?;
    if variant == Variant::Int8 {
        dequant_arith::apply(&mut typed).map_err(Error::Engine)?;
        dyn_quant::swap_dynamic_quantize(&mut typed).map_err(Error::Engine)?;
    }
    info.outputs = read_outputs(&typed, (batch, seq, h), facts.vocab_size.or(cfg.vocab_size))?;
    info.task = crate::runtime::task_of(&info.outputs)
        .map_err(|e| Error::bad_model(format!("{}: {e}", path.display())))?;
    info.labels = config::labels_for(&info.outputs, &cfg, config_path.as_deref())?;
    info.multi_label = cfg.multi_label;
    info.sentence = sentence::read(path, h)?;
    info.write_properties(&mut typed);
    use crate::runtime::tokenizer_file;
    if let Some(t) = tokenizer_file::find(opts.tokenizer.as_deref(), path)? {
        tokenizer_file::write_property(&mut typed, &t);
    }
    Ok((typed, info))
}

/// tract's parse, with the model's directory for external data files.
fn parse(proto: &pb::ModelProto, path: &Path, opts: &LoadOptions) -> Result<InferenceModel> {
    let onnx = tract_onnx::onnx().with_ignore_value_info(opts.fixes.ignore_value_info);
    let dir = path.parent().and_then(|d| d.to_str());
    let parsed = onnx.parse(proto, dir).map_err(|e| {
        Error::bad_model(format!("{}: tract cannot parse it: {e:#}", path.display()))
    })?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(Error::bad_model(format!(
            "{}: the graph uses values nothing defines: {:?}",
            path.display(),
            parsed.unresolved_inputs
        )));
    }
    Ok(parsed.model)
}

/// The plan's info from what the file is and what the options ask for; refuses mismatches.
fn plan_info(
    facts: &OnnxFacts,
    opts: &LoadOptions,
    path: &Path,
    seq: usize,
    batch: usize,
) -> Result<PlanInfo> {
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
        if seq > max {
            return Err(Error::bad_input(format!(
                "sequence length {seq} is over the model's {max} positions"
            )));
        }
    }
    Ok(PlanInfo {
        flavour: facts.flavour,
        variant,
        batch,
        seq,
        fixed_length: opts.fixed_length.unwrap_or(false),
        hidden: facts.hidden,
        vocab_size: facts.vocab_size,
        type_vocab_size: facts.type_vocab_size,
        token_types: facts.token_types,
        // Filled from the typed graph and the config by `translate_onnx`.
        outputs: Vec::new(),
        task: crate::runtime::Task::FeatureExtraction,
        labels: Vec::new(),
        multi_label: false,
        sentence: None,
    })
}

/// ONNX file → optimized runnable [`Plan`] (what [`Plan::load`] does for an ONNX file).
pub(crate) fn load_onnx(path: &Path, opts: &LoadOptions) -> Result<Plan> {
    let _memory = crate::runtime::LoadMemory::begin();
    let (model, info) = translate_onnx(path, opts)?;
    Plan::from_translated(model, info, opts, opts.fixes.fold_int8_sums)
}

/// Translates an ONNX export (as [`Plan::load`] would, with `opts`) and writes it as a
/// precompiled archive that a device loads without the ONNX importer (`Plan::load` on it).
/// `out` ending in `.tar` is a plain tar (recommended: faster to load), anything else
/// tar.gz. Written to a temporary file, synced, then renamed: never a truncated `out`.
///
/// ```
/// use bert_edge::{compile, LoadOptions, Plan};
/// let out = std::env::temp_dir().join(format!("doc-{}.nnef.tar", std::process::id()));
/// let info = compile("models/tiny/bert_ids_int8.onnx", &LoadOptions::new().seq(8), &out)?;
/// let plan = Plan::load(&out, &LoadOptions::new())?;
/// assert_eq!(plan.info(), &info);
/// # std::fs::remove_file(&out).ok();
/// # Ok::<(), bert_edge::Error>(())
/// ```
pub fn compile(
    onnx: impl AsRef<Path>,
    opts: &LoadOptions,
    out: impl AsRef<Path>,
) -> Result<PlanInfo> {
    crate::error::guard("compiling the model", || {
        let (model, info) = translate_onnx(onnx.as_ref(), opts)?;
        crate::runtime::archive::save_archive(&model, out.as_ref())?;
        Ok(info)
    })
}

impl WordEmbeddings {
    /// Reads the `word_embeddings` table (`[vocab, hidden]`) out of an `input_ids` export, in
    /// f32 whatever the file stores (f16 tables are widened, int8 tables dequantized with the
    /// graph's own scale and zero point). Feature `onnx`.
    ///
    /// ```
    /// use bert_edge::WordEmbeddings;
    /// let table = WordEmbeddings::from_onnx("models/tiny/bert_ids_f32.onnx")?;
    /// assert_eq!((table.vocab_size(), table.hidden_size()), (21128, 64));
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn from_onnx(path: impl AsRef<Path>) -> Result<WordEmbeddings> {
        let path = path.as_ref();
        crate::error::guard("reading word embeddings", || word_embeddings(path))
    }
}

fn word_embeddings(path: &Path) -> Result<WordEmbeddings> {
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
    WordEmbeddings::new(vocab, hidden, values)
}
