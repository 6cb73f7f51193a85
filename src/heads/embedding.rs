//! Which sentence embedding a plan gives, and why: the caller's choice first, then the
//! model's own (a graph's `sentence_embedding` output, its sentence-transformers files), then
//! a stated default. The CLI and the service both resolve it here and print the reason.

use crate::error::{Error, Result};
use crate::runtime::{Outputs, PlanInfo, Pooling, Role};

/// The pooling and normalization of a plan's sentence embedding, with the reason for each.
///
/// ```
/// # #[cfg(feature = "onnx")] {
/// use bert_edge::{heads::{Embedding, Pooling}, LoadOptions, Plan};
/// let plan = Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?;
/// // No sentence-transformers files beside this export: the stated default.
/// let e = Embedding::resolve(plan.info(), None, None)?.unwrap();
/// assert_eq!((e.pooling, e.normalize), (Pooling::Mean, false));
/// let e = Embedding::resolve(plan.info(), Some(Pooling::Cls), Some(true))?.unwrap();
/// assert_eq!((e.pooling, e.normalize), (Pooling::Cls, true));
/// # }
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// How token states become one vector.
    pub pooling: Pooling,
    /// Scale to unit L2 norm.
    pub normalize: bool,
    /// Leave a prompt's tokens (and `[CLS]`) out of a token pooling (`include_prompt: false`).
    pub exclude_prompt: bool,
    /// Where the choice came from, in words (printed by `encode` and `serve`).
    pub why: String,
}

impl Embedding {
    /// Resolves the embedding of `info`'s plan: `pooling` / `normalize` if given (they must fit
    /// the graph), else what the model's files say, else mean pooling without normalization
    /// (what sentence-transformers does with a plain checkpoint). `Ok(None)`: the graph gives
    /// no vector (a classification head) and none was asked for.
    pub fn resolve(
        info: &PlanInfo,
        pooling: Option<Pooling>,
        normalize: Option<bool>,
    ) -> Result<Option<Embedding>> {
        let has = |r: Role| info.output(r).is_some();
        let vector_roles = [Role::HiddenStates, Role::Pooled, Role::SentenceEmbedding];
        if !vector_roles.iter().any(|r| has(*r)) {
            if pooling.is_some() || normalize.is_some() {
                return Err(Error::input(
                    crate::error::InputKind::Unsupported,
                    format!(
                    "this {} graph gives no hidden states, pooler or sentence embedding to pool",
                    info.task
                ),
                ));
            }
            return Ok(None);
        }
        let st = info.sentence.as_ref();
        let (pooling, pooling_why) = choose_pooling(info, pooling)?;
        check_fits(info, pooling)?;
        let graph_pools = pooling == Pooling::SentenceEmbedding;
        let (normalize, norm_why) = match normalize {
            Some(n) => (n, "asked for"),
            // The graph's own output already holds the whole sentence-transformers pipeline.
            None if graph_pools => (false, "the graph's output as it is"),
            None if st.is_some_and(|s| s.normalize) => (true, "the model's Normalize module"),
            None => (false, "no Normalize module"),
        };
        let token_pooling = !matches!(
            pooling,
            Pooling::Pooler | Pooling::SentenceEmbedding | Pooling::Cls
        );
        Ok(Some(Embedding {
            pooling,
            normalize,
            exclude_prompt: token_pooling && st.is_some_and(|s| !s.include_prompt),
            why: format!(
                "pooling {pooling}: {pooling_why}; {}: {norm_why}",
                if normalize {
                    "normalized"
                } else {
                    "not normalized"
                }
            ),
        }))
    }
}

impl Embedding {
    /// Row `row`'s embedding into `dst` (hidden size): the pooling over its real tokens, less
    /// the first `prompt_tokens` (`[CLS]` + a prompt, as
    /// [`BertTokenizer::prompt_length`](crate::tokenize::BertTokenizer::prompt_length) counts
    /// them) when the model leaves its prompt out; scaled to unit norm if `normalize`
    /// (`self.normalize` is the model's own choice).
    pub fn pool_into(
        &self,
        out: &Outputs,
        attention_mask: &[i64],
        (row, prompt_tokens): (usize, usize),
        normalize: bool,
        dst: &mut [f32],
    ) -> Result<()> {
        let skip = if self.exclude_prompt {
            prompt_tokens
        } else {
            0
        };
        super::pool_row(
            self.pooling,
            out,
            (attention_mask, skip),
            row,
            normalize,
            dst,
        )
    }
}

/// The pooling: `asked` if given, else the graph's sentence embedding, else the model's
/// sentence-transformers pooling, else mean (or the pooler without hidden states); and why.
fn choose_pooling(info: &PlanInfo, asked: Option<Pooling>) -> Result<(Pooling, String)> {
    let has = |r: Role| info.output(r).is_some();
    let pooling = asked;
    let st = info.sentence.as_ref();
    let from = |what: &str| match st {
        Some(s) if !s.source.is_empty() => format!("{what} ({})", s.source),
        _ => what.to_string(),
    };
    if let (None, Some(s)) = (pooling, st.filter(|s| !s.unsupported.is_empty())) {
        return Err(Error::bad_model(format!(
            "the model's sentence-transformers pipeline ({}) has modules bert-edge does \
             not run: {}; its own embedding cannot be given (ask for a pooling to get the \
             encoder's pooled states instead)",
            s.source,
            s.unsupported.join(", ")
        )));
    }
    Ok(match (pooling, st.and_then(|s| s.pooling)) {
        (Some(p), _) => (p, "asked for".to_string()),
        (None, _) if has(Role::SentenceEmbedding) => (
            Pooling::SentenceEmbedding,
            "the graph's own sentence_embedding output".to_string(),
        ),
        (None, Some(p)) => (p, from("the model's sentence-transformers pooling")),
        (None, None) if has(Role::HiddenStates) => (
            Pooling::Mean,
            "the default: no sentence-transformers pooling config (1_Pooling/config.json) \
             beside the model or one level up; mean is what sentence-transformers does with \
             a plain checkpoint (--pooling to choose)"
                .to_string(),
        ),
        (None, None) => (Pooling::Pooler, "the graph's only vector output".into()),
    })
}

/// The output a pooling reads must be in the graph.
fn check_fits(info: &PlanInfo, pooling: Pooling) -> Result<()> {
    let need = match pooling {
        Pooling::Pooler => (Role::Pooled, "pooler_output"),
        Pooling::SentenceEmbedding => (Role::SentenceEmbedding, "sentence_embedding"),
        _ => (Role::HiddenStates, "last_hidden_state"),
    };
    if info.output(need.0).is_some() {
        return Ok(());
    }
    let have: Vec<&str> = info.outputs.iter().map(|o| o.name.as_str()).collect();
    Err(Error::input(
        crate::error::InputKind::Unsupported,
        format!(
            "pooling {pooling} needs the graph's {}; this {} graph has {have:?}",
            need.1, info.task
        ),
    ))
}
