//! The service's requests: dispatching complete requests (from the I/O thread, `front.rs`)
//! to the handler threads, checking bodies, the endpoints (`/embed`, `/v1/embeddings`,
//! `/health`, `/metrics`), and the answers' bytes.

use super::front::Answer;
use super::metrics::metrics_text;
use super::wire::{self, Request};
use super::{lock, Done, Failure, Item, Shared, Work};
use crate::tasks::Head;
use bert_edge::Task;
use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Mutex;
use std::time::Instant;

/// A request for a handler thread: where its answer goes, the request, when it arrived.
pub(super) struct Job {
    pub slot: usize,
    pub gen: u64,
    pub req: Request,
    pub t0: Instant,
}

/// Hands complete requests from the I/O thread to the handler threads.
pub(super) struct Dispatcher<'a> {
    pub shared: &'a Shared,
    /// Number of handler threads.
    pub handlers: usize,
    pub tx: SyncSender<Job>,
}

impl Dispatcher<'_> {
    /// Answers probes at once and refuses with 429 when no handler is free (the answer is
    /// returned); anything else goes to a handler (None: its answer comes later).
    pub fn dispatch(&self, slot: usize, gen: u64, req: Request) -> Option<Answer> {
        let (shared, t0) = (self.shared, Instant::now());
        let endpoint = endpoint_label(&req.path);
        let close = !req.keep_alive;
        // An answer from this thread, recorded in the metrics.
        let now = |result: Result<Reply, Failure>, close: bool| {
            let (status, bytes) = answer(endpoint, result, !close);
            shared.metrics.record(endpoint, status, t0.elapsed());
            Some(Answer {
                slot,
                gen,
                bytes,
                close,
            })
        };
        if matches!(endpoint, "/health" | "/metrics") && req.method == "GET" {
            // Cheap and small: answered here, so probes never wait behind embedding requests.
            return now(Ok(probe(shared, endpoint)), close);
        }
        // A request goes to the handlers only if one is free (counted from here until the
        // handler has answered), so the channel never holds more than there are handlers.
        let free = shared
            .handling
            .fetch_update(SeqCst, SeqCst, |n| (n < self.handlers).then_some(n + 1))
            .is_ok();
        if !free {
            let f = Failure::new(429, "server busy: too many requests waiting, retry later");
            return now(Err(f), close);
        }
        match self.tx.send(Job { slot, gen, req, t0 }) {
            Ok(()) => None,
            Err(mpsc::SendError(_)) => {
                // No handler left (cannot happen before shutdown).
                shared.handling.fetch_sub(1, SeqCst);
                now(Err(Failure::new(503, "shutting down")), true)
            }
        }
    }
}

/// The whole request handling without sockets: what a handler thread does with one
/// request, as the bytes of the answer (and its status). The `http_request` fuzz target
/// calls it through `handle_bytes`.
pub(super) fn process(shared: &Shared, jobs: &SyncSender<Item>, req: &Request) -> (u16, Vec<u8>) {
    let endpoint = endpoint_label(&req.path);
    let res = catch_unwind(AssertUnwindSafe(|| handle(shared, jobs, req, endpoint)))
        .unwrap_or_else(|_| Err(Failure::new(500, "internal error: handler panicked")));
    answer(endpoint, res, req.keep_alive)
}

/// A handler thread: answers requests until the channel closes.
pub(super) fn handler(
    shared: &Shared,
    rx: &Mutex<Receiver<Job>>,
    jobs: &SyncSender<Item>,
    replies: &Sender<Answer>,
    wake: &UnixStream,
) {
    loop {
        let next = lock(rx).recv();
        let Ok(job) = next else { break };
        let endpoint = endpoint_label(&job.req.path);
        let (status, bytes) = process(shared, jobs, &job.req);
        shared.metrics.record(endpoint, status, job.t0.elapsed());
        shared.handling.fetch_sub(1, SeqCst);
        let close = !job.req.keep_alive;
        let _ = replies.send(Answer {
            slot: job.slot,
            gen: job.gen,
            bytes,
            close,
        });
        let _ = (&*wake).write(&[1]);
    }
}

