//! What a call takes and gives: [`Input`] (borrowed buffers), [`Inputs`] (owned buffers of a
//! plan's size, e.g. filled by the tokenizer) and [`Outputs`] (owned, sized by the plan).

use super::signature::{OutputInfo, Role};
use super::{Flavour, Plan};

/// One call's input: slices the caller owns, batch × N long (× hidden for embeddings), N the
/// plan's sequence capacity ([`crate::PlanInfo::seq`]).
///
/// `inputs_embeds` replaces only the word-embedding lookup: `word_embeddings[ids]` through an
/// embeds plan gives the ids plan's output. Token values may be any integer type that
/// converts to `i64` losslessly (`i64`, `i32`, `u32`, `u16`, `u8`).
///
/// ```
/// use bert_edge::Input;
/// let ids = [101u32, 2769, 102];
/// let mask = [1u32; 3];
/// let types = [0u32; 3];
/// let input = Input::Ids { input_ids: &ids, attention_mask: &mask, token_type_ids: &types };
/// assert_eq!(input.flavour(), bert_edge::Flavour::Ids);
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Input<'a, T = i64> {
    /// For an `input_ids` plan.
    Ids {
        /// Token ids, below the vocabulary size.
        input_ids: &'a [T],
        /// 1 for real tokens, 0 for padding; at least one 1 per row.
        attention_mask: &'a [T],
        /// Segment ids, below the type vocabulary size (2). For a graph without a
        /// `token_type_ids` input: empty, or all zeros.
        token_type_ids: &'a [T],
    },
    /// For an `inputs_embeds` plan.
    Embeds {
        /// batch × seq × hidden finite values (e.g. `word_embeddings[ids]`, edited).
        inputs_embeds: &'a [f32],
        /// As in [`Input::Ids`].
        attention_mask: &'a [T],
        /// As in [`Input::Ids`].
        token_type_ids: &'a [T],
    },
}

impl<'a, T> Input<'a, T> {
    /// Which plan flavour this input is for.
    ///
    /// ```
    /// use bert_edge::{Flavour, Input};
    /// let e = [0f32; 64];
    /// let m = [1i64];
    /// let input = Input::Embeds { inputs_embeds: &e, attention_mask: &m, token_type_ids: &[0] };
    /// assert_eq!(input.flavour(), Flavour::Embeds);
    /// ```
    pub fn flavour(&self) -> Flavour {
        match self {
            Input::Ids { .. } => Flavour::Ids,
            Input::Embeds { .. } => Flavour::Embeds,
        }
    }

    /// Rows `r..r + k` of an input of rows of `n` positions (`h` values each for embeddings).
    pub(crate) fn rows(&self, r: usize, k: usize, n: usize, h: usize) -> Input<'a, T> {
        let t = |v: &'a [T]| {
            if v.is_empty() {
                v
            } else {
                &v[r * n..(r + k) * n]
            }
        };
        match *self {
            Input::Ids {
                input_ids,
                attention_mask,
                token_type_ids,
            } => Input::Ids {
                input_ids: t(input_ids),
                attention_mask: t(attention_mask),
                token_type_ids: t(token_type_ids),
            },
            Input::Embeds {
                inputs_embeds,
                attention_mask,
                token_type_ids,
            } => Input::Embeds {
                inputs_embeds: &inputs_embeds[r * n * h..(r + k) * n * h],
                attention_mask: t(attention_mask),
                token_type_ids: t(token_type_ids),
            },
        }
    }

    /// The attention mask and token types (common to both flavours).
    pub(crate) fn mask_and_types(&self) -> (&'a [T], &'a [T]) {
        match *self {
            Input::Ids {
                attention_mask,
                token_type_ids,
                ..
            }
            | Input::Embeds {
                attention_mask,
                token_type_ids,
                ..
            } => (attention_mask, token_type_ids),
        }
    }
}

