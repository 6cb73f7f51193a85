//! One text through a task head, as JSON: the answers of `classify`, `ner` and `fill-mask`
//! on the command line and of `POST /classify`, `/ner`, `/fill-mask` in the service (one copy
//! for both). The heads themselves are the library's (`bert_edge::heads`).

use crate::CliError;
use bert_edge::heads::{self, Aggregation};
use bert_edge::tokenize::{BertTokenizer, Side, Tokenized};
use bert_edge::{Encoder, Error, Inputs, Outputs, Plan, PlanInfo, Task};
use serde_json::{json, Value};

/// A task head and its settings.
#[derive(Debug, Clone, Copy)]
pub enum Head {
    /// Sequence classification: the `top_k` best labels.
    Classify { top_k: usize },
    /// Token classification: entities.
    Ner { aggregation: Aggregation },
    /// Fill-mask: the `top_k` best tokens per `[MASK]`.
    FillMask { top_k: usize },
}

impl Head {
    /// The task a model must have for this head.
    pub fn task(&self) -> Task {
        match self {
            Head::Classify { .. } => Task::TextClassification,
            Head::Ner { .. } => Task::TokenClassification,
            Head::FillMask { .. } => Task::FillMask,
        }
    }

    /// The command (and, with a `/`, the endpoint) that runs this head.
    pub fn command(task: Task) -> Option<&'static str> {
        match task {
            Task::TextClassification => Some("classify"),
            Task::TokenClassification => Some("ner"),
            Task::FillMask => Some("fill-mask"),
            _ => None,
        }
    }

    /// Settings from a request or a command line's `top_k` / `aggregation`, defaults as in
    /// Hugging Face's pipelines (classify 1, fill-mask 5, simple aggregation).
    pub fn with(
        task: Task,
        top_k: Option<usize>,
        aggregation: Option<Aggregation>,
    ) -> Option<Head> {
        match task {
            Task::TextClassification => Some(Head::Classify {
                top_k: top_k.unwrap_or(1),
            }),
            Task::TokenClassification => Some(Head::Ner {
                aggregation: aggregation.unwrap_or_default(),
            }),
            Task::FillMask => Some(Head::FillMask {
                top_k: top_k.unwrap_or(5),
            }),
            _ => None,
        }
    }
}

/// Whether `plan` can run the head of `task`; else the error to show, naming what it is.
pub fn check(plan: &Plan, task: Task) -> Result<(), String> {
    let info = plan.info();
    if info.task == task {
        return Ok(());
    }
    let outputs: Vec<String> = info
        .outputs
        .iter()
        .map(|o| format!("{} {:?}", o.name, o.shape))
        .collect();
    let instead = match Head::command(info.task) {
        Some(c) => format!("use `{c}`"),
        None => "use `encode` (or `serve`'s /embed)".into(),
    };
    Err(format!(
        "{task} needs a {task} model; this one is {} (outputs: {}): {instead}",
        info.task,
        outputs.join(", ")
    ))
}

/// Buffers one worker reuses for every call: the plan's batch × N inputs and outputs, one
/// row's tokenizer buffers and each row's character offsets (NER).
pub struct Scratch {
    pub inputs: Inputs,
    pub out: Outputs,
    row: Inputs,
    offsets: Vec<Vec<Option<(usize, usize)>>>,
}

impl Scratch {
    pub fn new(plan: &Plan) -> Scratch {
        let (b, n) = (plan.info().batch, plan.info().seq);
        Scratch {
            inputs: plan.inputs(),
            out: plan.outputs(),
            row: Inputs::new(n),
            offsets: (0..b).map(|_| Vec::with_capacity(n)).collect(),
        }
    }