/// The metrics label of a request path.
pub(super) fn endpoint_label(url: &str) -> &'static str {
    match url.split('?').next().unwrap_or("") {
        "/embed" => "/embed",
        "/v1/embeddings" => "/v1/embeddings",
        "/classify" => "/classify",
        "/ner" => "/ner",
        "/fill-mask" => "/fill-mask",
        "/health" => "/health",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

/// Extra response headers.
type Headers = Vec<(&'static str, String)>;

struct Reply {
    status: u16,
    body: Vec<u8>,
    content_type: &'static str,
    headers: Headers,
}

impl Reply {
    fn json(body: Vec<u8>) -> Self {
        Reply {
            status: 200,
            body,
            content_type: "application/json",
            headers: Vec::new(),
        }
    }
}

/// The bytes of an answer (status, headers, JSON error bodies) and its status.
fn answer(endpoint: &str, res: Result<Reply, Failure>, keep_alive: bool) -> (u16, Vec<u8>) {
    match res {
        Ok(reply) => {
            let bytes = wire::response(
                reply.status,
                reply.content_type,
                &reply.headers,
                &reply.body,
                keep_alive,
            );
            (reply.status, bytes)
        }
        Err(f) => {
            if f.status >= 500 {
                eprintln!("bert-edge: {} {endpoint}: {}", f.status, f.message);
            }
            let body = if endpoint.starts_with("/v1/") {
                serde_json::json!({"error": {"message": f.message, "type": f.kind(), "code": f.status}})
            } else {
                serde_json::json!({"error": f.message, "error_type": f.kind()})
            };
            let retry: Headers = if f.status == 429 {
                vec![("Retry-After", "1".into())]
            } else {
                Vec::new()
            };
            let bytes = wire::response(
                f.status,
                "application/json",
                &retry,
                body.to_string().as_bytes(),
                keep_alive,
            );
            (f.status, bytes)
        }
    }
}

/// `GET /health` and `GET /metrics`.
fn probe(shared: &Shared, endpoint: &str) -> Reply {
    if endpoint == "/metrics" {
        return Reply {
            status: 200,
            body: metrics_text(shared).into_bytes(),
            content_type: "text/plain; version=0.0.4",
            headers: Vec::new(),
        };
    }
    let body = serde_json::json!({
        "status": "ok", "model": shared.model_name, "variant": shared.variant,
        "seq": shared.seq, "hidden": shared.hidden, "workers": shared.workers,
        "batch": shared.batch,
    });
    Reply::json(body.to_string().into_bytes())
}

fn handle(
    shared: &Shared,
    jobs: &SyncSender<Item>,
    rq: &Request,
    endpoint: &'static str,
) -> Result<Reply, Failure> {
    match (endpoint, rq.method.as_str()) {
        ("/health" | "/metrics", "GET") => Ok(probe(shared, endpoint)),
        ("/embed", "POST") => embed(shared, jobs, &read_json(shared, rq)?),
        ("/v1/embeddings", "POST") => openai(shared, jobs, &read_json(shared, rq)?),
        ("/classify", "POST") => head(shared, jobs, rq, Task::TextClassification),
        ("/ner", "POST") => head(shared, jobs, rq, Task::TokenClassification),
        ("/fill-mask", "POST") => head(shared, jobs, rq, Task::FillMask),
        ("other", _) => Err(Failure::new(404, format!("no such endpoint: {}", rq.path))),
        (e, m) => Err(Failure::new(405, format!("{m} is not allowed on {e}"))),
    }
}

/// `POST /embed`: `{"inputs": …, "normalize": bool?}` → `[[…], …]`.
fn embed(shared: &Shared, jobs: &SyncSender<Item>, v: &Value) -> Result<Reply, Failure> {
    let normalize = match v.get("normalize") {
        None | Some(Value::Null) => shared.embedding.as_ref().is_some_and(|e| e.normalize),
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Failure::new(400, "\"normalize\" must be a boolean")),
    };
    no_embeddings(shared)?;
    let inputs = parse_inputs(v.get("inputs"), "inputs", true)?;
    let prompt = shared.default_prompt;
    let (out, tokens) = run_all(shared, jobs, inputs, Work::Embed { normalize, prompt })?;
    let vectors: Vec<&[f32]> = out.iter().map(|e| e.vector.as_slice()).collect();
    let mut reply =
        Reply::json(serde_json::to_vec(&vectors).map_err(|e| Failure::new(500, e.to_string()))?);
    reply.headers = tokens;
    Ok(reply)
}

/// 404 for the embedding endpoints on a model without hidden states or pooler.
fn no_embeddings(shared: &Shared) -> Result<(), Failure> {
    if shared.embedding.is_some() {
        return Ok(());
    }
    let instead = Head::command(shared.task).map_or(String::new(), |c| format!(": POST /{c}"));
    Err(Failure::new(
        404,
        format!("this {} model has no embeddings{instead}", shared.task),
    ))
}

/// `POST /classify`, `/ner`, `/fill-mask`: `{"inputs": text | [text, …], "top_k": k?,
/// "aggregation_strategy": "simple"|"none"?}` → one answer per input, in order (the
/// `classify` / `ner` / `fill-mask` command's lines). 404 if the model's task is another.
fn head(
    shared: &Shared,
    jobs: &SyncSender<Item>,
    rq: &Request,
    task: Task,
) -> Result<Reply, Failure> {
    if shared.task != task {
        let instead = match Head::command(shared.task) {
            Some(c) => format!("POST /{c}"),
            None => "POST /embed".into(),
        };
        return Err(Failure::new(
            404,
            format!("this is a {} model, not {task}: {instead}", shared.task),
        ));
    }
    let v = read_json(shared, rq)?;
    let top_k = match v.get("top_k") {
        None | Some(Value::Null) => None,
        Some(k) => Some(
            k.as_u64()
                .filter(|k| (1..=1000).contains(k))
                .ok_or_else(|| Failure::new(400, "\"top_k\" must be an integer from 1 to 1000"))?
                as usize,
        ),
    };
    let aggregation = match v.get("aggregation_strategy") {
        None | Some(Value::Null) => None,
        Some(Value::String(a)) => Some(a.parse().map_err(Failure::from)?),
        Some(_) => {
            return Err(Failure::new(
                400,
                "\"aggregation_strategy\" must be a string",
            ))
        }
    };
    let head = Head::with(task, top_k, aggregation)
        .ok_or_else(|| Failure::new(500, "no head for this task"))?;
    let pairs = task == Task::TextClassification;
    let inputs = parse_inputs(v.get("inputs"), "inputs", pairs)?;
    let (out, headers) = run_all(shared, jobs, inputs, Work::Head(head))?;
    let answers: Vec<&Value> = out.iter().filter_map(|d| d.answer.as_ref()).collect();
    let mut reply =
        Reply::json(serde_json::to_vec(&answers).map_err(|e| Failure::new(500, e.to_string()))?);
    reply.headers = headers;
    Ok(reply)
}

/// `POST /v1/embeddings` (OpenAI's shape).
fn openai(shared: &Shared, jobs: &SyncSender<Item>, v: &Value) -> Result<Reply, Failure> {
    match v.get("model") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return Err(Failure::new(400, "\"model\" must be a string")),
    }
    match v.get("encoding_format") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "float" => {}
        Some(_) => {
            return Err(Failure::new(
                400,
                "only \"encoding_format\": \"float\" is supported",
            ))
        }
    }
    match v.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(d) if d.as_u64() == Some(shared.hidden as u64) => {}
        Some(_) => {
            return Err(Failure::new(
                400,
                format!("\"dimensions\" must be {}", shared.hidden),
            ))
        }
    }
    no_embeddings(shared)?;
    let inputs = parse_inputs(v.get("input"), "input", false)?;
    let work = Work::Embed {
        normalize: shared.embedding.as_ref().is_some_and(|e| e.normalize),
        prompt: shared.default_prompt,
    };
    let (out, headers) = run_all(shared, jobs, inputs, work)?;
    let tokens: usize = out.iter().map(|e| e.tokens).sum();
    let body = OpenAiResponse {
        object: "list",
        data: out
            .iter()
            .enumerate()
            .map(|(index, e)| OpenAiEmbedding {
                object: "embedding",
                embedding: &e.vector,
                index,
            })
            .collect(),
        model: &shared.model_name,
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    let mut reply =
        Reply::json(serde_json::to_vec(&body).map_err(|e| Failure::new(500, e.to_string()))?);
    reply.headers = headers;
    Ok(reply)
}