/// Owned input buffers of one fixed length: what the tokenizer fills and what
/// [`Inputs::as_input`] lends to [`crate::Encoder::run`]. Allocate once, reuse every call.
///
/// `inputs_embeds` is empty for an ids plan; for an embeds plan ([`Plan::inputs`]) it holds
/// tokens × hidden values, and `input_ids` are then only informative (the graph takes the
/// embeddings instead).
///
/// ```
/// use bert_edge::Inputs;
/// let mut inputs = Inputs::new(4);
/// inputs.input_ids.copy_from_slice(&[101, 2769, 102, 0]);
/// inputs.attention_mask.copy_from_slice(&[1, 1, 1, 0]);
/// assert_eq!(inputs.len(), 4);
/// assert_eq!(inputs.as_input().flavour(), bert_edge::Flavour::Ids);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// Token ids: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, then `[PAD]`s.
    pub input_ids: Vec<i64>,
    /// 1 for real tokens (special tokens included), 0 for padding.
    pub attention_mask: Vec<i64>,
    /// Segment ids: 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`, 0 for padding.
    pub token_type_ids: Vec<i64>,
    /// Word embeddings for an embeds plan (tokens × hidden), empty for an ids plan.
    pub inputs_embeds: Vec<f32>,
}

impl Inputs {
    /// Zeroed token buffers of length `n` (all padding), no embeddings.
    pub fn new(n: usize) -> Self {
        Inputs {
            input_ids: vec![0; n],
            attention_mask: vec![0; n],
            token_type_ids: vec![0; n],
            inputs_embeds: Vec::new(),
        }
    }

    /// Number of token positions (the length of `input_ids`).
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// True if the buffers have no positions (such buffers are rejected by the encoder).
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// The buffers as one call's input: [`Input::Embeds`] when `inputs_embeds` is non-empty,
    /// [`Input::Ids`] otherwise.
    pub fn as_input(&self) -> Input<'_> {
        if self.inputs_embeds.is_empty() {
            Input::Ids {
                input_ids: &self.input_ids,
                attention_mask: &self.attention_mask,
                token_type_ids: &self.token_type_ids,
            }
        } else {
            Input::Embeds {
                inputs_embeds: &self.inputs_embeds,
                attention_mask: &self.attention_mask,
                token_type_ids: &self.token_type_ids,
            }
        }
    }
}

/// The outputs of one call, in buffers sized by the plan ([`Plan::outputs`] for all of the
/// graph's outputs, [`Plan::outputs_for`] for some); every call overwrites them. Allocate
/// once, reuse every call. f16 outputs are converted into these f32 buffers.
///
/// ```
/// # #[cfg(feature = "onnx")] {
/// use bert_edge::{LoadOptions, Plan};
/// let plan = Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?;
/// let out = plan.outputs();
/// assert_eq!(out.last_hidden_state().unwrap().len(), 8 * 64);
/// assert_eq!(out.get("pooler_output").unwrap().len(), 64);
/// # }
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// One per plan output, in the plan's order; `None` for the outputs not asked for.
    pub(crate) values: Vec<Option<Vec<f32>>>,
    pub(crate) specs: Vec<OutputInfo>,
    /// Sequence capacity N and hidden size of the plan that sized them.
    pub(crate) seq: usize,
    pub(crate) hidden: usize,
    /// The length L the last call ran at (0 before any).
    pub(crate) length: usize,
}

