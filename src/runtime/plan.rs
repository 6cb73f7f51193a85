//! `Plan`: an optimized tract model — of any sequence length up to N, or pinned to N — plus
//! what callers need to know about it (`PlanInfo`, also stored in archives as model
//! properties).

use super::options::LoadOptions;
use super::signature::{role_of, task_of, OutputInfo, Role, Task};
use crate::error::{Error, Result};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use tract_core::internal::*;

/// Which first input the graph takes.
///
/// ```
/// use bert_edge::Flavour;
/// assert_eq!("embeds".parse::<Flavour>()?, Flavour::Embeds);
/// assert_eq!(Flavour::Ids.input_name(), "input_ids");
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// `input_ids` [batch, seq] int64: the graph looks up its own word embeddings.
    Ids,
    /// `inputs_embeds` [batch, seq, hidden] f32: the caller supplies the word embeddings.
    Embeds,
}

impl Flavour {
    /// The ONNX input name of the first input.
    pub fn input_name(self) -> &'static str {
        match self {
            Flavour::Ids => "input_ids",
            Flavour::Embeds => "inputs_embeds",
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavour::Ids => "ids",
            Flavour::Embeds => "embeds",
        })
    }
}

impl std::str::FromStr for Flavour {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ids" | "input_ids" => Ok(Flavour::Ids),
            "embeds" | "inputs_embeds" => Ok(Flavour::Embeds),
            _ => Err(Error::bad_input(format!(
                "unknown flavour {s:?} (ids | embeds)"
            ))),
        }
    }
}

/// The numeric variant of a plan.
///
/// ```
/// use bert_edge::Variant;
/// assert_eq!("int8".parse::<Variant>()?, Variant::Int8);
/// assert_eq!(Variant::F16.to_string(), "f16");
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Everything in f32.
    F32,
    /// Weights and arithmetic in f16 (f32 at the graph's inputs and outputs).
    F16,
    /// Dynamic int8 quantization of the matmul weights.
    Int8,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::F32 => "f32",
            Variant::F16 => "f16",
            Variant::Int8 => "int8",
        })
    }
}

impl std::str::FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Variant::F32),
            "f16" => Ok(Variant::F16),
            "int8" => Ok(Variant::Int8),
            _ => Err(Error::bad_input(format!(
                "unknown variant {s:?} (f32 | f16 | int8)"
            ))),
        }
    }
}

/// What a plan was built for: the numbers every call is checked against.
///
/// ```
/// # #[cfg(feature = "onnx")] {
/// use bert_edge::{LoadOptions, Plan};
/// let plan = Plan::load("models/tiny/bert_embeds_f16.onnx", &LoadOptions::new().seq(8))?;
/// let info = plan.info();
/// assert_eq!((info.batch, info.seq, info.hidden), (1, 8, 64));
/// assert_eq!(info.vocab_size, None); // an embeds graph has no word-embedding table
/// # }
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInfo {
    /// `input_ids` or `inputs_embeds` graph.
    pub flavour: Flavour,
    /// Numeric variant of the plan.
    pub variant: Variant,
    /// Batch size: rows per call.
    pub batch: usize,
    /// Sequence capacity N: every token row of a call is N long (buffers of
    /// [`Plan::inputs`] / [`Plan::outputs`]).
    pub seq: usize,
    /// `false`: the plan's sequence axis is a symbol `S ≤ seq`, and each call runs at
    /// L = its longest real row (rounded up to the granule); `true`: every call computes
    /// all `seq` positions.
    pub fixed_length: bool,
    /// Hidden size (768 for bert-base-chinese).
    pub hidden: usize,
    /// Word-piece vocabulary size (ids must be below it); known for ids graphs.
    pub vocab_size: Option<usize>,
    /// Number of token types (token_type_ids must be below it).
    pub type_vocab_size: usize,
    /// Whether the graph takes `token_type_ids` (graphs without the input get none).
    pub token_types: bool,
    /// Every output of the graph, in the graph's order, with its role.
    pub outputs: Vec<OutputInfo>,
    /// What the graph is for, from its outputs' roles.
    pub task: Task,
    /// Label of each class of the sequence or token logits (`id2label` of the export's
    /// `config.json`, else `LABEL_0`, `LABEL_1`, … as Hugging Face names them); empty when
    /// the graph has no classification logits.
    pub labels: Vec<String>,
    /// The config's `problem_type` is `multi_label_classification`: sequence scores are
    /// independent sigmoids rather than one softmax.
    pub multi_label: bool,
    /// The sentence-transformers files found beside the export or one level up (pooling,
    /// normalization, prompts); `None` if there were none. See [`crate::heads::Embedding`].
    pub sentence: Option<super::SentenceConfig>,
}