#[derive(Serialize)]
struct OpenAiResponse<'a> {
    object: &'static str,
    data: Vec<OpenAiEmbedding<'a>>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct OpenAiEmbedding<'a> {
    object: &'static str,
    embedding: &'a [f32],
    index: usize,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

/// Reads the body (at most `max_body` bytes, else 413) and parses it as a JSON object.
fn read_json(shared: &Shared, rq: &Request) -> Result<Value, Failure> {
    let (max, body) = (shared.max_body, &rq.body);
    if body.len() > max {
        return Err(Failure::new(
            413,
            format!("request body is larger than {max} bytes"),
        ));
    }
    // from_slice checks UTF-8 (and rejects lone surrogates in escapes).
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Failure::new(400, format!("malformed JSON: {e}")))?;
    if !v.is_object() {
        return Err(Failure::new(400, "the body must be a JSON object"));
    }
    Ok(v)
}

/// `"text"`, `["text", ...]` and, where `pairs`, `[["a", "b"], ...]` items (one text pair each).
fn parse_inputs(
    v: Option<&Value>,
    field: &str,
    pairs: bool,
) -> Result<Vec<(String, Option<String>)>, Failure> {
    let bad = |m: String| Failure::new(400, m);
    let want = if pairs {
        "a string, or an array of strings or of [string, string] pairs"
    } else {
        "a string or an array of strings"
    };
    let items: Vec<&Value> = match v {
        None => return Err(bad(format!("missing \"{field}\""))),
        Some(Value::String(_)) => vec![v.unwrap()],
        Some(Value::Array(a)) if a.is_empty() => return Err(bad(format!("\"{field}\" is empty"))),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(_) => return Err(bad(format!("\"{field}\" must be {want}"))),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, it)| match it {
            Value::String(s) => Ok((s.clone(), None)),
            Value::Array(p) if pairs => match p.as_slice() {
                [Value::String(a), Value::String(b)] => Ok((a.clone(), Some(b.clone()))),
                _ => Err(bad(format!(
                    "\"{field}\"[{i}] must be a [string, string] pair"
                ))),
            },
            _ => Err(bad(format!(
                "\"{field}\"[{i}] must be a string; \"{field}\" must be {want}"
            ))),
        })
        .collect()
}