    /// Tokenizes `text` (and `pair`: embeddings and classification only) into row `r`, as
    /// `head` needs it (`None`: embeddings).
    pub fn encode(
        &mut self,
        tok: &BertTokenizer,
        head: Option<Head>,
        r: usize,
        text: &str,
        pair: Option<&str>,
    ) -> Result<Tokenized, Error> {
        let n = self.row_len();
        if self.row.len() != n {
            self.row = Inputs::new(n);
        }
        let done = match (head, pair) {
            (Some(Head::Ner { .. }), None) => {
                tok.encode_with_offsets(text, &mut self.row, &mut self.offsets[r])?
            }
            (None | Some(Head::Classify { .. }), _) | (_, None) => {
                tok.encode_into(text, pair, &mut self.row)?
            }
            (Some(head), Some(_)) => {
                return Err(Error::BadInput(bert_edge::error::InputError {
                    kind: bert_edge::error::InputKind::Unsupported,
                    message: format!("{} takes one text, not a text pair", head.task()),
                }))
            }
        };
        self.put_row(r, self.row.len());
        Ok(done)
    }

    /// Tokenizes `text` (and `pair`) into row `r`, at most `max` tokens (≤ N), cut at `side`
    /// when longer (the service's `--max-input-length`, `truncation_direction`).
    pub fn encode_at_most(
        &mut self,
        tok: &BertTokenizer,
        r: usize,
        (text, pair): (&str, Option<&str>),
        side: Side,
        max: usize,
    ) -> Result<Tokenized, Error> {
        if self.row.len() != max {
            self.row = Inputs::new(max);
        }
        let done = tok.encode_truncating(text, pair, &mut self.row, side)?;
        self.put_row(r, max);
        Ok(done)
    }

    /// Token ids as given (special tokens included) into row `r`: the first (or, `Left`, the
    /// last) `max` of them; mask 1, token types 0.
    pub fn put_ids(&mut self, r: usize, ids: &[u32], side: Side, max: usize) -> Tokenized {
        let n = self.row_len();
        let keep = ids.len().min(max);
        let kept = match side {
            Side::Right => &ids[..keep],
            Side::Left => &ids[ids.len() - keep..],
        };
        let span = r * n..(r + 1) * n;
        let dst = &mut self.inputs.input_ids[span.clone()];
        dst.iter_mut()
            .zip(kept)
            .for_each(|(d, s)| *d = i64::from(*s));
        dst[keep..].fill(0);
        let mask = &mut self.inputs.attention_mask[span.clone()];
        mask[..keep].fill(1);
        mask[keep..].fill(0);
        self.inputs.token_type_ids[span].fill(0);
        Tokenized {
            tokens: keep,
            truncated: keep < ids.len(),
            full: ids.len(),
        }
    }

    /// Positions per row of the plan (N).
    fn row_len(&self) -> usize {
        self.inputs.input_ids.len() / self.offsets.len().max(1)
    }

    /// Copies the first `len` positions of the tokenizer row into row `r`, padding after.
    fn put_row(&mut self, r: usize, len: usize) {
        let n = self.row_len();
        let (span, pad) = (r * n..r * n + len, r * n + len..(r + 1) * n);
        self.inputs.input_ids[span.clone()].copy_from_slice(&self.row.input_ids[..len]);
        self.inputs.attention_mask[span.clone()].copy_from_slice(&self.row.attention_mask[..len]);
        self.inputs.token_type_ids[span].copy_from_slice(&self.row.token_type_ids[..len]);
        self.inputs.input_ids[pad.clone()].fill(0);
        self.inputs.attention_mask[pad.clone()].fill(0);
        self.inputs.token_type_ids[pad].fill(0);
    }
}

/// Tokenizes `text` (and `pair`, classification only), runs it and applies `head`. The JSON
/// carries the head's answer plus `tokens` and `truncated`.
pub fn run(
    head: Head,
    tok: &BertTokenizer,
    encoder: &mut Encoder,
    s: &mut Scratch,
    text: &str,
    pair: Option<&str>,
) -> Result<Value, Error> {
    let done = s.encode(tok, Some(head), 0, text, pair)?;
    let call = bert_edge::Call {
        rows: Some(1),
        length: None,
    };
    encoder.run_with(s.inputs.as_input(), &mut s.out, call)?;
    answer(head, encoder.plan().info(), tok, s, 0, text, done)
}

