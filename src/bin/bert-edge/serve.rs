//! `bert-edge serve`: an HTTP embedding server over one shared plan.
//!
//! HTTP library: `tiny_http` (synchronous, pure Rust: ascii, chunked_transfer, httpdate, log; no
//! TLS unless asked, so no openssl/C and it cross-compiles for aarch64/armv7 as is). Inference
//! is CPU-bound and blocking, so an async stack (tokio + hyper/axum, several MB and ~100 crates)
//! would buy nothing here but size and build time on a Pi. Shutdown signals: `signal-hook`
//! (flags only, no iterator thread).
//!
//! Threads:
//! - main: `recv_timeout` on the server, hands each request to the handler pool through a
//!   bounded channel (full → 429 right away), watches the SIGTERM/SIGINT flag.
//! - handlers (`HANDLERS`): read and check the body (size, JSON, types, limits), reserve room
//!   for all of the request's texts in the inference queue at once (no room → 429 with
//!   `Retry-After`), wait for the results, write the response. Only handlers touch sockets.
//! - workers (`--workers`, one `Encoder` each over the shared `Arc<Plan>`): tokenize, run,
//!   pool, normalize one text at a time from the bounded queue; never do I/O, so a slow client
//!   can't stall one. A panic in an inference is caught, answered with 500, and the worker
//!   gets a fresh `Encoder`.
//!
//! Shutdown: the flag stops the accept loop; requests already received are still served;
//! the listener is closed; handlers and workers drain and are joined; exit 0. A second signal
//! exits at once (status 1).
//!
//! Known limit: tiny_http has no socket read timeouts, so a client that sends its body very
//! slowly keeps one handler busy. Bind to loopback / a trusted LAN or put a reverse proxy in
//! front when exposing the board.

use crate::ModelArgs;
use bert_edge::tokenize::{BertTokenizer, Encoded};
use bert_edge::{Encoder, Error, Flavour, Plan};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tiny_http::{Header, Method, Request, Response};

/// Pooling of the encoder outputs into one vector per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// BERT's pooler output (dense + tanh over the `[CLS]` state).
    Cls,
    /// Mean of `last_hidden_state` over the tokens with attention mask 1.
    Mean,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            _ => Err(Error::BadInput(format!(
                "unknown pooling {s:?} (cls | mean)"
            ))),
        }
    }
}

impl Pooling {
    fn name(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
        }
    }
}

/// `serve` options (after the shared model options).
pub struct Options {
    bind: String,
    workers: usize,
    queue: usize,
    pooling: Pooling,
    normalize: bool,
    tokenizer: Option<PathBuf>,
    max_items: usize,
    max_text_bytes: usize,
    max_body: usize,
    test_delay: Duration,
}

impl Options {
    pub fn parse(args: &mut pico_args::Arguments) -> Result<Self, String> {
        let s = |e: pico_args::Error| e.to_string();
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let o = Options {
            bind: args
                .opt_value_from_str("--bind")
                .map_err(s)?
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            workers: args
                .opt_value_from_str("--workers")
                .map_err(s)?
                .unwrap_or(cores),
            queue: args.opt_value_from_str("--queue").map_err(s)?.unwrap_or(64),
            pooling: crate::opt_parse(args, "--pooling")?.unwrap_or(Pooling::Cls),
            normalize: args.contains("--normalize"),
            tokenizer: args.opt_value_from_str("--tokenizer").map_err(s)?,
            max_items: args
                .opt_value_from_str("--max-items")
                .map_err(s)?
                .unwrap_or(32),
            max_text_bytes: args
                .opt_value_from_str("--max-text-bytes")
                .map_err(s)?
                .unwrap_or(16 * 1024),
            max_body: args
                .opt_value_from_str("--max-body")
                .map_err(s)?
                .unwrap_or(1024 * 1024),
            test_delay: Duration::from_millis(
                args.opt_value_from_str("--test-delay-ms")
                    .map_err(s)?
                    .unwrap_or(0),
            ),
        };
        if o.workers == 0 || o.queue == 0 || o.max_items == 0 || o.max_body == 0 {
            return Err("--workers, --queue, --max-items and --max-body must be at least 1".into());
        }
        Ok(o)
    }
}