/// Archive property layout version (2: outputs by role, labels, optional token types;
/// 3: plans of any length, `fixed_length`; 4: sentence-transformers config, tokenizer).
const FORMAT: i64 = 4;

/// The name of the sequence-length symbol of a plan of any length.
pub(crate) const SEQ_SYMBOL: &str = "S";

/// The shape of output `ix` at capacity (`S` = `n`), and whether it has a sequence axis
/// (axis 1 is `S`: one row of values per position). Any other use of `S` is refused: the
/// caller's buffers could not hold it.
pub(crate) fn capacity_shape(
    model: &TypedModel,
    ix: usize,
    name: &str,
    n: usize,
) -> Result<(Vec<usize>, bool)> {
    let fact = model.output_fact(ix).map_err(Error::Engine)?;
    let bad = || {
        Error::bad_model(format!(
            "output {name} has shape {:?}: bert-edge lays outputs out as [batch, …] or \
             [batch, seq, …] with the inputs' batch and sequence axes",
            fact.shape
        ))
    };
    let Some(s) = model.symbols.get(SEQ_SYMBOL) else {
        let shape = fact.shape.as_concrete().ok_or_else(bad)?;
        return Ok((shape.to_vec(), false));
    };
    let mut per_token = false;
    let mut shape = Vec::with_capacity(fact.rank());
    for (axis, d) in fact.shape.iter().enumerate() {
        if let Some(v) = d.as_i64() {
            shape.push(v as usize);
        } else if axis == 1 && *d == TDim::Sym(s.clone()) {
            per_token = true;
            shape.push(n);
        } else {
            return Err(bad());
        }
    }
    Ok((shape, per_token))
}

/// Rows a tract run of the model takes: its first input's batch axis. Equal to
/// [`PlanInfo::batch`], or 1 for an int8 plan of batch > 1, whose rows run one by one (each
/// at its own length, each with its own quantization ranges).
pub(crate) fn model_batch(model: &TypedModel) -> Result<usize> {
    let fact = model.input_fact(0).map_err(Error::Engine)?;
    fact.shape
        .iter()
        .next()
        .and_then(|d| d.as_i64())
        .map(|b| b as usize)
        .ok_or_else(|| Error::bad_model(format!("input batch axis of {:?}", fact.shape)))
}

/// Every output of a translated model: name, role, shape at capacity (`dims` = batch, N,
/// hidden; batch first even when the model runs rows one by one).
pub(crate) fn read_outputs(
    model: &TypedModel,
    dims: (usize, usize, usize),
    vocab: Option<usize>,
) -> Result<Vec<OutputInfo>> {
    let rows = model_batch(model)?;
    let mut outputs = Vec::with_capacity(model.outputs.len());
    for (ix, o) in model.outputs.iter().enumerate() {
        let name = output_name(model, *o).to_string();
        let (mut shape, _) = capacity_shape(model, ix, &name, dims.1)?;
        let role = role_of(&name, &shape, (rows, dims.1, dims.2), vocab);
        if role.is_some() {
            shape[0] = dims.0;
        }
        outputs.push(OutputInfo { role, name, shape });
    }
    Ok(outputs)
}

/// The name of a model output: its label if it has one, else its node's name.
pub(crate) fn output_name(model: &TypedModel, o: OutletId) -> &str {
    model
        .outlet_label(o)
        .unwrap_or(model.node(o.node).name.as_str())
}

impl PlanInfo {
    pub(crate) const PROPERTY_PREFIX: &'static str = "bert_edge.";

