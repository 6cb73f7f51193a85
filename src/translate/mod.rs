//! Translate time (host, or once at start-up; feature `onnx`): ONNX export → decluttered
//! tract model with pinned inputs and every import pass applied, then a [`Plan`] or an archive.
//!
//! Steps, in order: read the protobuf, check it is a BERT export and detect its flavour and
//! variant from the graph itself, parse it with tract, pin the input shapes, apply the
//! passes these exports need ([`crate::passes`]), convert precision if asked, declutter.

mod config;
mod embeddings;
mod inspect;
mod proto;
mod sentence;

pub use inspect::{inspect_onnx, OnnxFacts};

use crate::error::{Error, Result};
use crate::passes::{dequant_arith, dyn_quant, f16_convert, f16_gemm};
use crate::runtime::{read_outputs, Flavour, LoadOptions, Plan, PlanInfo, Variant, SEQ_SYMBOL};
use inspect::{inspect, unfuse};
use proto::{declared_type, read_proto};
use std::path::Path;
use tract_onnx::pb;
use tract_onnx::prelude::*;

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
    // int8: the sequence is a symbol while the quantizers learn their sequence axes, even for
    // a plan pinned to N (pinned after that).
    let int8 = variant == Variant::Int8;
    let s = seq_axis(&mut model, info.fixed_length && !int8, seq)?;
    pin_inputs(&mut model, &proto, &facts, (b, s), path)?;
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
    if int8 {
        typed = quantize_real_tokens(typed, info.fixed_length.then_some(seq))?;
    }
    let h = facts.hidden;
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

/// An int8 graph's quantizers made serializable and given their sequence axes and the mask
/// ([`dyn_quant::mark_sequence_axes`]: ranges over the real tokens only), then pinned to
/// `pin` positions if asked.
fn quantize_real_tokens(mut typed: TypedModel, pin: Option<usize>) -> Result<TypedModel> {
    dequant_arith::apply(&mut typed).map_err(Error::Engine)?;
    dyn_quant::swap_dynamic_quantize(&mut typed).map_err(Error::Engine)?;
    let sym = typed.symbols.sym(SEQ_SYMBOL);
    let mask = typed
        .inputs
        .iter()
        .copied()
        .find(|o| typed.node(o.node).name == "attention_mask")
        .ok_or_else(|| Error::bad_model("the graph lost its attention_mask input"))?;
    dyn_quant::mark_sequence_axes(&mut typed, &sym, mask).map_err(Error::Engine)?;
    let Some(n) = pin else {
        return Ok(typed);
    };
    let values = std::collections::HashMap::from([(sym, n.to_dim())]);
    let pinned = typed.set_symbols(&values).map_err(Error::Engine)?;
    pinned.into_decluttered().map_err(Error::Engine)
}

/// The sequence axis: a symbol S in 1..=N (one plan for every length), or N itself.
fn seq_axis(model: &mut InferenceModel, fixed_length: bool, seq: usize) -> Result<TDim> {
    if fixed_length {
        return Ok(seq.to_dim());
    }
    let sym = model.symbols.sym(SEQ_SYMBOL);
    // S ≥ 1 lets tract prove S-sized tensors non-empty (its fast binary-op kernels
    // need that); S ≤ N keeps the position slice's bound simple. tract does not check
    // them at run time: the encoder does (L ≤ N).
    model
        .symbols
        .add_assertion(format!("{SEQ_SYMBOL}>=1"))
        .and_then(|_| model.symbols.add_assertion(format!("{SEQ_SYMBOL}<={seq}")))
        .map_err(Error::Engine)?;
    Ok(sym.into())
}

/// Sets the inputs' facts: `[b, s]` token inputs (`[b, s, hidden]` embeds) of the types the
/// graph declares (int64 / f32 if it declares none).
fn pin_inputs(
    model: &mut InferenceModel,
    proto: &pb::ModelProto,
    facts: &inspect::OnnxFacts,
    (b, s): (usize, TDim),
    path: &Path,
) -> Result<()> {
    let bs = || -> TVec<TDim> { tvec![b.to_dim(), s.clone()] };
    let g = proto.graph.as_ref();
    let ty =
        |name: &str, default: DatumType| g.and_then(|g| declared_type(g, name)).unwrap_or(default);
    let first_fact = match facts.flavour {
        Flavour::Ids => InferenceFact::dt_shape(ty("input_ids", DatumType::I64), bs()),
        Flavour::Embeds => {
            let mut shape = bs();
            shape.push(facts.hidden.to_dim());
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
    Ok(())
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

/// The variant asked for (`asked`), of a file that is `file`: the same, or f16 of an f32 file.
fn variant(asked: Option<Variant>, file: Variant, path: &Path) -> Result<Variant> {
    match (asked, file) {
        (None, v) => Ok(v),
        (Some(a), v) if a == v => Ok(v),
        (Some(Variant::F16), Variant::F32) => Ok(Variant::F16),
        (Some(a), v) => Err(Error::bad_model(format!(
            "{}: asked for {a}, the file is {v} (only f32 → f16 is converted)",
            path.display()
        ))),
    }
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
    let variant = variant(opts.variant, facts.variant, path)?;
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
            return Err(Error::bad_options(format!(
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
        let (mut model, info) = translate_onnx(onnx.as_ref(), opts)?;
        if opts.tune == crate::tuning::Tune::Measure {
            use crate::runtime::{optimize, tuning};
            let t = optimize::measure_translated(&model, &info, opts, opts.fixes.fold_int8_sums)?;
            tuning::record_into(&mut model, &t);
        }
        crate::runtime::archive::save_archive(&model, out.as_ref())?;
        Ok(info)
    })
}