/// The tokenizer: `--tokenizer`, else `tokenizer.json` beside the model or one directory up,
/// else `models/tokenizer.json` (as `encode` looks for it).
fn find_tokenizer(opts: &Options, model: &Path) -> Option<PathBuf> {
    bert_edge::tokenize::locate_tokenizer(opts.tokenizer.as_deref(), model)
}

/// One text (or text pair) to embed; the worker sends its result to `reply`.
struct Item {
    text: String,
    pair: Option<String>,
    normalize: bool,
    index: usize,
    reply: mpsc::Sender<(usize, Result<Embedding, Failure>)>,
}

struct Embedding {
    vector: Vec<f32>,
    tokens: usize,
    truncated: bool,
}

/// An HTTP error answer: status and message.
#[derive(Debug)]
struct Failure {
    status: u16,
    message: String,
}

impl Failure {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
    fn kind(&self) -> &'static str {
        match self.status {
            400 | 404 | 405 => "invalid_request_error",
            413 => "payload_too_large",
            429 => "overloaded",
            _ => "server_error",
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::BadInput(m) => Failure::new(400, m),
            other => Failure::new(500, other.to_string()),
        }
    }
}

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
    inferences: AtomicU64,
    inference_errors: AtomicU64,
    tokens: AtomicU64,
    truncated: AtomicU64,
}

impl Metrics {
    fn record(&self, endpoint: &'static str, status: u16, elapsed: Duration) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((endpoint, status)).or_default() += 1;
        drop(map);
        let secs = elapsed.as_secs_f64();
        for (b, le) in self.buckets.iter().zip(BUCKETS) {
            if secs <= le {
                b.fetch_add(1, SeqCst);
            }
        }
        self.count.fetch_add(1, SeqCst);
        self.sum_us.fetch_add(elapsed.as_micros() as u64, SeqCst);
    }
}

/// What handlers and workers share.
struct Shared {
    tokenizer: BertTokenizer,
    seq: usize,
    hidden: usize,
    pooling: Pooling,
    normalize: bool,
    max_items: usize,
    max_text_bytes: usize,
    max_body: usize,
    queue_cap: usize,
    /// Texts admitted to the inference queue and not yet taken by a worker.
    queued: AtomicUsize,
    busy: AtomicUsize,
    /// Requests handed to the handler pool and not yet answered.
    handling: AtomicUsize,
    workers: usize,
    model_name: String,
    variant: String,
    test_delay: Duration,
    metrics: Metrics,
}

impl Shared {
    /// Reserves `k` queue slots, all or none.
    fn reserve(&self, k: usize) -> bool {
        self.queued
            .fetch_update(SeqCst, SeqCst, |q| {
                (q + k <= self.queue_cap).then_some(q + k)
            })
            .is_ok()
    }
}

