//! From encoder outputs to what an application uses, shared by the CLI and the service so
//! both give the same answer for the same text:
//!
//! - sentence embeddings: [`pool_into`] ([`Pooling`] `cls` / `mean` / `pooler`, optional L2
//!   normalisation);
//! - classification: [`classify`] (softmax scores, or sigmoids for a multi-label model, with
//!   the export's labels, top-k);
//! - token classification: [`entities`] (spans aggregated like Hugging Face's
//!   `pipeline("token-classification", aggregation_strategy="simple")`, with character offsets
//!   into the text; feature `tokenizer`);
//! - fill-mask: [`fill_mask`] (top-k tokens for every `[MASK]`, like `pipeline("fill-mask")`;
//!   feature `tokenizer`).

mod classify;
#[cfg(feature = "tokenizer")]
mod fill_mask;
#[cfg(feature = "tokenizer")]
mod ner;

pub use classify::{classify, scores_into, top_k, Scored};
#[cfg(feature = "tokenizer")]
pub use fill_mask::{fill_mask, Prediction};
#[cfg(feature = "tokenizer")]
pub use ner::{entities, Aggregation, Entity};

use crate::error::{Error, Result};
use crate::runtime::{Outputs, PlanInfo, Role};

/// How a text's encoder outputs become one vector.
///
/// ```
/// use bert_edge::heads::Pooling;
/// assert_eq!("mean".parse::<Pooling>()?, Pooling::Mean);
/// assert_eq!(Pooling::Pooler.to_string(), "pooler");
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pooling {
    /// The `[CLS]` token's hidden state (row 0 of `last_hidden_state`).
    Cls,
    /// Mean of `last_hidden_state` over the tokens whose attention mask is 1.
    Mean,
    /// BERT's pooler output (dense + tanh over the `[CLS]` state); graphs exported without
    /// the pooler (optimum's feature-extraction) have none.
    Pooler,
}

impl Pooling {
    /// The default for a plan: `pooler` if the graph has a pooler output, else `cls`.
    pub fn default_for(info: &PlanInfo) -> Pooling {
        if info.output(Role::Pooled).is_some() {
            Pooling::Pooler
        } else {
            Pooling::Cls
        }
    }
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            "pooler" => Ok(Pooling::Pooler),
            _ => Err(Error::bad_input(format!(
                "unknown pooling {s:?} (cls | mean | pooler)"
            ))),
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::Pooler => "pooler",
        })
    }
}

/// Writes row `row` of `out` pooled into `dst` (hidden values), then scales it to unit L2
/// norm if `normalize`. `attention_mask` is the call's mask (batch × seq). No allocation.
///
/// ```
/// # #[cfg(feature = "onnx")] {
/// use bert_edge::{heads::{pool_into, Pooling}, Encoder, Input, LoadOptions, Plan};
/// use std::sync::Arc;
/// let plan = Arc::new(Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?);
/// let mut out = plan.outputs();
/// let (ids, mask) = ([101i64, 2769, 102, 0, 0, 0, 0, 0], [1i64, 1, 1, 0, 0, 0, 0, 0]);
/// Encoder::new(plan.clone())?.run(Input::Ids { input_ids: &ids, attention_mask: &mask, token_type_ids: &[0; 8] }, &mut out)?;
/// let mut v = vec![0f32; out.hidden_size()];
/// pool_into(Pooling::Mean, &out, &mask, 0, true, &mut v)?;
/// let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
/// assert!((norm - 1.0).abs() < 1e-5);
/// # }
/// # Ok::<(), bert_edge::Error>(())
/// ```
pub fn pool_into(
    pooling: Pooling,
    out: &Outputs,
    attention_mask: &[i64],
    row: usize,
    normalize: bool,
    dst: &mut [f32],
) -> Result<()> {
    let (seq, h) = (out.seq_len(), out.hidden_size());
    let rows = attention_mask.len() / seq.max(1);
    if row >= rows || dst.len() != h || attention_mask.len() != rows * seq {
        return Err(Error::bad_input(format!(
            "pooling row {row} of {rows} into {} values with a mask of {} (want {h} values and \
             a whole number of rows of {seq})",
            dst.len(),
            attention_mask.len(),
        )));
    }
    let missing = |what: &str| {
        Error::bad_input(format!(
            "pooling {pooling} needs the graph's {what}, which this graph (or these output \
             buffers) lacks: choose another pooling"
        ))
    };
    match pooling {
        Pooling::Pooler => {
            let p = out
                .pooler_output()
                .ok_or_else(|| missing("pooler_output"))?;
            let r = p
                .get(row * h..(row + 1) * h)
                .ok_or_else(|| missing("pooler_output row"))?;
            dst.copy_from_slice(r);
        }
        Pooling::Cls | Pooling::Mean => {
            let all = out
                .last_hidden_state()
                .ok_or_else(|| missing("last_hidden_state"))?;
            let hidden = all
                .get(row * seq * h..(row + 1) * seq * h)
                .ok_or_else(|| missing("last_hidden_state row"))?;
            if pooling == Pooling::Cls {
                dst.copy_from_slice(&hidden[..h]);
            } else {
                mean_into(hidden, &attention_mask[row * seq..(row + 1) * seq], dst);
            }
        }
    }
    if normalize {
        l2_normalize(dst);
    }
    Ok(())
}

/// Mean of the rows of `hidden` (seq × h) whose mask is 1.
fn mean_into(hidden: &[f32], mask: &[i64], dst: &mut [f32]) {
    dst.fill(0.0);
    let mut count = 0usize;
    for (token, &m) in hidden.chunks_exact(dst.len()).zip(mask) {
        if m != 0 {
            count += 1;
            dst.iter_mut().zip(token).for_each(|(o, v)| *o += v);
        }
    }
    let c = count.max(1) as f32;
    dst.iter_mut().for_each(|o| *o /= c);
}

/// Scales `v` to unit L2 norm (left alone if it is all zeros).
fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_counts_only_real_tokens() {
        let hidden = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        let mut dst = [0f32; 2];
        mean_into(&hidden, &[1, 1, 0], &mut dst);
        assert_eq!(dst, [2.0, 3.0]);
        l2_normalize(&mut dst);
        assert!((dst[0] * dst[0] + dst[1] * dst[1] - 1.0).abs() < 1e-6);
    }
}