/// `head`'s JSON answer for row `r` of the last run (`text` tokenized there as `done`).
pub fn answer(
    head: Head,
    info: &PlanInfo,
    tok: &BertTokenizer,
    s: &Scratch,
    r: usize,
    text: &str,
    done: Tokenized,
) -> Result<Value, Error> {
    let n = info.seq;
    let ids = &s.inputs.input_ids[r * n..(r + 1) * n];
    let answer = match head {
        Head::Classify { top_k } => {
            let best = heads::classify(info, &s.out, r, top_k)?;
            let p: Vec<Value> = best
                .into_iter()
                .map(|(label, score)| json!({"label": label, "score": score}))
                .collect();
            json!({ "predictions": p })
        }
        Head::Ner { aggregation } => {
            let found =
                heads::entities(info, &s.out, r, tok, text, ids, &s.offsets[r], aggregation)?;
            let e: Vec<Value> = found.into_iter().map(entity_json).collect();
            json!({ "entities": e })
        }
        Head::FillMask { top_k } => {
            let masks = heads::fill_mask(&s.out, r, tok, ids, top_k)?;
            let m: Vec<Vec<Value>> = masks
                .into_iter()
                .map(|preds| {
                    preds
                        .into_iter()
                        .map(|p| {
                            json!({"score": p.score, "token": p.token,
                                   "token_str": p.token_str, "sequence": p.sequence})
                        })
                        .collect()
                })
                .collect();
            json!({ "masks": m })
        }
    };
    let mut answer = answer;
    answer["tokens"] = json!(done.tokens);
    answer["truncated"] = json!(done.truncated);
    Ok(answer)
}

/// An entity as Hugging Face's pipeline writes it: `entity_group` for a span, `entity` and
/// `index` for a token.
fn entity_json(e: heads::Entity) -> Value {
    let mut v = json!({"score": e.score, "word": e.word, "start": e.start, "end": e.end});
    match e.index {
        Some(i) => {
            v["entity"] = json!(e.label);
            v["index"] = json!(i);
        }
        None => v["entity_group"] = json!(e.label),
    }
    v
}

/// `classify`, `ner`, `fill-mask` options.
pub struct Options {
    top_k: Option<usize>,
    aggregation: Option<Aggregation>,
}

impl Options {
    pub fn parse(args: &mut pico_args::Arguments) -> Result<Self, String> {
        let top_k: Option<usize> = args
            .opt_value_from_str("--top-k")
            .map_err(|e| e.to_string())?;
        if top_k == Some(0) {
            return Err("--top-k must be at least 1".into());
        }
        Ok(Options {
            top_k,
            aggregation: crate::opt_parse(args, "--aggregation")?,
        })
    }
}

/// The `classify` / `ner` / `fill-mask` command: JSON Lines of `{"text": …}` in, one answer
/// line out per line (same bad-line rules as `encode`).
pub fn command(
    m: &crate::ModelArgs,
    task: Task,
    opts: &Options,
) -> Result<std::process::ExitCode, CliError> {
    let plan = std::sync::Arc::new(m.load().map_err(CliError::from)?);
    crate::jsonl::check_batch(&plan)?;
    check(&plan, task).map_err(CliError::usage)?;
    let head = Head::with(task, opts.top_k, opts.aggregation)
        .ok_or_else(|| CliError::usage(format!("no head for {task}")))?;
    let tok = BertTokenizer::for_plan(&plan).map_err(CliError::from)?;
    let mut encoder = Encoder::new(plan.clone()).map_err(CliError::from)?;
    let mut scratch = Scratch::new(&plan);
    crate::jsonl::lines("answered", |line| {
        let (text, pair) = crate::jsonl::text_line(line)?;
        run(
            head,
            &tok,
            &mut encoder,
            &mut scratch,
            &text,
            pair.as_deref(),
        )
        .map_err(|e| e.to_string())
    })
}
