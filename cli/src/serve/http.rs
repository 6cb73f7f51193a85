//! The service's requests: dispatching complete requests (from the I/O thread, `front.rs`)
//! to the handler threads, the API key, the route table (TEI's routes in `api.rs` and
//! `meta.rs`, OpenAI's in `openai.rs`, the task heads here), and the answers' bytes (TEI's
//! `{error, error_type}` bodies; OpenAI's `{error: {message, type, …}}` on its routes).

use super::front::Answer;
use super::metrics::metrics_text;
use super::request::{self, Accept, Headers};
use super::types::{Failure, Item, Shared, Work};
use super::wire::{self, Request};
use super::{api, lock, meta, openai};
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
            shared
                .counters
                .metrics
                .record(endpoint, status, t0.elapsed());
            Some(Answer {
                slot,
                gen,
                bytes,
                close,
            })
        };
        if matches!(endpoint, "/health" | "/metrics" | "/") && req.method == "GET" {
            // Cheap and small: answered here, so probes never wait behind embedding requests.
            return now(Ok(probe(shared, endpoint)), close);
        }
        // A request goes to the handlers only if one is free (counted from here until the
        // handler has answered), so the channel never holds more than there are handlers.
        let free = shared
            .counters
            .handling
            .fetch_update(SeqCst, SeqCst, |n| (n < self.handlers).then_some(n + 1))
            .is_ok();
        if !free {
            shared.counters.metrics.limit("max_concurrent_requests");
            let f = Failure::new(429, "model is overloaded: too many concurrent requests");
            return now(Err(f), close);
        }
        match self.tx.send(Job { slot, gen, req, t0 }) {
            Ok(()) => None,
            Err(mpsc::SendError(_)) => {
                // No handler left (cannot happen before shutdown).
                shared.counters.handling.fetch_sub(1, SeqCst);
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
        shared
            .counters
            .metrics
            .record(endpoint, status, job.t0.elapsed());
        shared.counters.handling.fetch_sub(1, SeqCst);
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

/// The metrics label of a request path (a fixed set: a client cannot grow the metrics).
pub(super) fn endpoint_label(url: &str) -> &'static str {
    const ROUTES: [&str; 18] = [
        "/",
        "/embed",
        "/embed_all",
        "/embed_sparse",
        "/predict",
        "/rerank",
        "/similarity",
        "/tokenize",
        "/decode",
        "/info",
        "/v1/embeddings",
        "/embeddings",
        "/classify",
        "/ner",
        "/fill-mask",
        "/health",
        "/metrics",
        "/ping",
    ];
    let path = url.split('?').next().unwrap_or("");
    ROUTES.into_iter().find(|r| *r == path).unwrap_or("other")
}

/// A successful answer.
pub(super) struct Reply {
    status: u16,
    body: Vec<u8>,
    content_type: &'static str,
    headers: Headers,
}

impl Reply {
    /// `value` as a JSON answer with `headers`.
    pub(super) fn json(value: &impl Serialize, headers: Headers) -> Result<Reply, Failure> {
        let body = serde_json::to_vec(value).map_err(|e| Failure::new(500, e.to_string()))?;
        Ok(Reply {
            status: 200,
            body,
            content_type: "application/json",
            headers,
        })
    }
}

/// OpenAI's routes answer errors in OpenAI's shape.
fn openai_route(endpoint: &str) -> bool {
    matches!(endpoint, "/v1/embeddings" | "/embeddings")
}

/// The bytes of an answer (status, headers, JSON error bodies) and its status.
fn answer(endpoint: &str, res: Result<Reply, Failure>, keep_alive: bool) -> (u16, Vec<u8>) {
    let (status, content_type, headers, body) = match res {
        Ok(r) => (r.status, r.content_type, r.headers, r.body),
        Err(f) => {
            if f.status >= 500 {
                eprintln!("bert-edge: {} {endpoint}: {}", f.status, f.message);
            }
            let body = if openai_route(endpoint) {
                serde_json::json!({"error": {"message": f.message, "type": f.openai_kind(),
                                             "param": null, "code": null}})
            } else {
                serde_json::json!({"error": f.message, "error_type": f.kind()})
            };
            let mut h: Headers = Vec::new();
            match f.status {
                429 => h.push(("Retry-After", "1".into())),
                401 => h.push(("WWW-Authenticate", "Bearer".into())),
                _ => {}
            }
            (
                f.status,
                "application/json",
                h,
                body.to_string().into_bytes(),
            )
        }
    };
    let bytes = wire::response(status, content_type, &headers, &body, keep_alive);
    (status, bytes)
}

/// `GET /health` (and `GET /`, `/ping`) and `GET /metrics`: no key needed, as in TEI.
fn probe(shared: &Shared, endpoint: &str) -> Reply {
    if endpoint == "/metrics" {
        return Reply {
            status: 200,
            body: metrics_text(shared).into_bytes(),
            content_type: "text/plain; version=0.0.4",
            headers: Vec::new(),
        };
    }
    let (m, c) = (&shared.model, &shared.config);
    let body = serde_json::json!({
        "status": "ok", "model": m.name, "variant": m.info.variant.to_string(),
        "seq": m.info.seq, "hidden": m.info.hidden, "workers": c.workers, "batch": c.batch,
    });
    Reply {
        status: 200,
        body: body.to_string().into_bytes(),
        content_type: "application/json",
        headers: Vec::new(),
    }
}

/// `Authorization: Bearer KEY`, compared in constant time; 401 without it.
fn authorize(shared: &Shared, rq: &Request) -> Result<(), Failure> {
    let Some(key) = &shared.config.api_key else {
        return Ok(());
    };
    let given = rq
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Every byte compared whatever the first difference (length leaks only the length).
    let same = given.len() == key.len()
        && given
            .bytes()
            .zip(key.bytes())
            .fold(0u8, |d, (a, b)| d | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        shared.counters.metrics.limit("unauthorized");
        Err(Failure::new(
            401,
            "missing or wrong API key (Authorization: Bearer KEY)",
        ))
    }
}

/// The JSON body: at most `--payload-limit` bytes (413), an object.
fn body(shared: &Shared, rq: &Request) -> Result<Value, Failure> {
    let max = shared.config.max_body;
    if rq.body.len() > max {
        shared.counters.metrics.limit("payload_limit");
        return Err(Failure::new(
            413,
            format!("request body is larger than {max} bytes"),
        ));
    }
    request::object(&rq.body)
}

fn handle(
    shared: &Shared,
    jobs: &SyncSender<Item>,
    rq: &Request,
    endpoint: &'static str,
) -> Result<Reply, Failure> {
    let get = rq.method == "GET";
    if get && matches!(endpoint, "/health" | "/metrics" | "/" | "/ping") {
        return Ok(probe(shared, endpoint));
    }
    authorize(shared, rq)?;
    if get && endpoint == "/info" {
        return meta::info(shared);
    }
    if rq.method != "POST" || matches!(endpoint, "/health" | "/metrics" | "/ping" | "/info") {
        if endpoint == "other" {
            return Err(Failure::new(404, format!("no such route: {}", rq.path)));
        }
        return Err(Failure::new(
            405,
            format!("{} is not allowed on {endpoint}", rq.method),
        ));
    }
    let v = body(shared, rq)?;
    match endpoint {
        "/" if shared.model.task() == Task::TokenClassification => {
            head(shared, jobs, &v, Task::TokenClassification)
        }
        "/" => meta::root(shared, jobs, &v),
        "/embed" => api::embed(shared, jobs, &v),
        "/embed_all" => api::embed_all(shared, jobs, &v),
        "/embed_sparse" => api::embed_sparse(shared, jobs, &v),
        "/predict" => api::predict(shared, jobs, &v),
        "/rerank" => api::rerank(shared, jobs, &v),
        "/similarity" => api::similarity(shared, jobs, &v),
        "/tokenize" => meta::tokenize(shared, &v),
        "/decode" => meta::decode(shared, &v),
        "/v1/embeddings" | "/embeddings" => openai::embeddings(shared, jobs, &v),
        "/classify" => head(shared, jobs, &v, Task::TextClassification),
        "/ner" => head(shared, jobs, &v, Task::TokenClassification),
        "/fill-mask" => head(shared, jobs, &v, Task::FillMask),
        _ => Err(Failure::new(404, format!("no such route: {}", rq.path))),
    }
}

/// `POST /classify`, `/ner`, `/fill-mask`: `{"inputs": text | [text, …], "top_k": k?,
/// "aggregation_strategy": "simple"|"none"?}` → one answer per input, in order (the
/// `classify` / `ner` / `fill-mask` command's lines). 424 if the model's task is another.
fn head(shared: &Shared, jobs: &SyncSender<Item>, v: &Value, task: Task) -> Result<Reply, Failure> {
    let have = shared.model.task();
    if have != task {
        let instead =
            Head::command(have).map_or("POST /embed".to_string(), |c| format!("POST /{c}"));
        return Err(Failure::new(
            424,
            format!("this is a {have} model, not {task}: {instead}"),
        ));
    }
    let top_k = request::count(v, "top_k", 1000)?;
    let aggregation = match request::string(v, "aggregation_strategy")? {
        Some(a) => Some(a.parse().map_err(Failure::from)?),
        None => None,
    };
    let head = Head::with(task, top_k, aggregation)
        .ok_or_else(|| Failure::new(500, "no head for this task"))?;
    let accept = if task == Task::TextClassification {
        Accept::TextsAndPairs
    } else {
        Accept::Texts
    };
    let inputs = request::inputs(v.get("inputs"), "inputs", accept)?;
    // A head's answer says "truncated" itself, as the command-line heads do.
    let trunc = super::types::Truncation {
        allow: true,
        side: Default::default(),
    };
    let (out, headers) = request::run_all(shared, jobs, inputs, Work::Head(head), trunc)?;
    let answers: Vec<&Value> = out.iter().filter_map(|d| d.answer.as_ref()).collect();
    Reply::json(&answers, headers)
}
