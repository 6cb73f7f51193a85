//! Sequence classification: logits → scores → the top labels.

use crate::error::{Error, Result};
use crate::runtime::{Outputs, PlanInfo, Role};

/// One class and its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Class index (into [`PlanInfo::labels`]).
    pub index: usize,
    /// Its probability (softmax, or sigmoid for a multi-label model).
    pub score: f32,
}

/// Scores of one row of logits, as Hugging Face's pipelines compute them: a softmax shifted by
/// the row's maximum, or an independent sigmoid per class when `sigmoid` (a multi-label
/// model, or a single logit). `dst` must be as long as `logits`. No allocation.
///
/// ```
/// let mut p = [0f32; 2];
/// bert_edge::heads::scores_into(&[0.0, 0.0], false, &mut p);
/// assert_eq!(p, [0.5, 0.5]);
/// ```
pub fn scores_into(logits: &[f32], sigmoid: bool, dst: &mut [f32]) {
    if sigmoid {
        for (d, x) in dst.iter_mut().zip(logits) {
            *d = 1.0 / (1.0 + (-x).exp());
        }
        return;
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for (d, x) in dst.iter_mut().zip(logits) {
        *d = (x - max).exp();
        sum += *d;
    }
    dst.iter_mut().for_each(|d| *d /= sum);
}

/// The `k` highest scores, best first; equal scores keep index order (like a stable sort).
///
/// ```
/// let best = bert_edge::heads::top_k(&[0.2, 0.5, 0.3], 2);
/// assert_eq!(best.iter().map(|s| s.index).collect::<Vec<_>>(), [1, 2]);
/// ```
pub fn top_k(scores: &[f32], k: usize) -> Vec<Scored> {
    let mut all: Vec<Scored> = scores
        .iter()
        .enumerate()
        .map(|(index, &score)| Scored { index, score })
        .collect();
    let k = k.min(all.len());
    let order = |a: &Scored, b: &Scored| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index));
    if k < all.len() && k > 0 {
        all.select_nth_unstable_by(k - 1, order);
    }
    all.truncate(k);
    all.sort_by(order);
    all
}

/// Row `row`'s top `k` classes of a sequence classifier, with their labels from
/// [`PlanInfo::labels`]. A graph without sequence logits is a `BadInput` error naming what
/// it is.
///
/// ```
/// # #[cfg(feature = "onnx")] {
/// use bert_edge::{heads::classify, Encoder, Input, LoadOptions, Plan};
/// use std::sync::Arc;
/// let path = "models/tiny/tasks/text-classification/torch_f32.onnx";
/// let plan = Arc::new(Plan::load(path, &LoadOptions::new().seq(8))?);
/// let mut out = plan.outputs();
/// let (ids, mask) = ([101i64, 2769, 4263, 2110, 739, 102, 0, 0], [1i64, 1, 1, 1, 1, 1, 0, 0]);
/// Encoder::new(plan.clone())?.run(Input::Ids { input_ids: &ids, attention_mask: &mask, token_type_ids: &[0; 8] }, &mut out)?;
/// let best = classify(plan.info(), &out, 0, 1)?;
/// assert!(plan.info().labels.contains(&best[0].0));
/// # }
/// # Ok::<(), bert_edge::Error>(())
/// ```
pub fn classify(
    info: &PlanInfo,
    out: &Outputs,
    row: usize,
    k: usize,
) -> Result<Vec<(String, f32)>> {
    let logits = out.role(Role::SequenceLogits).ok_or_else(|| {
        Error::input(
            crate::error::InputKind::Unsupported,
            format!(
                "this is a {} model: it has no sequence-classification logits",
                info.task
            ),
        )
    })?;
    let n = info.labels.len();
    let row_logits = logits
        .get(row * n..(row + 1) * n)
        .filter(|_| n > 0)
        .ok_or_else(|| {
            Error::input(
                crate::error::InputKind::Range,
                format!("no row {row} of {n} classes"),
            )
        })?;
    let mut scores = vec![0f32; n];
    scores_into(row_logits, info.multi_label || n == 1, &mut scores);
    Ok(top_k(&scores, k)
        .into_iter()
        .map(|s| (info.labels[s.index].clone(), s.score))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_shift_invariant_and_sums_to_one() {
        let mut a = [0f32; 3];
        let mut b = [0f32; 3];
        scores_into(&[1.0, 2.0, 3.0], false, &mut a);
        scores_into(&[1001.0, 1002.0, 1003.0], false, &mut b);
        assert_eq!(a, b);
        assert!((a.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        scores_into(&[0.0, 100.0, -100.0], true, &mut a);
        assert_eq!(a[0], 0.5);
        assert!(a[1] > 0.99 && a[2] < 0.01);
    }

    #[test]
    fn top_k_orders_best_first_and_keeps_ties_in_index_order() {
        let s = [0.1, 0.4, 0.4, 0.1];
        let idx = |v: Vec<Scored>| v.into_iter().map(|s| s.index).collect::<Vec<_>>();
        assert_eq!(idx(top_k(&s, 3)), [1, 2, 0]);
        assert_eq!(idx(top_k(&s, 10)), [1, 2, 0, 3]);
        assert!(top_k(&s, 0).is_empty());
    }
}