/// Queues every text of a request (all or none: 429 if the queue has no room for all) and
/// waits for the results, in order. Also returns the token-count response headers.
fn run_all(
    shared: &Shared,
    jobs: &SyncSender<Item>,
    inputs: Vec<(String, Option<String>)>,
    work: Work,
) -> Result<(Vec<Done>, Headers), Failure> {
    let k = inputs.len();
    if k > shared.max_items {
        return Err(Failure::new(
            413,
            format!(
                "{k} inputs in one request, at most {} allowed",
                shared.max_items
            ),
        ));
    }
    let max = shared.max_text_bytes;
    for (i, (a, b)) in inputs.iter().enumerate() {
        let len = a.len() + b.as_ref().map_or(0, |b| b.len());
        if len > max {
            return Err(Failure::new(
                413,
                format!("input {i} is {len} bytes long, at most {max} allowed"),
            ));
        }
    }
    if !shared.reserve(k) {
        return Err(Failure::new(
            429,
            "server busy: inference queue is full, retry later",
        ));
    }
    let (tx, rx) = mpsc::channel();
    let prompt = match work {
        Work::Embed {
            prompt: Some(p), ..
        } => shared.prompts.get(p),
        _ => None,
    };
    for (index, (text, pair)) in inputs.into_iter().enumerate() {
        let text = match prompt {
            Some(p) => format!("{}{text}", p.text),
            None => text,
        };
        let item = Item {
            text,
            pair,
            work,
            index,
            reply: tx.clone(),
        };
        if jobs.send(item).is_err() {
            // Workers gone (cannot happen before shutdown): give back what was not queued.
            shared.queued.fetch_sub(k - index, SeqCst);
            return Err(Failure::new(503, "shutting down"));
        }
    }
    drop(tx);
    let mut out: Vec<Option<Done>> = (0..k).map(|_| None).collect();
    let mut first_err = None;
    for _ in 0..k {
        match rx.recv() {
            Ok((i, Ok(e))) => out[i] = Some(e),
            Ok((i, Err(f))) => {
                first_err
                    .get_or_insert(Failure::new(f.status, format!("input {i}: {}", f.message)));
            }
            Err(_) => return Err(Failure::new(500, "internal error: a worker stopped")),
        }
    }
    if let Some(f) = first_err {
        return Err(f);
    }
    let out: Vec<Done> = out.into_iter().flatten().collect();
    let per: Vec<String> = out.iter().map(|e| e.tokens.to_string()).collect();
    let headers = vec![
        (
            "X-Prompt-Tokens",
            out.iter().map(|e| e.tokens).sum::<usize>().to_string(),
        ),
        ("X-Tokens-Per-Input", per.join(",")),
        (
            "X-Truncated-Inputs",
            out.iter().filter(|e| e.truncated).count().to_string(),
        ),
        ("X-Max-Tokens", shared.seq.to_string()),
    ];
    Ok((out, headers))
}
