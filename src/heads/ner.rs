//! Token classification: per-token labels, and entity spans aggregated as Hugging Face's
//! `pipeline("token-classification")` does, with character offsets into the text.

use super::classify::scores_into;
use crate::error::{Error, Result};
use crate::runtime::{Outputs, PlanInfo, Role};
use crate::tokenize::BertTokenizer;

/// How per-token predictions become entities (Hugging Face's `aggregation_strategy`).
///
/// ```
/// use bert_edge::heads::Aggregation;
/// assert_eq!("simple".parse::<Aggregation>()?, Aggregation::Simple);
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Aggregation {
    /// One entity per token (label `O` left out).
    None,
    /// Neighbouring tokens of one entity type merged into a span: a `B-` tag or another
    /// type starts a new span; a span's score is its tokens' mean; `O` spans left out.
    #[default]
    Simple,
}

impl std::str::FromStr for Aggregation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Aggregation::None),
            "simple" => Ok(Aggregation::Simple),
            _ => Err(Error::bad_options(format!(
                "unknown aggregation {s:?} (none | simple)"
            ))),
        }
    }
}

/// One entity (a span with [`Aggregation::Simple`], a token with [`Aggregation::None`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The label: `B-PER`-style with `None`, the type without `B-`/`I-` with `Simple`.
    pub label: String,
    /// Probability of the label (mean over the span's tokens).
    pub score: f32,
    /// The span's text as the tokenizer's decoder writes it (`##` pieces joined, tokens
    /// separated by spaces: "北 京"), or the token itself.
    pub word: String,
    /// Character (Unicode scalar) offset of the span's start in the text.
    pub start: usize,
    /// Character offset just past the span's end.
    pub end: usize,
    /// Token position in the input (with [`Aggregation::None`] only).
    pub index: Option<usize>,
}

/// Entities of row `row` of a token classifier's output. `input_ids` and `offsets` are that
/// row's, from [`BertTokenizer::encode_with_offsets`] on `text`.
// The text, its ids and its offsets are three views of one encoding; a struct for them would
// only be unpacked again here.
#[allow(clippy::too_many_arguments)]
pub fn entities(
    info: &PlanInfo,
    out: &Outputs,
    row: usize,
    tok: &BertTokenizer,
    text: &str,
    input_ids: &[i64],
    offsets: &[Option<(usize, usize)>],
    aggregation: Aggregation,
) -> Result<Vec<Entity>> {
    let logits = out.role(Role::TokenLogits).ok_or_else(|| {
        Error::input(
            crate::error::InputKind::Unsupported,
            format!(
                "this is a {} model: it has no token-classification logits",
                info.task
            ),
        )
    })?;
    let (seq, n) = (out.seq_len(), info.labels.len());
    if input_ids.len() != seq || offsets.len() != seq || n == 0 {
        return Err(Error::input(
            crate::error::InputKind::Shape,
            format!(
                "entities of a row of {seq} tokens: got {} ids and {} offsets",
                input_ids.len(),
                offsets.len()
            ),
        ));
    }
    let rows = logits
        .get(row * seq * n..(row + 1) * seq * n)
        .ok_or_else(|| {
            Error::input(
                crate::error::InputKind::Range,
                format!("no row {row} in the output"),
            )
        })?;
    let tokens = token_entities(info, tok, text, input_ids, offsets, rows)?;
    Ok(match aggregation {
        Aggregation::None => tokens.into_iter().filter(|e| e.label != "O").collect(),
        Aggregation::Simple => group(tok, tokens)?
            .into_iter()
            .filter(|e| e.label != "O")
            .collect(),
    })
}

/// One entity per real token: the argmax label and its softmax score.
fn token_entities(
    info: &PlanInfo,
    tok: &BertTokenizer,
    text: &str,
    input_ids: &[i64],
    offsets: &[Option<(usize, usize)>],
    logits: &[f32],
) -> Result<Vec<Entity>> {
    let n = info.labels.len();
    let unk = tok.token_to_id("[UNK]").map(i64::from);
    let mut scores = vec![0f32; n];
    let mut out = Vec::new();
    for (index, (&id, span)) in input_ids.iter().zip(offsets).enumerate() {
        let Some((start, end)) = *span else { continue };
        scores_into(&logits[index * n..(index + 1) * n], false, &mut scores);
        // First maximum, as numpy's argmax.
        let best = (0..n).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
        let word = if Some(id) == unk {
            // The pipeline shows the text an unknown token stands for.
            text.chars().skip(start).take(end - start).collect()
        } else {
            u32::try_from(id)
                .ok()
                .and_then(|id| tok.id_to_token(id))
                .ok_or_else(|| {
                    Error::input(
                        crate::error::InputKind::Range,
                        format!("token id {id} is not in the vocabulary"),
                    )
                })?
        };
        out.push(Entity {
            label: info.labels[best].clone(),
            score: scores[best],
            word,
            start,
            end,
            index: Some(index),
        });
    }
    Ok(out)
}

/// `B-`/`I-` prefix and type of a label; a label without one continues a span (`I`).
fn tag(label: &str) -> (bool, &str) {
    match label.strip_prefix("B-") {
        Some(t) => (true, t),
        None => (false, label.strip_prefix("I-").unwrap_or(label)),
    }
}

/// Hugging Face's `group_entities`: consecutive tokens of one type, a `B-` starting anew.
fn group(tok: &BertTokenizer, tokens: Vec<Entity>) -> Result<Vec<Entity>> {
    let mut groups = Vec::new();
    let mut current: Vec<Entity> = Vec::new();
    for e in tokens {
        let joins = current.last().is_some_and(|last| {
            let (b, t) = tag(&e.label);
            !b && t == tag(&last.label).1
        });
        if !joins && !current.is_empty() {
            groups.push(merge(tok, std::mem::take(&mut current))?);
        }
        current.push(e);
    }
    if !current.is_empty() {
        groups.push(merge(tok, current)?);
    }
    Ok(groups)
}

/// One span from its tokens: type of the first, mean score, decoded words.
fn merge(tok: &BertTokenizer, tokens: Vec<Entity>) -> Result<Entity> {
    let label = tag(&tokens[0].label).1.to_string();
    let score = tokens.iter().map(|e| e.score).sum::<f32>() / tokens.len() as f32;
    let (start, end) = (tokens[0].start, tokens[tokens.len() - 1].end);
    let word = tok.tokens_to_string(tokens.into_iter().map(|e| e.word).collect())?;
    Ok(Entity {
        label,
        score,
        word,
        start,
        end,
        index: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_like_the_pipeline() {
        assert_eq!(tag("B-PER"), (true, "PER"));
        assert_eq!(tag("I-LOC"), (false, "LOC"));
        assert_eq!(tag("O"), (false, "O"));
        assert_eq!(tag("MISC"), (false, "MISC"));
    }
}