impl Outputs {
    /// The output the graph names `name` (batch first, row-major), if asked for.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        let ix = self.specs.iter().position(|s| s.name == name)?;
        self.values[ix].as_deref()
    }

    /// The first output with this role, if the graph has one and it was asked for.
    pub fn role(&self, role: Role) -> Option<&[f32]> {
        self.iter()
            .find(|(s, _)| s.role == Some(role))
            .map(|(_, v)| v)
    }

    /// Every output asked for, with its name, role and shape, in the graph's order.
    pub fn iter(&self) -> impl Iterator<Item = (&OutputInfo, &[f32])> {
        self.specs
            .iter()
            .zip(&self.values)
            .filter_map(|(s, v)| v.as_deref().map(|v| (s, v)))
    }

    /// Per-token hidden states ([`Role::HiddenStates`], `last_hidden_state`), batch × N ×
    /// hidden, zeros at positions ≥ [`Outputs::length`]; `None` if the graph has none (e.g. a classifier export) or it was not asked for.
    pub fn last_hidden_state(&self) -> Option<&[f32]> {
        self.role(Role::HiddenStates)
    }

    /// `pooler_output` ([`Role::Pooled`]: dense + tanh over the `[CLS]` state), batch ×
    /// hidden; `None` if the graph has no pooler (optimum's feature-extraction export) or it
    /// was not asked for.
    pub fn pooler_output(&self) -> Option<&[f32]> {
        self.role(Role::Pooled)
    }

    /// The graph's own sentence embedding ([`Role::SentenceEmbedding`]), batch × hidden.
    pub fn sentence_embedding(&self) -> Option<&[f32]> {
        self.role(Role::SentenceEmbedding)
    }

    /// Hidden size of the plan.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Positions in a row of a per-token output: the plan's capacity N (the row stride).
    pub fn seq_len(&self) -> usize {
        self.seq
    }

    /// The length L the last call ran at (≤ N; N for a fixed-length plan; 0 before any
    /// call). Per-token outputs hold zeros at positions ≥ L of every row.
    pub fn length(&self) -> usize {
        self.length
    }
}

impl Plan {
    /// Buffers for every output of the graph.
    ///
    /// ```
    /// # #[cfg(feature = "onnx")] {
    /// use bert_edge::{LoadOptions, Plan};
    /// let plan = Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?;
    /// let out = plan.outputs();
    /// assert_eq!(out.last_hidden_state().map(<[f32]>::len), Some(8 * 64));
    /// assert_eq!(out.pooler_output().map(<[f32]>::len), Some(64));
    /// # }
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn outputs(&self) -> Outputs {
        self.outputs_for(|_| true)
    }

    /// Buffers for the outputs `want` selects; the others are not copied out of tract.
    ///
    /// ```
    /// # #[cfg(feature = "onnx")] {
    /// use bert_edge::{LoadOptions, Plan, Role};
    /// let plan = Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?;
    /// let out = plan.outputs_for(|o| o.role == Some(Role::Pooled));
    /// assert!(out.last_hidden_state().is_none());
    /// assert_eq!(out.get("pooler_output").map(<[f32]>::len), Some(64));
    /// # }
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn outputs_for(&self, want: impl Fn(&OutputInfo) -> bool) -> Outputs {
        let i = &self.info;
        Outputs {
            values: i
                .outputs
                .iter()
                .map(|o| want(o).then(|| vec![0.0; o.len()]))
                .collect(),
            specs: i.outputs.clone(),
            seq: i.seq,
            hidden: i.hidden,
            length: 0,
        }
    }

    /// Input buffers sized for this plan (batch × seq tokens; for an embeds plan also
    /// batch × seq × hidden embeddings), all padding.
    ///
    /// ```
    /// # #[cfg(feature = "onnx")] {
    /// use bert_edge::{LoadOptions, Plan};
    /// let plan = Plan::load("models/tiny/bert_embeds_f32.onnx", &LoadOptions::new().seq(8))?;
    /// let inputs = plan.inputs();
    /// assert_eq!(inputs.len(), 8);
    /// assert_eq!(inputs.inputs_embeds.len(), 8 * 64);
    /// # }
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn inputs(&self) -> Inputs {
        let i = &self.info;
        let mut inputs = Inputs::new(i.batch * i.seq);
        if i.flavour == Flavour::Embeds {
            inputs.inputs_embeds = vec![0.0; i.batch * i.seq * i.hidden];
        }
        inputs
    }
}
