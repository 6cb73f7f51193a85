//! `Plan`: an optimized, shape-pinned tract model plus what callers need to know about it.

use crate::error::{Error, Result};
use std::fmt;
use std::sync::Arc;
use tract_core::internal::*;

/// Which first input the graph takes.
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
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInfo {
    /// `input_ids` or `inputs_embeds` graph.
    pub flavour: Flavour,
    /// Numeric variant of the plan.
    pub variant: Variant,
    /// Pinned batch size.
    pub batch: usize,
    /// Pinned sequence length N.
    pub seq: usize,
    /// Hidden size (768 for bert-base-chinese).
    pub hidden: usize,
    /// Word-piece vocabulary size (ids must be below it); known for ids graphs.
    pub vocab_size: Option<usize>,
    /// Number of token types (token_type_ids must be below it).
    pub type_vocab_size: usize,
}

impl PlanInfo {
    pub(crate) const PROPERTY_PREFIX: &'static str = "bert_edge.";

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
        props.insert(k("hidden"), p(self.hidden as i64));
        props.insert(
            k("vocab_size"),
            p(self.vocab_size.map(|v| v as i64).unwrap_or(-1)),
        );
        props.insert(k("type_vocab_size"), p(self.type_vocab_size as i64));
        props.insert(k("format"), p(1));
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
        if int("format")? != 1 {
            return Err(Error::bad_model(
                "archive made by an incompatible bert-edge version",
            ));
        }
        let vocab = int("vocab_size")?;
        Ok(PlanInfo {
            flavour: text("flavour")?
                .parse()
                .map_err(|_| Error::bad_model("bad flavour property"))?,
            variant: text("variant")?
                .parse()
                .map_err(|_| Error::bad_model("bad variant property"))?,
            batch: int("batch")? as usize,
            seq: int("seq")? as usize,
            hidden: int("hidden")? as usize,
            vocab_size: (vocab > 0).then_some(vocab as usize),
            type_vocab_size: int("type_vocab_size")? as usize,
        })
    }
}

/// An optimized tract plan with fixed input shapes, shared by any number of [`crate::Encoder`]s.
#[derive(Debug)]
pub struct Plan {
    pub(crate) runnable: Arc<TypedRunnableModel>,
    pub(crate) info: PlanInfo,
    /// Model input index of: first input (ids or embeds), attention_mask, token_type_ids.
    pub(crate) input_ix: [usize; 3],
    /// Model output index of: last_hidden_state, pooler_output.
    pub(crate) output_ix: [usize; 2],
}

impl Plan {
    /// Whether any tensor of the plan is f16 (an f16 plan widened to f32 by
    /// [`F16Compute`](super::F16Compute) has none).
    pub fn computes_f16(&self) -> bool {
        super::f16_compute::has_f16(self.runnable.model())
    }

    /// Makes a runnable plan from a translated (decluttered, inputs pinned) model, ONNX or
    /// archive alike: widens f16 to f32 if `f16` says so, optimizes for the CPU at hand, folds
    /// the constant chains tract leaves (`fold_int8_sums`, see [`super::fold`]).
    pub fn from_translated(
        mut model: TypedModel,
        info: PlanInfo,
        f16: super::F16Compute,
        fold_int8_sums: bool,
    ) -> Result<Plan> {
        if f16.widens() {
            super::widen_to_f32(&mut model).map_err(Error::Engine)?;
        }
        // = `into_optimized()`, with the int8 column-sum fold as the codegen's first pass.
        model.declutter().map_err(Error::Engine)?;
        let mut codegen = tract_core::optim::Optimizer::codegen();
        if fold_int8_sums {
            codegen.add_pass(0, Box::<super::fold::FoldPass>::default());
        }
        model
            .optimize_with_session(&mut codegen.session())
            .map_err(Error::Engine)?;
        if fold_int8_sums {
            super::fold::apply(&mut model).map_err(Error::Engine)?;
        }
        Plan::from_optimized(model, info)
    }

