//! [`PlanInfo`]: what a plan was built for, and the checks of an archive's info against the
//! options (stored in archives as model properties: `properties.rs`).

use super::options::LoadOptions;
use super::signature::{OutputInfo, Role, Task};
use super::{Flavour, Variant};
use crate::error::{Error, Result};
use std::path::Path;

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
    /// [`Plan::inputs`](crate::Plan::inputs) / [`Plan::outputs`](crate::Plan::outputs)).
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

impl PlanInfo {
    pub(crate) const PROPERTY_PREFIX: &'static str = "bert_edge.";

    /// Checks an archive's info against what the options ask for (its shapes are fixed).
    pub(crate) fn check(&self, opts: &LoadOptions, origin: &Path) -> Result<()> {
        let i = self;
        let mismatch =
            |what: String| Err(Error::bad_options(format!("{}: {what}", origin.display())));
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
