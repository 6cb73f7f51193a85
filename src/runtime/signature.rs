//! What a graph carries: each output's role, told from its name and pinned shape, and the task
//! that follows from the roles present. Computed the same way for an ONNX export and for an
//! archive, so archives need not store it.

use crate::error::{Error, Result};
use std::fmt;

/// What one graph output holds, as bert-edge reads it from its name and shape
/// (batch `b`, sequence `s`, hidden `h`, vocabulary `V`):
///
/// | shape | name | role |
/// |---|---|---|
/// | `[b, s, h]` | not `logits` | [`Role::HiddenStates`] |
/// | `[b, h]` | `sentence_embedding` | [`Role::SentenceEmbedding`] |
/// | `[b, h]` | not `logits` | [`Role::Pooled`] |
/// | `[b, n]` | any other | [`Role::SequenceLogits`] |
/// | `[b, s, V]` | any other | [`Role::MaskedLmLogits`] |
/// | `[b, s, n]`, `n ≠ V` | any other | [`Role::TokenLogits`] |
///
/// `V` is the word-embedding table's size, else `vocab_size` from the config; with neither
/// (an embeds graph without a config), `n ≥ 1000` counts as a vocabulary. Any other shape has
/// no role: [`crate::Outputs`] still carries it under its name.
///
/// ```
/// use bert_edge::Role;
/// assert_eq!(Role::MaskedLmLogits.to_string(), "masked-lm-logits");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Per-token hidden states `[seq, hidden]` (`last_hidden_state`).
    HiddenStates,
    /// One vector per sequence `[hidden]` (`pooler_output`: dense + tanh over `[CLS]`).
    Pooled,
    /// The sentence embedding a sentence-transformers export computes in the graph
    /// (`sentence_embedding`: optimum's `--library-name sentence_transformers`).
    SentenceEmbedding,
    /// Sequence-classification logits `[labels]`.
    SequenceLogits,
    /// Token-classification logits `[seq, labels]`.
    TokenLogits,
    /// Masked-LM logits `[seq, vocab]`.
    MaskedLmLogits,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::HiddenStates => "hidden-states",
            Role::Pooled => "pooled",
            Role::SentenceEmbedding => "sentence-embedding",
            Role::SequenceLogits => "sequence-logits",
            Role::TokenLogits => "token-logits",
            Role::MaskedLmLogits => "masked-lm-logits",
        })
    }
}

/// What a graph is for, from the roles of its outputs (the most specific wins: masked-LM,
/// then token, then sequence classification, then feature extraction). Names as in Hugging
/// Face's `--task`.
///
/// ```
/// use bert_edge::Task;
/// assert_eq!("token-classification".parse::<Task>()?, Task::TokenClassification);
/// assert_eq!(Task::FillMask.to_string(), "fill-mask");
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Task {
    /// Hidden states and/or pooled output only (`BertModel`).
    FeatureExtraction,
    /// Sequence logits (`BertForSequenceClassification`).
    TextClassification,
    /// Token logits (`BertForTokenClassification`).
    TokenClassification,
    /// Masked-LM logits (`BertForMaskedLM`).
    FillMask,
}

impl Task {
    const ALL: [Task; 4] = [
        Task::FeatureExtraction,
        Task::TextClassification,
        Task::TokenClassification,
        Task::FillMask,
    ];

    fn name(self) -> &'static str {
        match self {
            Task::FeatureExtraction => "feature-extraction",
            Task::TextClassification => "text-classification",
            Task::TokenClassification => "token-classification",
            Task::FillMask => "fill-mask",
        }
    }

    /// The output role this task's head reads.
    pub fn role(self) -> Role {
        match self {
            Task::FeatureExtraction => Role::HiddenStates,
            Task::TextClassification => Role::SequenceLogits,
            Task::TokenClassification => Role::TokenLogits,
            Task::FillMask => Role::MaskedLmLogits,
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                Error::bad_options(format!(
                    "unknown task {s:?} (feature-extraction | text-classification | \
                     token-classification | fill-mask)"
                ))
            })
    }
}

/// One output of a plan: its graph name, role and pinned shape.
///
/// ```
/// # #[cfg(feature = "onnx")] {
/// use bert_edge::{LoadOptions, Plan, Role};
/// let plan = Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?;
/// let o = plan.info().output(Role::HiddenStates).unwrap();
/// assert_eq!((o.name.as_str(), &o.shape[..]), ("last_hidden_state", &[1, 8, 64][..]));
/// # }
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputInfo {
    /// The graph's own output name (e.g. `last_hidden_state`, `logits`).
    pub name: String,
    /// What it holds, if bert-edge knows (see [`Role`]).
    pub role: Option<Role>,
    /// Pinned shape, batch first.
    pub shape: Vec<usize>,
}