    /// Checks an archive's info against what the options ask for (its shapes are fixed).
    pub(crate) fn check(&self, opts: &LoadOptions, origin: &Path) -> Result<()> {
        let i = self;
        let mismatch =
            |what: String| Err(Error::bad_model(format!("{}: {what}", origin.display())));
        if let Some(s) = opts.seq.filter(|s| *s != i.seq) {
            return mismatch(format!(
                "compiled for sequence length {}, asked for {s}",
                i.seq
            ));
        }
        if let Some(f) = opts.fixed_length.filter(|f| *f != i.fixed_length) {
            return mismatch(format!(
                "compiled as a {} plan, asked for a {} one (recompile it)",
                length_kind(i.fixed_length),
                length_kind(f)
            ));
        }
        if let Some(b) = opts.batch.filter(|b| *b != i.batch) {
            return mismatch(format!("compiled for batch {}, asked for {b}", i.batch));
        }
        if let Some(f) = opts.flavour.filter(|f| *f != i.flavour) {
            return mismatch(format!(
                "compiled for the {} flavour, asked for {f}",
                i.flavour
            ));
        }
        if let Some(v) = opts.variant.filter(|v| *v != i.variant) {
            return mismatch(format!("asked for {v}, the model is {}", i.variant));
        }
        if let Some(h) = opts.hidden_size.filter(|h| *h != i.hidden) {
            return mismatch(format!(
                "asked for hidden size {h}, the model has {}",
                i.hidden
            ));
        }
        Ok(())
    }

    /// Stores the info as model properties, so a precompiled archive carries it.
    #[cfg_attr(not(feature = "onnx"), allow(dead_code))] // written at translate time only
    pub(crate) fn write_properties(&self, model: &mut TypedModel) {
        let p = |v: i64| Arc::new(tensor0(v));
        let props = &mut model.properties;
        let k = |s: &str| format!("{}{s}", Self::PROPERTY_PREFIX);
        props.insert(k("flavour"), Arc::new(tensor0(self.flavour.to_string())));
        props.insert(k("variant"), Arc::new(tensor0(self.variant.to_string())));
        props.insert(k("batch"), p(self.batch as i64));
        props.insert(k("seq"), p(self.seq as i64));
        props.insert(k("fixed_length"), p(self.fixed_length as i64));
        props.insert(k("hidden"), p(self.hidden as i64));
        props.insert(
            k("vocab_size"),
            p(self.vocab_size.map(|v| v as i64).unwrap_or(-1)),
        );
        props.insert(k("type_vocab_size"), p(self.type_vocab_size as i64));
        props.insert(k("token_types"), p(self.token_types as i64));
        props.insert(k("multi_label"), p(self.multi_label as i64));
        // Each label as the hex of its UTF-8 bytes, comma-separated: NNEF's string literals
        // do not keep every character (a "\n" reads back as "n").
        let hex: Vec<String> = self
            .labels
            .iter()
            .map(|l| l.bytes().map(|b| format!("{b:02x}")).collect())
            .collect();
        props.insert(k("labels"), Arc::new(tensor0(hex.join(","))));
        if let Some(st) = &self.sentence {
            props.insert(k("sentence"), Arc::new(tensor0(st.encode())));
        }
        props.insert(k("format"), p(FORMAT));
    }