pub fn run(m: &ModelArgs, opts: &Options) -> Result<ExitCode, (u8, String)> {
    let fail = |e: String| (2u8, e);
    let tok_path = find_tokenizer(opts, &m.model)
        .ok_or_else(|| fail("serve needs a tokenizer.json: pass --tokenizer FILE".into()))?;
    let tokenizer = BertTokenizer::from_file(&tok_path).map_err(|e| fail(e.to_string()))?;
    let plan = Arc::new(m.load().map_err(|e| fail(e.to_string()))?);
    let info = plan.info().clone();
    if info.flavour != Flavour::Ids {
        return Err(fail(format!(
            "{} is an inputs_embeds model: serve needs an input_ids model (bert_ids_*.onnx)",
            m.model.display()
        )));
    }
    if info.batch != 1 {
        return Err(fail(format!(
            "serve needs a batch-1 plan, this one has batch {}",
            info.batch
        )));
    }
    if info.seq < tokenizer.min_len(true) {
        return Err(fail(format!(
            "sequence length {} is too short for [CLS] A [SEP] B [SEP]",
            info.seq
        )));
    }
    let mut encoders = Vec::with_capacity(opts.workers);
    for _ in 0..opts.workers {
        encoders.push(Encoder::new(plan.clone()).map_err(|e| fail(e.to_string()))?);
    }
    let max_items = opts.max_items.min(opts.queue);
    if max_items < opts.max_items {
        eprintln!("bert-edge: --max-items lowered to the queue size, {max_items}");
    }
    let shared = Arc::new(Shared {
        tokenizer,
        seq: info.seq,
        hidden: info.hidden,
        pooling: opts.pooling,
        normalize: opts.normalize,
        max_items,
        max_text_bytes: opts.max_text_bytes,
        max_body: opts.max_body,
        queue_cap: opts.queue,
        queued: AtomicUsize::new(0),
        busy: AtomicUsize::new(0),
        handling: AtomicUsize::new(0),
        workers: opts.workers,
        model_name: m
            .model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        variant: info.variant.to_string(),
        test_delay: opts.test_delay,
        metrics: Metrics::default(),
    });

    let server = tiny_http::Server::http(opts.bind.as_str())
        .map_err(|e| fail(format!("cannot listen on {}: {e}", opts.bind)))?;

    // Signals: the first SIGTERM/SIGINT sets `term` (graceful); a second one exits at once.
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, term.clone())
            .and_then(|_| signal_hook::flag::register(sig, term.clone()))
            .map_err(|e| fail(format!("cannot install signal handlers: {e}")))?;
    }

    let (job_tx, job_rx) = mpsc::sync_channel::<Item>(opts.queue);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let mut workers = Vec::new();
    for (ix, encoder) in encoders.into_iter().enumerate() {
        let (shared, rx, plan) = (shared.clone(), job_rx.clone(), plan.clone());
        let h = std::thread::Builder::new()
            .name(format!("worker-{ix}"))
            .spawn(move || worker(&shared, &rx, &plan, encoder))
            .map_err(|e| fail(format!("cannot start worker: {e}")))?;
        workers.push(h);
    }
    // More handlers than texts can be admitted (queue + running), so the inference queue's
    // all-or-none reservation is what answers 429 under load, with `--queue` as the real bound
    // on waiting work; the hand-off channel only absorbs the moment between a handler finishing
    // and taking the next request (full → 429 too). Idle handlers sleep on the channel; small
    // stacks (serde_json caps JSON nesting at 128 levels).
    let handlers_n = (opts.workers + opts.queue + 4).min(256);
    let (req_tx, req_rx) = mpsc::sync_channel::<(Request, Instant)>(handlers_n);
    let req_rx = Arc::new(Mutex::new(req_rx));
    let mut handlers = Vec::new();
    for ix in 0..handlers_n {
        let (shared, rx, jobs) = (shared.clone(), req_rx.clone(), job_tx.clone());
        let h = std::thread::Builder::new()
            .name(format!("http-{ix}"))
            .stack_size(512 * 1024)
            .spawn(move || handler(&shared, &rx, &jobs))
            .map_err(|e| fail(format!("cannot start handler: {e}")))?;
        handlers.push(h);
    }
    drop(job_tx);

    let addr = server
        .server_addr()
        .to_ip()
        .map(|a| a.to_string())
        .unwrap_or_else(|| opts.bind.clone());
    eprintln!(
        "bert-edge: listening on http://{addr} ({} workers, queue {}, pooling {}{})",
        opts.workers,
        opts.queue,
        opts.pooling.name(),
        if opts.normalize { ", normalized" } else { "" }
    );

    let dispatch = |rq: Request, wait: bool| {
        let t0 = Instant::now();
        let endpoint = endpoint_label(rq.url());
        if matches!(endpoint, "/health" | "/metrics") && *rq.method() == Method::Get {
            // Cheap and small: answered here, so probes never wait behind embedding requests.
            let status = respond(rq, endpoint, Ok(probe(&shared, endpoint)));
            shared.metrics.record(endpoint, status, t0.elapsed());
            return;
        }
        // A request goes to the handlers only if one is free (counted from here until the
        // handler has answered), so the channel never holds more than there are handlers.
        let free = shared
            .handling
            .fetch_update(SeqCst, SeqCst, |n| (n < handlers_n).then_some(n + 1))
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
        match req_tx.send((rq, t0)) {
            Ok(()) => {}
            Err(mpsc::SendError((rq, t0))) => {
                // No handler left (cannot happen before shutdown).
                shared.handling.fetch_sub(1, SeqCst);
                let _ = rq.respond(error_response(
                    endpoint,
                    &Failure::new(503, "shutting down"),
                ));
                shared.metrics.record(endpoint, 503, t0.elapsed());
            }
        }
    };
    while !term.load(SeqCst) {
        match server.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(rq)) => dispatch(rq, false),
            Ok(None) => {}
            Err(e) => {
                eprintln!("bert-edge: accept error: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    eprintln!("bert-edge: shutting down: finishing requests in flight");
    // Requests already read (or being read) when the signal came are served, not dropped.
    while let Ok(Some(rq)) = server.recv_timeout(Duration::from_millis(50)) {
        dispatch(rq, true);
    }
    drop(server); // stop listening
    drop(req_tx);
    for h in handlers {
        let _ = h.join();
    }
    for h in workers {
        let _ = h.join();
    }
    eprintln!("bert-edge: stopped");
    Ok(ExitCode::SUCCESS)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Buffers {
    long: Encoded,
    short: Encoded,
    hidden: Vec<f32>,
    pooled: Vec<f32>,
}

fn worker(shared: &Shared, rx: &Mutex<Receiver<Item>>, plan: &Arc<Plan>, mut encoder: Encoder) {
    let seq = shared.seq;
    let mut b = Buffers {
        // seq + 1 tokens: tells a text that fits from one that was truncated.
        long: Encoded::new(seq + 1),
        short: Encoded::new(seq),
        hidden: vec![0.0; plan.hidden_len()],
        pooled: vec![0.0; plan.pooled_len()],
    };
    loop {
        let item = lock(rx).recv();
        let Ok(item) = item else { break };
        shared.queued.fetch_sub(1, SeqCst);
        shared.busy.fetch_add(1, SeqCst);
        let res = catch_unwind(AssertUnwindSafe(|| {
            infer(shared, &mut encoder, &mut b, &item)
        }));
        let res = match res {
            Ok(r) => r,
            Err(_) => {
                // The tract state may be half-updated: start over with a fresh one.
                if let Ok(e) = Encoder::new(plan.clone()) {
                    encoder = e;
                }
                Err(Failure::new(500, "internal error: inference panicked"))
            }
        };
        shared.busy.fetch_sub(1, SeqCst);
        let m = &shared.metrics;
        match &res {
            Ok(e) => {
                m.inferences.fetch_add(1, SeqCst);
                m.tokens.fetch_add(e.tokens as u64, SeqCst);
                m.truncated.fetch_add(e.truncated as u64, SeqCst);
            }
            Err(_) => {
                m.inference_errors.fetch_add(1, SeqCst);
            }
        }
        let _ = item.reply.send((item.index, res));
    }
}

fn infer(
    shared: &Shared,
    encoder: &mut Encoder,
    b: &mut Buffers,
    item: &Item,
) -> Result<Embedding, Failure> {
    if !shared.test_delay.is_zero() {
        std::thread::sleep(shared.test_delay);
    }
    let n = shared.seq;
    let tok = &shared.tokenizer;
    let pair = item.pair.as_deref();
    let mut real = tok.encode_into(&item.text, pair, &mut b.long)?;
    let truncated = real > n;
    let enc = if truncated {
        real = tok.encode_into(&item.text, pair, &mut b.short)?;
        &b.short
    } else {
        &b.long
    };
    let (ids, mask, types) = (
        &enc.input_ids[..n],
        &enc.attention_mask[..n],
        &enc.token_type_ids[..n],
    );
    encoder.run_ids(ids, mask, types, &mut b.hidden, &mut b.pooled)?;
    let mut vector = match shared.pooling {
        Pooling::Cls => b.pooled.clone(),
        Pooling::Mean => mean_pool(&b.hidden, mask, shared.hidden),
    };
    if item.normalize {
        l2_normalize(&mut vector);
    }
    Ok(Embedding {
        vector,
        tokens: real,
        truncated,
    })
}

/// Mean of the rows of `hidden` (seq × h) whose mask is 1.
fn mean_pool(hidden: &[f32], mask: &[i64], h: usize) -> Vec<f32> {
    let mut out = vec![0f32; h];
    let mut count = 0usize;
    for (row, &m) in hidden.chunks_exact(h).zip(mask) {
        if m != 0 {
            count += 1;
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
    }
    let c = count.max(1) as f32;
    out.iter_mut().for_each(|o| *o /= c);
    out
}

/// Scales `v` to unit L2 norm (left alone if it is all zeros).
fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
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

fn handler(shared: &Shared, rx: &Mutex<Receiver<(Request, Instant)>>, jobs: &SyncSender<Item>) {
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
        ("/embed", Method::Post) => {
            let v = read_json(shared, rq)?;
            let normalize = match v.get("normalize") {
                None | Some(Value::Null) => shared.normalize,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(Failure::new(400, "\"normalize\" must be a boolean")),
            };
            let inputs = parse_inputs(v.get("inputs"), "inputs", true)?;
            let (out, tokens) = embed_all(shared, jobs, inputs, normalize)?;
            let vectors: Vec<&[f32]> = out.iter().map(|e| e.vector.as_slice()).collect();
            let mut reply = Reply::json(
                serde_json::to_vec(&vectors).map_err(|e| Failure::new(500, e.to_string()))?,
            );
            reply.headers = tokens;
            Ok(reply)
        }
        ("/v1/embeddings", Method::Post) => {
            let v = read_json(shared, rq)?;
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
            let mut reply = Reply::json(
                serde_json::to_vec(&body).map_err(|e| Failure::new(500, e.to_string()))?,
            );
            reply.headers = headers;
            Ok(reply)
        }
        ("other", _) => Err(Failure::new(404, format!("no such endpoint: {}", rq.url()))),
        (e, m) => Err(Failure::new(405, format!("{m} is not allowed on {e}"))),
    }
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

fn metrics_text(s: &Shared) -> String {
    use std::fmt::Write;
    let m = &s.metrics;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# HELP bert_edge_requests_total HTTP requests answered, by endpoint and status."
    );
    let _ = writeln!(o, "# TYPE bert_edge_requests_total counter");
    for ((ep, st), n) in lock(&m.requests).iter() {
        let _ = writeln!(
            o,
            "bert_edge_requests_total{{endpoint=\"{ep}\",status=\"{st}\"}} {n}"
        );
    }
    let _ = writeln!(
        o,
        "# HELP bert_edge_request_duration_seconds Time from receipt to response."
    );
    let _ = writeln!(o, "# TYPE bert_edge_request_duration_seconds histogram");
    for (b, le) in m.buckets.iter().zip(BUCKETS) {
        let _ = writeln!(
            o,
            "bert_edge_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
            b.load(SeqCst)
        );
    }
    let count = m.count.load(SeqCst);
    let _ = writeln!(
        o,
        "bert_edge_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(
        o,
        "bert_edge_request_duration_seconds_sum {}",
        m.sum_us.load(SeqCst) as f64 / 1e6
    );
    let _ = writeln!(o, "bert_edge_request_duration_seconds_count {count}");
    let gauges = [
        (
            "queue_depth",
            "Texts waiting for a worker.",
            s.queued.load(SeqCst) as u64,
            "gauge",
        ),
        (
            "queue_capacity",
            "Size of the inference queue (--queue).",
            s.queue_cap as u64,
            "gauge",
        ),
        ("workers", "Inference workers.", s.workers as u64, "gauge"),
        (
            "workers_busy",
            "Workers running an inference now.",
            s.busy.load(SeqCst) as u64,
            "gauge",
        ),
        (
            "inferences_total",
            "Texts embedded.",
            m.inferences.load(SeqCst),
            "counter",
        ),
        (
            "inference_errors_total",
            "Texts that failed.",
            m.inference_errors.load(SeqCst),
            "counter",
        ),
        (
            "tokens_total",
            "Tokens run through the model (special tokens included).",
            m.tokens.load(SeqCst),
            "counter",
        ),
        (
            "truncated_inputs_total",
            "Texts truncated to the sequence length.",
            m.truncated.load(SeqCst),
            "counter",
        ),
    ];
    for (name, help, v, kind) in gauges {
        let _ = writeln!(
            o,
            "# HELP bert_edge_{name} {help}\n# TYPE bert_edge_{name} {kind}\nbert_edge_{name} {v}"
        );
    }
    let _ = writeln!(
        o,
        "# HELP bert_edge_model_info The model being served.\n# TYPE bert_edge_model_info gauge"
    );
    let _ = writeln!(
        o,
        "bert_edge_model_info{{model=\"{}\",variant=\"{}\",seq=\"{}\",hidden=\"{}\",pooling=\"{}\"}} 1",
        s.model_name.replace(['"', '\\', '\n'], "_"),
        s.variant,
        s.seq,
        s.hidden,
        s.pooling.name()
    );
    o
}
