//! The HTTP side: dispatching requests to the handler threads, reading and checking bodies,
//! the endpoints (`/embed`, `/v1/embeddings`, `/health`, `/metrics`), writing answers.

use super::metrics::metrics_text;
use super::{lock, Embedding, Failure, Item, Shared};
use serde::Serialize;
use serde_json::Value;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;
use std::time::Instant;
use tiny_http::{Header, Method, Request, Response};

/// Hands requests from the accept loop to the handler threads.
pub(super) struct Dispatcher<'a> {
    pub shared: &'a Shared,
    /// Number of handler threads.
    pub handlers: usize,
    pub tx: SyncSender<(Request, Instant)>,
}

impl Dispatcher<'_> {
    /// Answers probes at once; queues anything else for a free handler (none free → 429,
    /// unless `wait`: during shutdown every request already received is served).
    pub fn dispatch(&self, rq: Request, wait: bool) {
        let (shared, t0) = (self.shared, Instant::now());
        let endpoint = endpoint_label(rq.url());
        if matches!(endpoint, "/health" | "/metrics") && *rq.method() == Method::Get {
            // Cheap and small: answered here, so probes never wait behind embedding requests.
            let status = respond(rq, endpoint, Ok(probe(shared, endpoint)));
            shared.metrics.record(endpoint, status, t0.elapsed());
            return;
        }
        // A request goes to the handlers only if one is free (counted from here until the
        // handler has answered), so the channel never holds more than there are handlers.
        let free = shared
            .handling
            .fetch_update(SeqCst, SeqCst, |n| (n < self.handlers).then_some(n + 1))
            .is_ok();
        if wait && !free {
            shared.handling.fetch_add(1, SeqCst);
        }
        if !(free || wait) {
            let f = Failure::new(429, "server busy: too many requests waiting, retry later");
            let _ = rq.respond(error_response(endpoint, &f));
            shared.metrics.record(endpoint, 429, t0.elapsed());
            return;
        }
        if let Err(mpsc::SendError((rq, t0))) = self.tx.send((rq, t0)) {
            // No handler left (cannot happen before shutdown).
            shared.handling.fetch_sub(1, SeqCst);
            let _ = rq.respond(error_response(
                endpoint,
                &Failure::new(503, "shutting down"),
            ));
            shared.metrics.record(endpoint, 503, t0.elapsed());
        }
    }
}

fn endpoint_label(url: &str) -> &'static str {
    match url.split('?').next().unwrap_or("") {
        "/embed" => "/embed",
        "/v1/embeddings" => "/v1/embeddings",
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

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}

fn error_response(endpoint: &str, f: &Failure) -> Response<std::io::Cursor<Vec<u8>>> {
    let body = if endpoint.starts_with("/v1/") {
        serde_json::json!({"error": {"message": f.message, "type": f.kind(), "code": f.status}})
    } else {
        serde_json::json!({"error": f.message, "error_type": f.kind()})
    };
    let mut r = Response::from_data(body.to_string().into_bytes())
        .with_status_code(f.status)
        .with_header(header("Content-Type", "application/json"));
    if f.status == 429 {
        r.add_header(header("Retry-After", "1"));
    }
    r
}

/// A handler thread: reads, checks and answers requests until the channel closes.
pub(super) fn handler(
    shared: &Shared,
    rx: &Mutex<Receiver<(Request, Instant)>>,
    jobs: &SyncSender<Item>,
) {
    loop {
        let next = lock(rx).recv();
        let Ok((mut rq, t0)) = next else { break };
        let endpoint = endpoint_label(rq.url());
        let res = catch_unwind(AssertUnwindSafe(|| handle(shared, jobs, &mut rq, endpoint)))
            .unwrap_or_else(|_| Err(Failure::new(500, "internal error: handler panicked")));
        let status = respond(rq, endpoint, res);
        shared.metrics.record(endpoint, status, t0.elapsed());
        shared.handling.fetch_sub(1, SeqCst);
    }
}

/// Writes the answer; its status.
fn respond(rq: Request, endpoint: &str, res: Result<Reply, Failure>) -> u16 {
    match res {
        Ok(reply) => {
            // Content-Length rather than chunked for large bodies: simplest for clients.
            let mut r = Response::from_data(reply.body)
                .with_chunked_threshold(usize::MAX)
                .with_status_code(reply.status)
                .with_header(header("Content-Type", reply.content_type));
            for (k, v) in &reply.headers {
                r.add_header(header(k, v));
            }
            let _ = rq.respond(r);
            reply.status
        }
        Err(f) => {
            if f.status >= 500 {
                eprintln!("bert-edge: {} {endpoint}: {}", f.status, f.message);
            }
            let _ = rq.respond(error_response(endpoint, &f));
            f.status
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
    });
    Reply::json(body.to_string().into_bytes())
}

fn handle(
    shared: &Shared,
    jobs: &SyncSender<Item>,
    rq: &mut Request,
    endpoint: &'static str,
) -> Result<Reply, Failure> {
    let method = rq.method().clone();
    match (endpoint, method) {
        ("/health" | "/metrics", Method::Get) => Ok(probe(shared, endpoint)),
        ("/embed", Method::Post) => embed(shared, jobs, &read_json(shared, rq)?),
        ("/v1/embeddings", Method::Post) => openai(shared, jobs, &read_json(shared, rq)?),
        ("other", _) => Err(Failure::new(404, format!("no such endpoint: {}", rq.url()))),
        (e, m) => Err(Failure::new(405, format!("{m} is not allowed on {e}"))),
    }
}

/// `POST /embed`: `{"inputs": …, "normalize": bool?}` → `[[…], …]`.
fn embed(shared: &Shared, jobs: &SyncSender<Item>, v: &Value) -> Result<Reply, Failure> {
    let normalize = match v.get("normalize") {
        None | Some(Value::Null) => shared.normalize,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Failure::new(400, "\"normalize\" must be a boolean")),
    };
    let inputs = parse_inputs(v.get("inputs"), "inputs", true)?;
    let (out, tokens) = embed_all(shared, jobs, inputs, normalize)?;
    let vectors: Vec<&[f32]> = out.iter().map(|e| e.vector.as_slice()).collect();
    let mut reply =
        Reply::json(serde_json::to_vec(&vectors).map_err(|e| Failure::new(500, e.to_string()))?);
    reply.headers = tokens;
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
    let inputs = parse_inputs(v.get("input"), "input", false)?;
    let (out, headers) = embed_all(shared, jobs, inputs, shared.normalize)?;
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
fn read_json(shared: &Shared, rq: &mut Request) -> Result<Value, Failure> {
    let max = shared.max_body;
    let too_big = || Failure::new(413, format!("request body is larger than {max} bytes"));
    if rq.body_length().is_some_and(|n| n > max) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    rq.as_reader()
        .take(max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Failure::new(400, format!("cannot read the request body: {e}")))?;
    if body.len() > max {
        return Err(too_big());
    }
    // from_slice checks UTF-8 (and rejects lone surrogates in escapes).
    let v: Value = serde_json::from_slice(&body)
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
fn embed_all(
    shared: &Shared,
    jobs: &SyncSender<Item>,
    inputs: Vec<(String, Option<String>)>,
    normalize: bool,
) -> Result<(Vec<Embedding>, Headers), Failure> {
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
    for (index, (text, pair)) in inputs.into_iter().enumerate() {
        let item = Item {
            text,
            pair,
            normalize,
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
    let mut out: Vec<Option<Embedding>> = (0..k).map(|_| None).collect();
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
    let out: Vec<Embedding> = out.into_iter().flatten().collect();
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