    /// Reads what [`PlanInfo::write_properties`] stored.
    pub(crate) fn from_properties(model: &TypedModel) -> Result<Self> {
        let get = |name: &str| -> Result<&Arc<Tensor>> {
            model
                .properties
                .get(&format!("{}{name}", Self::PROPERTY_PREFIX))
                .ok_or_else(|| {
                    Error::bad_model(format!(
                    "archive lacks the bert-edge property {name:?}: not made by `bert-edge compile`"
                ))
                })
        };
        let int = |name: &str| -> Result<i64> {
            get(name)?
                .cast_to_scalar::<i64>()
                .map_err(|e| Error::bad_model(format!("property {name}: {e}")))
        };
        let text = |name: &str| -> Result<String> {
            get(name)?
                .try_as_plain_ram()
                .and_then(|v| v.to_scalar::<String>().cloned())
                .map_err(|e| Error::bad_model(format!("property {name}: {e}")))
        };
        let format = int("format")?;
        if !(2..=FORMAT).contains(&format) {
            return Err(Error::bad_model(
                "archive made by an incompatible bert-edge version",
            ));
        }
        let vocab = int("vocab_size")?;
        let labels = text("labels")?;
        let labels: Vec<String> = labels
            .split(',')
            .filter(|_| !labels.is_empty())
            .map(|h| {
                let bytes: Option<Vec<u8>> = (0..h.len())
                    .step_by(2)
                    .map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
                    .collect();
                bytes.and_then(|b| String::from_utf8(b).ok())
            })
            .collect::<Option<_>>()
            .ok_or_else(|| Error::bad_model("bad labels property"))?;
        let (batch, seq, hidden) = (
            int("batch")? as usize,
            int("seq")? as usize,
            int("hidden")? as usize,
        );
        let vocab_size = (vocab > 0).then_some(vocab as usize);
        let outputs = read_outputs(model, (batch, seq, hidden), vocab_size)?;
        Ok(PlanInfo {
            flavour: text("flavour")?
                .parse()
                .map_err(|_| Error::bad_model("bad flavour property"))?,
            variant: text("variant")?
                .parse()
                .map_err(|_| Error::bad_model("bad variant property"))?,
            batch,
            seq,
            // Format 2 archives are all pinned.
            fixed_length: format < 3 || int("fixed_length")? != 0,
            hidden,
            vocab_size,
            type_vocab_size: int("type_vocab_size")? as usize,
            token_types: int("token_types")? != 0,
            task: task_of(&outputs)?,
            outputs,
            labels,
            multi_label: int("multi_label")? != 0,
            sentence: match get("sentence") {
                Ok(_) => Some(super::SentenceConfig::decode(&text("sentence")?)?),
                Err(_) => None,
            },
        })
    }

    /// The first output with this role, if the graph has one.
    pub fn output(&self, role: Role) -> Option<&OutputInfo> {
        self.outputs.iter().find(|o| o.role == Some(role))
    }
}

fn length_kind(fixed: bool) -> &'static str {
    if fixed {
        "fixed-length"
    } else {
        "any-length"
    }
}

/// An optimized tract plan — of any sequence length up to [`PlanInfo::seq`], or pinned to
/// it — shared by any number of [`crate::Encoder`]s (wrap it in an `Arc`).
///
/// ```
/// # #[cfg(feature = "onnx")] {
/// use bert_edge::{Flavour, LoadOptions, Plan, Variant};
/// let plan = Plan::load("models/tiny/bert_ids_int8.onnx", &LoadOptions::new().seq(16))?;
/// assert_eq!(plan.info().flavour, Flavour::Ids);
/// assert_eq!(plan.info().variant, Variant::Int8);
/// assert_eq!(plan.info().seq, 16);
/// # }
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug)]
pub struct Plan {
    pub(crate) runnable: Arc<TypedRunnableModel>,
    pub(crate) info: PlanInfo,
    /// Model input index of: first input (ids or embeds), attention_mask, token_type_ids
    /// (`None`: the graph takes no token types).
    pub(crate) input_ix: [Option<usize>; 3],
    /// Model output index of each of `info.outputs`.
    pub(crate) output_ix: Vec<usize>,
    /// For each of `info.outputs`: whether it has a sequence axis (axis 1) that a call of
    /// length L fills up to L.
    pub(crate) per_token: Vec<bool>,
    /// Rows per tract run: `info.batch`, or 1 (rows one by one, see [`model_batch`]).
    pub(crate) run_batch: usize,
    /// A call of any length runs at a multiple of this.
    pub(crate) granule: usize,
    /// Threads each encoder runs tract on.
    pub(crate) threads: usize,
    /// The model's tokenizer.json ([`Plan::tokenizer`]).
    pub(crate) tokenizer: Option<super::tokenizer_file::TokenizerFile>,
    /// [`Plan::parameter_count`].
    pub(crate) parameters: usize,
}

impl Plan {
    /// Loads a model: an ONNX export (translated and optimized; needs the `onnx` feature) or a
    /// precompiled archive written by [`crate::compile`], told apart by the file's content.
    ///
    /// ```
    /// # #[cfg(feature = "onnx")] {
    /// use bert_edge::{LoadOptions, Plan};
    /// let plan = Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?;
    /// assert_eq!(plan.info().hidden, 64);
    /// # }
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Plan> {
        let path = path.as_ref();
        crate::error::guard("loading the model", || match sniff(path)? {
            Format::Archive => {
                super::memory_check::check(path, false)?;
                let mut plan = super::archive::load(path, opts)?;
                // Given or beside the archive: it wins over the bundled one.
                let file = super::tokenizer_file::find(opts.tokenizer.as_deref(), path)?;
                let bundled = plan.tokenizer.take().map(|t| t.bundled_in(path));
                plan.tokenizer = file.or(bundled);
                Ok(plan)
            }
            #[cfg(feature = "onnx")]
            Format::Onnx => {
                super::memory_check::check(path, true)?;
                crate::translate::load_onnx(path, opts)
            }
            #[cfg(not(feature = "onnx"))]
            Format::Onnx => Err(Error::bad_model(format!(
                "{}: not a bert-edge archive, and this build has no ONNX importer (feature \
                 `onnx`): compile the model with `bert-edge compile` on a host",
                path.display()
            ))),
        })
    }