    /// Makes a runnable plan from an optimized typed model whose inputs are pinned.
    pub fn from_optimized(model: TypedModel, info: PlanInfo) -> Result<Plan> {
        let find_in = |name: &str| -> Result<usize> {
            model
                .inputs
                .iter()
                .position(|o| model.node(o.node).name == name)
                .ok_or_else(|| Error::bad_model(format!("the graph has no input named {name:?}")))
        };
        let input_ix = [
            find_in(info.flavour.input_name())?,
            find_in("attention_mask")?,
            find_in("token_type_ids")?,
        ];
        if model.inputs.len() != 3 {
            return Err(Error::bad_model(format!(
                "expected 3 inputs, the graph has {}",
                model.inputs.len()
            )));
        }
        let find_out = |name: &str| -> Result<usize> {
            model
                .outputs
                .iter()
                .position(|o| {
                    model.outlet_label(*o) == Some(name) || model.node(o.node).name == name
                })
                .ok_or_else(|| Error::bad_model(format!("the graph has no output named {name:?}")))
        };
        let output_ix = [find_out("last_hidden_state")?, find_out("pooler_output")?];
        let (b, s, h) = (info.batch, info.seq, info.hidden);
        let expect = |ix: usize, shape: &[usize]| -> Result<()> {
            let fact = model.output_fact(ix).map_err(Error::Engine)?;
            let got = fact.shape.as_concrete().map(|s| s.to_vec());
            if got.as_deref() != Some(shape) {
                return Err(Error::bad_model(format!(
                    "output {ix} has shape {:?}, expected {shape:?} (hidden size {h})",
                    fact.shape
                )));
            }
            Ok(())
        };
        expect(output_ix[0], &[b, s, h])?;
        expect(output_ix[1], &[b, h])?;
        let runnable = model.into_runnable().map_err(Error::Engine)?;
        Ok(Plan {
            runnable,
            info,
            input_ix,
            output_ix,
        })
    }

    /// What this plan was built for.
    pub fn info(&self) -> &PlanInfo {
        &self.info
    }

    /// The optimized tract model behind the plan (for inspection: op histogram, facts).
    pub fn model(&self) -> &TypedModel {
        self.runnable.model()
    }

    /// Op-name histogram of the optimized plan, most frequent first.
    pub fn op_histogram(&self) -> Vec<(String, usize)> {
        let mut h: HashMap<String, usize> = HashMap::new();
        for n in self.model().nodes() {
            *h.entry(n.op.name().to_string()).or_default() += 1;
        }
        let mut v: Vec<_> = h.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Number of scalar parameters held as constants in the plan.
    pub fn parameter_count(&self) -> usize {
        self.model()
            .nodes()
            .iter()
            .filter_map(|n| n.op_as::<tract_core::ops::konst::Const>())
            .map(|c| c.val().len())
            .sum()
    }

    /// Length of the `last_hidden_state` buffer a call fills: batch × seq × hidden.
    pub fn hidden_len(&self) -> usize {
        self.info.batch * self.info.seq * self.info.hidden
    }

    /// Length of the `pooler_output` buffer a call fills: batch × hidden.
    pub fn pooled_len(&self) -> usize {
        self.info.batch * self.info.hidden
    }

    /// Length of the id / mask / type buffers: batch × seq.
    pub fn tokens_len(&self) -> usize {
        self.info.batch * self.info.seq
    }

    /// Checks the plan is what the caller expects.
    pub fn expect(&self, flavour: Option<Flavour>, variant: Option<Variant>) -> Result<()> {
        if let Some(f) = flavour {
            if f != self.info.flavour {
                return Err(Error::bad_model(format!(
                    "asked for the {f} flavour, the model is an {} graph",
                    self.info.flavour
                )));
            }
        }
        if let Some(v) = variant {
            if v != self.info.variant {
                return Err(Error::bad_model(format!(
                    "asked for {v}, the model is {}",
                    self.info.variant
                )));
            }
        }
        Ok(())
    }
}
