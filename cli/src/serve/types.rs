//! What the service's threads share and pass: its configuration, the model it serves, its
//! counters, one text's work item and result, and an error answer (TEI's `error_type`s).

use super::hooks::Hooks;
use super::metrics::Metrics;
use crate::tasks::Head;
use bert_edge::heads::Embedding;
use bert_edge::tokenize::{BertTokenizer, Side};
use bert_edge::{Error, Task};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Limits and settings, fixed at start.
pub(super) struct Config {
    /// Inputs per request (`--max-client-batch-size`; 422 above).
    pub max_items: usize,
    /// Bytes per input text (413 above).
    pub max_text_bytes: usize,
    /// Bytes per request body (`--payload-limit`; 413 above).
    pub max_body: usize,
    /// Tokens per input, special tokens included (`--max-input-length`, at most N).
    pub max_input_length: usize,
    /// Truncate inputs over `max_input_length` when a request does not say (`--auto-truncate`).
    pub auto_truncate: bool,
    /// `normalize` of `/embed` and `/v1/embeddings` when a request does not say (TEI: true).
    pub normalize: bool,
    /// Inference queue size (`--queue`).
    pub queue_cap: usize,
    /// Rows per worker call (the plan's batch) and how long a worker waits to fill them.
    pub batch: usize,
    pub batch_wait: Duration,
    pub workers: usize,
    /// Requests handled at once (`--max-concurrent-requests`; 429 above).
    pub handlers: usize,
    /// `Authorization: Bearer` key every route but the probes needs (`--api-key`).
    pub api_key: Option<String>,
    /// Test hooks (none unless built with `--features test-hooks`).
    pub hooks: Hooks,
}

/// A prompt of the model: its name, its text, and `[CLS]` + its tokens (what a pooling with
/// `include_prompt: false` leaves out).
pub(super) struct Prompt {
    pub name: String,
    pub text: String,
    pub tokens: usize,
}

/// The model being served.
pub(super) struct Model {
    pub tokenizer: BertTokenizer,
    pub info: bert_edge::PlanInfo,
    /// The plan's matmul kernels and who chose them (`/metrics`).
    pub kernels: Vec<bert_edge::tuning::KernelChoice>,
    /// `None`: no hidden states, pooler or sentence embedding (a classifier).
    pub embedding: Option<Embedding>,
    pub prompts: Vec<Prompt>,
    pub default_prompt: Option<usize>,
    /// The name `/info` and `/v1/embeddings` give (`--served-model-name`, else the file stem).
    pub name: String,
}

impl Model {
    pub fn task(&self) -> Task {
        self.info.task
    }

    /// A cross-encoder: a sequence classifier with one output (TEI's "reranker").
    pub fn is_reranker(&self) -> bool {
        self.info.task == Task::TextClassification && self.info.labels.len() == 1
    }

    /// Prompt `name` (a request's `prompt_name`), else the model's default; `None`: no prompt.
    pub fn prompt(&self, name: Option<&str>) -> Result<Option<&Prompt>, Failure> {
        match name {
            Some(n) => self
                .prompts
                .iter()
                .find(|p| p.name == n)
                .map(Some)
                .ok_or_else(|| {
                    let names: Vec<&str> = self.prompts.iter().map(|p| p.name.as_str()).collect();
                    Failure::validation(format!(
                        "prompt_name {n:?} is not one of the model's prompts {names:?}"
                    ))
                }),
            None => Ok(self.default_prompt.and_then(|i| self.prompts.get(i))),
        }
    }
}

/// What the threads count.
#[derive(Default)]
pub(super) struct Counters {
    /// Texts admitted to the inference queue and not yet taken by a worker.
    pub queued: AtomicUsize,
    pub busy: AtomicUsize,
    /// Requests handed to the handler pool and not yet answered.
    pub handling: AtomicUsize,
    pub metrics: Metrics,
}

/// What handlers and workers share.
pub(super) struct Shared {
    pub config: Config,
    pub model: Model,
    pub counters: Counters,
}

impl Shared {
    /// Reserves `k` queue slots, all or none.
    pub fn reserve(&self, k: usize) -> bool {
        self.counters
            .queued
            .fetch_update(SeqCst, SeqCst, |q| {
                (q + k <= self.config.queue_cap).then_some(q + k)
            })
            .is_ok()
    }
}

/// One input of a request.
#[derive(Debug, Clone)]
pub(super) enum Text {
    /// A text (the prompt already in front).
    One(String),
    /// A text pair (classification, reranking).
    Pair(String, String),
    /// Token ids as given, special tokens included (TEI's and OpenAI's id inputs).
    Ids(Vec<u32>),
}

impl Text {
    /// Characters (ids: ids), TEI's `x-compute-characters`.
    pub fn chars(&self) -> usize {
        match self {
            Text::One(a) => a.chars().count(),
            Text::Pair(a, b) => a.chars().count() + b.chars().count(),
            Text::Ids(v) => v.len(),
        }
    }
}

/// How an input too long for `--max-input-length` is treated.
#[derive(Debug, Clone, Copy)]
pub(super) struct Truncation {
    /// Cut it (else: 422 naming its length and the limit).
    pub allow: bool,
    pub side: Side,
}

/// What a worker does with an input.
#[derive(Debug, Clone, Copy)]
pub(super) enum Work {
    /// The pooled vector, not normalized; `skip` leading positions ([CLS] + a prompt) left out
    /// of a token pooling.
    Embed { skip: usize },
    /// The hidden state of every real token.
    Tokens,
    /// SPLADE: max over the real tokens of log(1 + relu(masked-LM logits)), one per word piece.
    Sparse,
    /// The sequence logits, raw.
    Logits,
    /// `/classify`, `/ner`, `/fill-mask`: the head's JSON answer.
    Head(Head),
}

/// One input and what to do with it; the worker sends its result to `reply`.
pub(super) struct Item {
    pub input: Text,
    pub work: Work,
    pub truncation: Truncation,
    pub index: usize,
    pub queued: Instant,
    pub reply: mpsc::Sender<(usize, Result<Done, Failure>)>,
}

/// A worker's result for one input.
pub(super) struct Done {
    /// The vector, token rows, sparse weights or logits (by [`Work`]).
    pub values: Vec<f32>,
    pub answer: Option<serde_json::Value>,
    pub tokens: usize,
    pub truncated: bool,
    /// Time in the queue, and in the worker (tokenizing, running, pooling).
    pub queue: Duration,
    pub inference: Duration,
}

/// An error answer: HTTP status, message and TEI's `error_type`.
#[derive(Debug)]
pub(super) struct Failure {
    pub status: u16,
    pub message: String,
}

impl Failure {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// 422: a request TEI's validation refuses (types, limits, lengths).
    pub fn validation(message: impl Into<String>) -> Self {
        Failure::new(422, message)
    }

    /// TEI's `error_type` for the status.
    pub fn kind(&self) -> &'static str {
        match self.status {
            400 => "Empty",
            401 => "Unauthorized",
            404 | 405 | 413 | 422 => "Validation",
            429 => "Overloaded",
            503 => "Unhealthy",
            _ => "Backend",
        }
    }

    /// OpenAI's error `type` for the status.
    pub fn openai_kind(&self) -> &'static str {
        match self.status {
            401 => "authentication_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            s if s < 500 => "invalid_request_error",
            _ => "server_error",
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::BadInput(m) => Failure::validation(m.message),
            Error::BadOptions(m) => Failure::validation(m),
            other => Failure::new(424, other.to_string()),
        }
    }
}