    /// What this plan was built for.
    pub fn info(&self) -> &PlanInfo {
        &self.info
    }

    /// The model's `tokenizer.json` (where it came from, its bytes): the file
    /// [`LoadOptions::tokenizer`] names, else the one beside the model file or one directory
    /// up, else the one an archive carries; `None` if there is none. Read it with
    /// `bert_edge::tokenize::BertTokenizer::for_plan`.
    pub fn tokenizer(&self) -> Option<(&str, &[u8])> {
        self.tokenizer
            .as_ref()
            .map(|t| (t.origin.as_str(), &t.json[..]))
    }

    /// The length a call whose longest real row is `real` tokens runs at: `real` rounded up
    /// to a multiple of the granule (lengths below the granule as they are), at most N; a
    /// fixed-length plan: always N. An int8 plan of any length runs at exactly `real`
    /// (granule 1), so that its quantization ranges never see a padding position.
    ///
    /// ```
    /// # #[cfg(feature = "onnx")] {
    /// use bert_edge::{LoadOptions, Plan};
    /// let plan = Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(20))?;
    /// let at = |n| plan.run_length(n);
    /// assert_eq!((at(6), at(8), at(9), at(19)), (6, 8, 16, 20));
    /// # }
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn run_length(&self, real: usize) -> usize {
        let n = self.info.seq;
        if self.info.fixed_length {
            return n;
        }
        let g = self.granule;
        let real = real.max(1);
        if real < g {
            return real.min(n);
        }
        real.div_ceil(g).saturating_mul(g).min(n)
    }

    /// Whether any tensor of the plan is f16 (an f16 plan widened to f32 by
    /// [`crate::F16Compute`] has none).
    pub fn computes_f16(&self) -> bool {
        crate::passes::widen_f16::has_f16(self.runnable.model())
    }