impl OutputInfo {
    /// Number of values (the buffer length [`crate::Outputs`] gives it).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a zero-sized output.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of the last axis (hidden size, number of labels, vocabulary size).
    pub fn width(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
}

/// The role of an output named `name` with pinned `shape` (see [`Role`]).
pub(crate) fn role_of(
    name: &str,
    shape: &[usize],
    (b, s, h): (usize, usize, usize),
    vocab: Option<usize>,
) -> Option<Role> {
    let logits = name == "logits";
    let is_vocab = |n: usize| vocab.map_or(n >= 1000, |v| n == v);
    match *shape {
        [b2, s2, n] if b2 == b && s2 == s && n == h && !logits => Some(Role::HiddenStates),
        [b2, n] if b2 == b && n == h && name == "sentence_embedding" => {
            Some(Role::SentenceEmbedding)
        }
        [b2, n] if b2 == b && n == h && !logits => Some(Role::Pooled),
        [b2, _] if b2 == b => Some(Role::SequenceLogits),
        [b2, s2, n] if b2 == b && s2 == s && is_vocab(n) => Some(Role::MaskedLmLogits),
        [b2, s2, _] if b2 == b && s2 == s => Some(Role::TokenLogits),
        _ => None,
    }
}

/// The task the outputs' roles make, or a `BadModel` error naming what the graph has.
pub(crate) fn task_of(outputs: &[OutputInfo]) -> Result<Task> {
    let has = |r: Role| outputs.iter().any(|o| o.role == Some(r));
    let task = [
        (Role::MaskedLmLogits, Task::FillMask),
        (Role::TokenLogits, Task::TokenClassification),
        (Role::SequenceLogits, Task::TextClassification),
        (Role::HiddenStates, Task::FeatureExtraction),
        (Role::SentenceEmbedding, Task::FeatureExtraction),
        (Role::Pooled, Task::FeatureExtraction),
    ]
    .into_iter()
    .find(|(r, _)| has(*r))
    .map(|(_, t)| t);
    task.ok_or_else(|| {
        let found: Vec<String> = outputs
            .iter()
            .map(|o| format!("{} {:?}", o.name, o.shape))
            .collect();
        Error::bad_model(format!(
            "no output bert-edge can use (hidden states [batch, seq, hidden], pooled \
             [batch, hidden], or logits): the graph has {}",
            if found.is_empty() {
                "no outputs".to_string()
            } else {
                found.join(", ")
            }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_names_and_shapes() {
        let d = (1, 8, 64);
        let v = Some(21128);
        assert_eq!(
            role_of("last_hidden_state", &[1, 8, 64], d, v),
            Some(Role::HiddenStates)
        );
        assert_eq!(role_of("pooler_output", &[1, 64], d, v), Some(Role::Pooled));
        assert_eq!(
            role_of("sentence_embedding", &[1, 64], d, v),
            Some(Role::SentenceEmbedding)
        );
        // A 64-label classifier on a hidden-64 model: the name decides.
        assert_eq!(
            role_of("logits", &[1, 64], d, v),
            Some(Role::SequenceLogits)
        );
        assert_eq!(role_of("logits", &[1, 3], d, v), Some(Role::SequenceLogits));
        assert_eq!(role_of("logits", &[1, 8, 7], d, v), Some(Role::TokenLogits));
        assert_eq!(
            role_of("logits", &[1, 8, 21128], d, v),
            Some(Role::MaskedLmLogits)
        );
        assert_eq!(
            role_of("logits", &[1, 8, 5000], d, None),
            Some(Role::MaskedLmLogits)
        );
        assert_eq!(role_of("attn", &[1, 2, 8, 8], d, v), None);
    }

    #[test]
    fn task_is_the_most_specific_role() {
        let o = |name: &str, role| OutputInfo {
            name: name.into(),
            role,
            shape: vec![1],
        };
        let both = [
            o("last_hidden_state", Some(Role::HiddenStates)),
            o("logits", Some(Role::TokenLogits)),
        ];
        assert_eq!(task_of(&both).unwrap(), Task::TokenClassification);
        let err = task_of(&[o("weird", None)]).unwrap_err().to_string();
        assert!(err.contains("weird [1]"), "{err}");
    }
}
