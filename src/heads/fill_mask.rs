//! Fill-mask: the most likely tokens at each `[MASK]`, as Hugging Face's
//! `pipeline("fill-mask")` gives them.

use super::classify::{scores_into, top_k};
use crate::error::{Error, Result};
use crate::runtime::{Outputs, Role};
use crate::tokenize::BertTokenizer;

/// One candidate for one `[MASK]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Softmax probability over the vocabulary.
    pub score: f32,
    /// Token id.
    pub token: u32,
    /// The token decoded alone.
    pub token_str: String,
    /// The input with this token in the `[MASK]`'s place, decoded (special tokens left out
    /// when the text has one `[MASK]`, kept when it has several, as the pipeline does).
    pub sequence: String,
}

/// The top `k` tokens for every `[MASK]` of row `row` (one list per `[MASK]`, in text
/// order). `input_ids` is that row's ids. A text without `[MASK]` is a `BadInput` error.
pub fn fill_mask(
    out: &Outputs,
    row: usize,
    tok: &BertTokenizer,
    input_ids: &[i64],
    k: usize,
) -> Result<Vec<Vec<Prediction>>> {
    let (spec, logits) = out
        .iter()
        .find(|(s, _)| s.role == Some(Role::MaskedLmLogits))
        .ok_or_else(|| {
            Error::input(
                crate::error::InputKind::Unsupported,
                "this model has no masked-LM logits",
            )
        })?;
    let (seq, vocab) = (out.seq_len(), spec.width());
    let mask_id = tok
        .token_to_id("[MASK]")
        .map(i64::from)
        .ok_or_else(|| Error::bad_model("the tokenizer has no [MASK] token"))?;
    let masks: Vec<usize> = (0..input_ids.len().min(seq))
        .filter(|&i| input_ids[i] == mask_id)
        .collect();
    if masks.is_empty() {
        return Err(Error::input(
            crate::error::InputKind::Text,
            "the text has no [MASK]: fill-mask predicts the token at each [MASK]",
        ));
    }
    let pad = tok.pad_id();
    let kept: Vec<(usize, u32)> = input_ids
        .iter()
        .enumerate()
        .filter(|(_, &id)| id != pad)
        .map(|(i, &id)| (i, id as u32))
        .collect();
    let mut probs = vec![0f32; vocab];
    let mut all = Vec::with_capacity(masks.len());
    for &pos in &masks {
        let base = (row * seq + pos) * vocab;
        let row_logits = logits.get(base..base + vocab).ok_or_else(|| {
            Error::input(
                crate::error::InputKind::Range,
                format!("no row {row} in the output"),
            )
        })?;
        scores_into(row_logits, false, &mut probs);
        let mut preds = Vec::with_capacity(k);
        for s in top_k(&probs, k) {
            let token = s.index as u32;
            let ids: Vec<u32> = kept
                .iter()
                .map(|&(i, id)| if i == pos { token } else { id })
                .collect();
            preds.push(Prediction {
                score: s.score,
                token,
                token_str: tok.decode(&[token], false)?,
                sequence: tok.decode(&ids, masks.len() == 1)?,
            });
        }
        all.push(preds);
    }
    Ok(all)
}
