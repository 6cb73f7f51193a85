//! From encoder outputs to what an application uses, shared by the CLI and the service so
//! both give the same answer for the same text:
//!
//! - sentence embeddings: [`Embedding`] (the pooling and normalization a plan's model asks
//!   for, or the caller's, and why) and [`pool_into`] (every sentence-transformers pooling
//!   mode, BERT's pooler, a graph's own `sentence_embedding`; optional L2 normalisation);
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

mod embedding;

pub use crate::runtime::Pooling;
pub use embedding::Embedding;

use crate::error::{Error, Result};
use crate::runtime::Outputs;

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
    pool_row(pooling, out, (attention_mask, 0), row, normalize, dst)
}

/// [`pool_into`] with the row's first `skip` positions left out of a token pooling (a prompt,
/// [`Embedding::pool_into`]).
fn pool_row(
    pooling: Pooling,
    out: &Outputs,
    (attention_mask, skip): (&[i64], usize),
    row: usize,
    normalize: bool,
    dst: &mut [f32],
) -> Result<()> {
    let (seq, h) = (out.seq_len(), out.hidden_size());
    let rows = attention_mask.len() / seq.max(1);
    if row >= rows || dst.len() != h || attention_mask.len() != rows * seq {
        return Err(Error::input(
            crate::error::InputKind::Shape,
            format!(
            "pooling row {row} of {rows} into {} values with a mask of {} (want {h} values and \
             a whole number of rows of {seq})",
            dst.len(),
            attention_mask.len(),
        ),
        ));
    }
    let missing = |what: &str| {
        Error::input(
            crate::error::InputKind::Unsupported,
            format!(
                "pooling {pooling} needs the graph's {what}, which this graph (or these output \
             buffers) lacks: choose another pooling"
            ),
        )
    };
    let mut graph_row = |v: Option<&[f32]>, what: &str| -> Result<()> {
        let v = v.ok_or_else(|| missing(what))?;
        let r = v.get(row * h..(row + 1) * h).ok_or_else(|| missing(what))?;
        dst.copy_from_slice(r);
        Ok(())
    };
    match pooling {
        Pooling::Pooler => graph_row(out.pooler_output(), "pooler_output")?,
        Pooling::SentenceEmbedding => graph_row(out.sentence_embedding(), "sentence_embedding")?,
        _ => {
            let all = out
                .last_hidden_state()
                .ok_or_else(|| missing("last_hidden_state"))?;
            let hidden = all
                .get(row * seq * h..(row + 1) * seq * h)
                .ok_or_else(|| missing("last_hidden_state row"))?;
            let mask = &attention_mask[row * seq..(row + 1) * seq];
            pool_tokens(pooling, hidden, mask, skip, dst);
        }
    }
    if normalize {
        l2_normalize(dst);
    }
    Ok(())
}

/// A pooling over the token rows of `hidden` (seq × h), as sentence-transformers' `Pooling`
/// module computes it for one unpadded text: only rows whose mask is 1 count, and none of the
/// first `skip` (its `include_prompt: false` zeroes the prompt's mask; `Cls` still reads row 0).
fn pool_tokens(pooling: Pooling, hidden: &[f32], mask: &[i64], skip: usize, dst: &mut [f32]) {
    let h = dst.len();
    let tokens = || {
        hidden
            .chunks_exact(h)
            .zip(mask)
            .enumerate()
            .filter(|(i, (_, &m))| m != 0 && *i >= skip)
            .map(|(i, (t, _))| (i, t))
    };
    dst.fill(0.0);
    match pooling {
        Pooling::Cls => dst.copy_from_slice(&hidden[..h]),
        Pooling::LastToken => {
            if let Some((_, t)) = tokens().next_back() {
                dst.copy_from_slice(t);
            }
        }
        Pooling::Max => {
            // sentence-transformers sets masked positions to -1e9 before its max.
            dst.fill(-1e9);
            for (_, t) in tokens() {
                dst.iter_mut().zip(t).for_each(|(o, v)| *o = o.max(*v));
            }
        }
        _ => {
            let weighted = pooling == Pooling::WeightedMean;
            let mut total = 0f32;
            for (i, t) in tokens() {
                let w = if weighted { (i + 1) as f32 } else { 1.0 };
                total += w;
                dst.iter_mut().zip(t).for_each(|(o, v)| *o += w * v);
            }
            let c = if pooling == Pooling::MeanSqrtLen {
                total.sqrt()
            } else {
                total
            };
            let c = c.max(1e-9);
            dst.iter_mut().for_each(|o| *o /= c);
        }
    }
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
        pool_tokens(Pooling::Mean, &hidden, &[1, 1, 0], 0, &mut dst);
        assert_eq!(dst, [2.0, 3.0]);
        pool_tokens(Pooling::Max, &hidden, &[1, 1, 0], 0, &mut dst);
        assert_eq!(dst, [3.0, 4.0]);
        pool_tokens(Pooling::LastToken, &hidden, &[1, 1, 0], 0, &mut dst);
        assert_eq!(dst, [3.0, 4.0]);
        pool_tokens(Pooling::WeightedMean, &hidden, &[1, 1, 0], 0, &mut dst);
        assert_eq!(dst, [(1.0 + 6.0) / 3.0, (2.0 + 8.0) / 3.0]);
        pool_tokens(Pooling::MeanSqrtLen, &hidden, &[1, 1, 0], 0, &mut dst);
        assert_eq!(dst, [4.0 / 2f32.sqrt(), 6.0 / 2f32.sqrt()]);
        pool_tokens(Pooling::Mean, &hidden, &[1, 1, 0], 0, &mut dst);
        l2_normalize(&mut dst);
        assert!((dst[0] * dst[0] + dst[1] * dst[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_skipped_prompt_leaves_token_poolings_but_not_cls() {
        let hidden = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0, 100.0];
        let mut dst = [0f32; 2];
        pool_tokens(Pooling::Mean, &hidden, &[1, 1, 1, 0], 1, &mut dst);
        assert_eq!(dst, [4.0, 5.0]);
        pool_tokens(Pooling::Max, &hidden, &[1, 1, 1, 0], 3, &mut dst);
        assert_eq!(dst, [-1e9, -1e9]);
        pool_tokens(Pooling::Cls, &hidden, &[1, 1, 1, 0], 2, &mut dst);
        assert_eq!(dst, [1.0, 2.0]);
    }
}
