//! `Plan`: an optimized tract model — of any sequence length up to N, or pinned to N — plus
//! what callers need to know about it ([`PlanInfo`]). Loading one: `src/load.rs`; optimizing
//! a translated model into one: `optimize.rs`.

use super::shapes::{capacity_shape, model_batch, output_name};
use super::PlanInfo;
use crate::error::{Error, Result};
use std::sync::Arc;
use tract_core::internal::*;

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
    /// [`Plan::kernels`].
    pub(crate) kernels: Vec<super::tuning::KernelChoice>,
    /// [`Plan::tuning`].
    pub(crate) tuning: Option<super::tuning::Tuning>,
}

impl Plan {
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

    /// The plan's matmul kernels, one entry per geometry and kernel, and who chose each
    /// ([`LoadOptions::tune`](crate::LoadOptions::tune)).
    ///
    /// ```
    /// # #[cfg(feature = "onnx")] {
    /// use bert_edge::{tuning::{ChosenBy, Tune}, LoadOptions, Plan};
    /// let opts = LoadOptions::new().seq(8).tune(Tune::Rules);
    /// let plan = Plan::load("models/tiny/bert_ids_int8.onnx", &opts)?;
    /// assert!(!plan.kernels().is_empty());
    /// for k in plan.kernels() {
    ///     assert!(k.candidates.contains(&k.kernel) && k.chosen_by == ChosenBy::Rules);
    /// }
    /// # }
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn kernels(&self) -> &[super::tuning::KernelChoice] {
        &self.kernels
    }

    /// The measurement this load made ([`Tune::Measure`](crate::tuning::Tune::Measure)), else
    /// `None`.
    pub fn tuning(&self) -> Option<&super::tuning::Tuning> {
        self.tuning.as_ref()
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

    /// Makes a runnable plan from an optimized typed model whose inputs are set.
    pub(super) fn from_optimized(model: TypedModel, info: PlanInfo) -> Result<Plan> {
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
        let (output_ix, per_token) = output_layout(&model, &info)?;
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
            kernels: vec![],
            tuning: None,
        })
    }
}

/// For each of `info.outputs`: its model output index, and whether it has a sequence axis;
/// refuses an output the optimized graph lost or changed the shape of.
fn output_layout(model: &TypedModel, info: &PlanInfo) -> Result<(Vec<usize>, Vec<bool>)> {
    let mut output_ix = Vec::with_capacity(info.outputs.len());
    let mut per_token = Vec::with_capacity(info.outputs.len());
    for o in &info.outputs {
        let ix = model
            .outputs
            .iter()
            .position(|x| output_name(model, *x) == o.name)
            .ok_or_else(|| {
                Error::bad_model(format!("the optimized graph lost output {:?}", o.name))
            })?;
        let (mut shape, tokens) = capacity_shape(model, ix, &o.name, info.seq)?;
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
    Ok((output_ix, per_token))
}
