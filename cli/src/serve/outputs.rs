//! One row's result after a worker's call, by [`Work`]: the pooled vector, every real
//! token's hidden state, SPLADE weights, the sequence logits, or a head's JSON answer.

use super::types::{Done, Failure, Item, Shared, Text, Work};
use crate::tasks::{self, Scratch};
use bert_edge::tokenize::Tokenized;
use bert_edge::{Plan, Role};

/// Row `r`'s result for `item` (tokenized as `done`).
pub(super) fn answer(
    shared: &Shared,
    plan: &Plan,
    s: &Scratch,
    r: usize,
    item: &Item,
    done: Tokenized,
) -> Result<Done, Failure> {
    let mut out = Done {
        values: Vec::new(),
        answer: None,
        tokens: done.tokens,
        truncated: done.truncated,
        queue: Default::default(),
        inference: Default::default(),
    };
    let (n, l) = (s.out.seq_len(), done.tokens);
    match item.work {
        Work::Head(head) => {
            let text = match &item.input {
                Text::One(t) | Text::Pair(t, _) => t.as_str(),
                Text::Ids(_) => return Err(Failure::validation("this route takes text")),
            };
            let tok = &shared.model.tokenizer;
            out.answer = Some(tasks::answer(head, plan.info(), tok, s, r, text, done)?);
        }
        Work::Embed { skip } => out.values = pooled(shared, s, r, skip)?,
        Work::Tokens => {
            let h = rows_of(s, Role::HiddenStates, "last_hidden_state", r)?;
            out.values = h[..l * s.out.hidden_size()].to_vec();
        }
        Work::Sparse => {
            let logits = rows_of(s, Role::MaskedLmLogits, "masked-LM logits", r)?;
            let v = logits.len() / n;
            out.values = splade(
                &logits[..l * v],
                v,
                &s.inputs.attention_mask[r * n..r * n + l],
            );
        }
        Work::Logits => {
            let o = s
                .out
                .role(Role::SequenceLogits)
                .ok_or_else(|| missing("logits"))?;
            let w = o.len() / plan.info().batch;
            out.values = o[r * w..(r + 1) * w].to_vec();
        }
    }
    Ok(out)
}

fn missing(what: &str) -> Failure {
    Failure::validation(format!("this model has no {what}"))
}

/// Row `r` of the per-token output with `role` (n × width values).
fn rows_of<'a>(s: &'a Scratch, role: Role, what: &str, r: usize) -> Result<&'a [f32], Failure> {
    let o = s.out.role(role).ok_or_else(|| missing(what))?;
    let per_row = o.len() / (s.inputs.attention_mask.len() / s.out.seq_len()).max(1);
    Ok(&o[r * per_row..(r + 1) * per_row])
}

/// The model's pooling of row `r`, not normalized (a request's `normalize` decides, after its
/// `dimensions`); `skip` leading positions out of a token pooling (sentence-transformers'
/// `include_prompt: false`).
fn pooled(shared: &Shared, s: &Scratch, r: usize, skip: usize) -> Result<Vec<f32>, Failure> {
    let e = shared
        .model
        .embedding
        .as_ref()
        .ok_or_else(|| missing("embeddings"))?;
    let mut vector = vec![0f32; s.out.hidden_size()];
    e.pool_into(
        &s.out,
        &s.inputs.attention_mask,
        (r, skip),
        false,
        &mut vector,
    )?;
    Ok(vector)
}

/// SPLADE's sparse lexical weights: for each word piece, the max over the real tokens of
/// log(1 + relu(logit)) (naver/splade's `splade_max`).
fn splade(logits: &[f32], vocab: usize, mask: &[i64]) -> Vec<f32> {
    let mut w = vec![0f32; vocab];
    for (row, &m) in logits.chunks_exact(vocab).zip(mask) {
        if m == 0 {
            continue;
        }
        for (o, &x) in w.iter_mut().zip(row) {
            *o = o.max(x.max(0.0).ln_1p());
        }
    }
    w
}

#[cfg(test)]
mod tests {
    #[test]
    fn splade_takes_the_max_of_log1p_relu_over_real_tokens() {
        let logits = [1.0, -2.0, 0.5, 3.0, 100.0, 100.0];
        let w = super::splade(&logits, 2, &[1, 1, 0]);
        assert_eq!(w, [2f32.ln().max(1.5f32.ln()), 4f32.ln()]);
    }
}