    /// Op-name histogram of the optimized plan, most frequent first.
    pub fn op_histogram(&self) -> Vec<(String, usize)> {
        let mut h: HashMap<String, usize> = HashMap::new();
        for n in self.runnable.model().nodes() {
            *h.entry(n.op.name().to_string()).or_default() += 1;
        }
        let mut v: Vec<_> = h.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Number of parameters of the model: the elements of its weight tensors (every constant
    /// of more than one element), counted before optimization packs them into the matmuls.
    ///
    /// ```
    /// # #[cfg(feature = "onnx")] {
    /// use bert_edge::{LoadOptions, Plan};
    /// let plan = Plan::load("models/tiny/bert_ids_int8.onnx", &LoadOptions::new().seq(8))?;
    /// // The tiny fixture: 21128 × 64 word embeddings plus two small layers.
    /// assert!(plan.parameter_count() > 21128 * 64);
    /// # }
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn parameter_count(&self) -> usize {
        self.parameters
    }

    /// Makes a runnable plan from a translated (decluttered, inputs pinned) model, ONNX or
    /// archive alike: widens f16 to f32 if `f16` says so, optimizes for the CPU at hand, folds
    /// the constant chains tract leaves (`fold_int8_sums`, see [`crate::passes::fold`]).
    pub(crate) fn from_translated(
        mut model: TypedModel,
        info: PlanInfo,
        opts: &LoadOptions,
        fold_int8_sums: bool,
    ) -> Result<Plan> {
        let f16 = opts.f16_compute;
        use crate::passes::{fold, widen_f16};
        let tokenizer = super::tokenizer_file::read_property(&model)?;
        let parameters = model
            .nodes()
            .iter()
            .filter_map(|n| n.op_as::<tract_core::ops::konst::Const>())
            .map(|c| c.val().len())
            .filter(|n| *n > 1)
            .sum();
        if f16.widens() {
            widen_f16::widen_to_f32(&mut model).map_err(Error::Engine)?;
        }
        // = `into_optimized()`, with the int8 column-sum fold as the codegen's first pass.
        model.declutter().map_err(Error::Engine)?;
        let mut codegen = tract_core::optim::Optimizer::codegen();
        if fold_int8_sums {
            codegen.add_pass(0, Box::<fold::FoldPass>::default());
        }
        model
            .optimize_with_session(&mut codegen.session())
            .map_err(Error::Engine)?;
        if fold_int8_sums {
            fold::apply(&mut model).map_err(Error::Engine)?;
        }
        // The counts were checked (`LoadOptions::check`) before translating or reading.
        let mut plan = Plan::from_optimized(model, info)?;
        plan.tokenizer = tokenizer;
        plan.parameters = parameters;
        // int8: every call at its exact length. Dynamic quantization takes each tensor's range
        // over all the positions it is given, so a padded position would change the answer
        // (docs/design.md "int8 and padding"); the granule is a speed knob for f32/f16.
        plan.granule = match plan.info.variant {
            Variant::Int8 => 1,
            _ => opts.granule_or_default(),
        };
        plan.threads = opts.threads.unwrap_or(1);
        Ok(plan)
    }

    /// Makes a runnable plan from an optimized typed model whose inputs are set.
    fn from_optimized(model: TypedModel, info: PlanInfo) -> Result<Plan> {
        let wanted = 2 + info.token_types as usize;
        if model.inputs.len() != wanted {
            return Err(Error::bad_model(format!(
                "expected {wanted} inputs, the graph has {}",
                model.inputs.len()
            )));
        }
        let find_in = |name: &str| -> Result<usize> {
            model
                .inputs
                .iter()
                .position(|o| model.node(o.node).name == name)
                .ok_or_else(|| Error::bad_model(format!("the graph has no input named {name:?}")))
        };
        let input_ix = [
            Some(find_in(info.flavour.input_name())?),
            Some(find_in("attention_mask")?),
            info.token_types
                .then(|| find_in("token_type_ids"))
                .transpose()?,
        ];
        let mut output_ix = Vec::with_capacity(info.outputs.len());
        let mut per_token = Vec::with_capacity(info.outputs.len());
        for o in &info.outputs {
            let ix = model
                .outputs
                .iter()
                .position(|x| output_name(&model, *x) == o.name)
                .ok_or_else(|| {
                    Error::bad_model(format!("the optimized graph lost output {:?}", o.name))
                })?;
            let (mut shape, tokens) = capacity_shape(&model, ix, &o.name, info.seq)?;
            if o.role.is_some() {
                shape[0] = info.batch;
            }
            if shape != o.shape {
                return Err(Error::bad_model(format!(
                    "output {} has shape {shape:?}, expected {:?}",
                    o.name, o.shape
                )));
            }
            output_ix.push(ix);
            per_token.push(tokens);
        }
        let run_batch = model_batch(&model)?;
        if run_batch != info.batch && run_batch != 1 {
            return Err(Error::bad_model(format!(
                "the graph runs {run_batch} rows, the plan says {}",
                info.batch
            )));
        }
        if run_batch != info.batch && info.outputs.iter().any(|o| o.role.is_none()) {
            return Err(Error::bad_model(
                "a plan whose rows run one by one needs every output batch-first",
            ));
        }
        let runnable = model.into_runnable().map_err(Error::Engine)?;
        Ok(Plan {
            runnable,
            info,
            input_ix,
            output_ix,
            per_token,
            run_batch,
            granule: super::options::DEFAULT_GRANULE,
            threads: 1,
            tokenizer: None,
            parameters: 0,
        })
    }
}

enum Format {
    Onnx,
    Archive,
}

/// ONNX (protobuf) or archive (tar, or gzip-compressed tar), from the first bytes.
fn sniff(path: &Path) -> Result<Format> {
    use std::io::Read;
    let mut head = Vec::with_capacity(262);
    std::fs::File::open(path)
        .and_then(|f| f.take(262).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let tar = head.get(257..262) == Some(b"ustar".as_slice());
    Ok(if gzip || tar {
        Format::Archive
    } else {
        Format::Onnx
    })
}
