//! `bert-edge serve`: an HTTP embedding server over one shared plan.
//!
//! HTTP: our own small HTTP/1.1 front (`front.rs`: one `poll(2)` I/O thread over
//! non-blocking sockets; `wire.rs`: parsing with `httparse`, hyper's parser), because
//! tiny_http read every connection on a thread of its own with no read deadline: 1,000
//! connections trickling their body one byte a second starved the service (issue #18).
//! Inference is CPU-bound and blocking, so an async stack (tokio + hyper, several MB and ~100
//! crates) would buy nothing here but size and build time on a Pi. Signals: `signal-hook`.
//!
//! Threads:
//! - I/O (the main thread, `front.rs`): accepts, reads requests under deadlines, answers
//!   probes and 429s itself, hands complete requests to the handlers, writes their answers.
//! - handlers (`http.rs`): check the body (JSON, types, limits), reserve room for all of the
//!   request's texts in the inference queue at once (no room → 429 with `Retry-After`), wait
//!   for the results, build the answer. They never touch a socket.
//! - workers (`pool.rs`, `--workers`, one `Encoder` each over the shared `Arc<Plan>`):
//!   tokenize, run, pool, normalize one text at a time from the bounded queue. A panic in an
//!   inference is caught, answered with 500, and the worker gets a fresh `Encoder`.
//!
//! Shutdown: the first SIGTERM/SIGINT stops listening and closes idle connections; requests
//! already received (or being received) are answered; then handlers and workers drain and
//! are joined; exit 0. A second signal exits at once (status 1).
//!
//! Slow or idle clients: see `front.rs` (deadlines for head and body, a connection cap; no
//! thread per connection). `wire.rs` parses and writes HTTP/1.1 without sockets.

mod front;
mod http;
mod metrics;
mod pool;
pub mod wire;

use crate::ModelArgs;
use bert_edge::heads::{Embedding, Pooling};
use bert_edge::tokenize::BertTokenizer;
use bert_edge::{Encoder, Error, Flavour, Plan};
use metrics::Metrics;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// `serve` options (after the shared model options).
pub struct Options {
    bind: String,
    workers: usize,
    queue: usize,
    pooling: Option<Pooling>,
    normalize: Option<bool>,
    max_items: usize,
    max_text_bytes: usize,
    max_body: usize,
    limits: front::Limits,
    batch_wait: Duration,
    test_delay: Duration,
    test_panic: Option<String>,
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
            pooling: crate::opt_parse(args, "--pooling")?,
            normalize: match (
                args.contains("--normalize"),
                args.contains("--no-normalize"),
            ) {
                (true, true) => {
                    return Err("--normalize and --no-normalize contradict each other".into())
                }
                (on, off) => (on || off).then_some(on),
            },
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
            limits: front::Limits {
                header_timeout: secs(args, "--header-timeout", 5.0)?,
                body_timeout: secs(args, "--body-timeout", 10.0)?,
                max_connections: args
                    .opt_value_from_str("--max-connections")
                    .map_err(s)?
                    .unwrap_or(1024),
            },
            batch_wait: {
                let ms: f64 = args
                    .opt_value_from_str("--batch-wait-ms")
                    .map_err(s)?
                    .unwrap_or(2.0);
                if !(0.0..=1000.0).contains(&ms) {
                    return Err("--batch-wait-ms must be between 0 and 1000".into());
                }
                Duration::from_secs_f64(ms / 1e3)
            },
            // Tests only: a worker panics on this exact text (isolation of a panic in a batch).
            test_panic: args.opt_value_from_str("--test-panic-on").map_err(s)?,
            test_delay: Duration::from_millis(
                args.opt_value_from_str("--test-delay-ms")
                    .map_err(s)?
                    .unwrap_or(0),
            ),
        };
        if o.workers == 0
            || o.queue == 0
            || o.max_items == 0
            || o.max_body == 0
            || o.limits.max_connections == 0
        {
            return Err(
                "--workers, --queue, --max-items, --max-body and --max-connections must be at least 1"
                    .into(),
            );
        }
        Ok(o)
    }
}

/// A duration option in seconds (fractions allowed), at least 0.1 s.
fn secs(
    args: &mut pico_args::Arguments,
    key: &'static str,
    default: f64,
) -> Result<Duration, String> {
    let v: Option<f64> = args.opt_value_from_str(key).map_err(|e| e.to_string())?;
    let v = v.unwrap_or(default);
    if !(0.1..=3600.0).contains(&v) {
        return Err(format!("{key} must be between 0.1 and 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// One text (or text pair) and what to do with it; the worker sends its result to `reply`.
struct Item {
    /// The text, with the embedding's prompt (if any) in front.
    text: String,
    pair: Option<String>,
    work: Work,
    index: usize,
    reply: mpsc::Sender<(usize, Result<Done, Failure>)>,
}

/// What a worker does with a text.
#[derive(Clone, Copy)]
enum Work {
    /// `/embed`, `/v1/embeddings`: the pooled vector, with prompt `prompt` of
    /// [`Shared::prompts`] in front of the text.
    Embed {
        normalize: bool,
        prompt: Option<usize>,
    },
    /// `/classify`, `/ner`, `/fill-mask`: the head's JSON answer.
    Head(crate::tasks::Head),
}

/// A worker's result for one text: the vector (embed) or the head's answer.
struct Done {
    vector: Vec<f32>,
    answer: Option<serde_json::Value>,
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

/// What handlers and workers share.
struct Shared {
    tokenizer: BertTokenizer,
    seq: usize,
    hidden: usize,
    /// `None`: the model has no hidden states or pooler (a classifier): no embeddings.
    embedding: Option<Embedding>,
    /// The model's prompts (sentence-transformers), their token counts, and the default one.
    prompts: Vec<Prompt>,
    default_prompt: Option<usize>,
    task: bert_edge::Task,
    max_items: usize,
    max_text_bytes: usize,
    max_body: usize,
    queue_cap: usize,
    /// Rows per worker call (the plan's batch) and how long a worker waits to fill them.
    batch: usize,
    batch_wait: Duration,
    /// Texts admitted to the inference queue and not yet taken by a worker.
    queued: AtomicUsize,
    busy: AtomicUsize,
    /// Requests handed to the handler pool and not yet answered.
    handling: AtomicUsize,
    workers: usize,
    model_name: String,
    variant: String,
    test_delay: Duration,
    test_panic: Option<String>,
    metrics: Metrics,
}

/// A prompt of the model: its name, its text, and `[CLS]` + its tokens (what a pooling with
/// `include_prompt: false` leaves out).
struct Prompt {
    name: String,
    text: String,
    tokens: usize,
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

type Fail = (u8, String);

fn fail(e: impl ToString) -> Fail {
    (2, e.to_string())
}

/// `bert-edge serve`: loads, listens, serves until SIGTERM/SIGINT, drains, exits 0.
pub fn run(m: &ModelArgs, opts: &Options) -> Result<ExitCode, Fail> {
    let (plan, shared) = setup(m, opts)?;
    let listener = std::net::TcpListener::bind(opts.bind.as_str())
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .map_err(|e| fail(format!("cannot listen on {}: {e}", opts.bind)))?;
    // Signals: the first SIGTERM/SIGINT sets `term` (graceful); a second one exits at once.
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, term.clone())
            .and_then(|_| signal_hook::flag::register(sig, term.clone()))
            .map_err(|e| fail(format!("cannot install signal handlers: {e}")))?;
    }
    let (job_tx, job_rx) = mpsc::sync_channel::<Item>(opts.queue);
    let workers = spawn_workers(&shared, &plan, job_rx, opts.workers)?;
    // More handlers than texts can be admitted (queue + running), so the inference queue's
    // all-or-none reservation is what answers 429 under load, with `--queue` as the real bound
    // on waiting work; the hand-off channel only absorbs the moment between a handler finishing
    // and taking the next request (full → 429 too).
    let handlers_n = (opts.workers + opts.queue + 4).min(256);
    let (req_tx, req_rx) = mpsc::sync_channel::<http::Job>(handlers_n);
    let (answer_tx, answer_rx) = mpsc::channel::<front::Answer>();
    let (wake_rx, wake_tx) = UnixStream::pair().map_err(fail)?;
    wake_rx.set_nonblocking(true).map_err(fail)?;
    let handlers = spawn_handlers(&shared, req_rx, job_tx, answer_tx, wake_tx, handlers_n)?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| opts.bind.clone());
    eprintln!(
        "bert-edge: listening on http://{addr} ({} model, {} workers, queue {}, {}{})",
        shared.task,
        opts.workers,
        opts.queue,
        if shared.batch > 1 {
            format!(
                "batches of up to {} texts within {:.1} ms, ",
                shared.batch,
                shared.batch_wait.as_secs_f64() * 1e3
            )
        } else {
            String::new()
        },
        match (&shared.embedding, crate::tasks::Head::command(shared.task)) {
            (_, Some(c)) => format!("POST /{c}"),
            (Some(_), None) => "POST /embed".to_string(),
            (None, None) => "no endpoint".into(),
        }
    );
    let dispatcher = http::Dispatcher {
        shared: &shared,
        handlers: handlers_n,
        tx: req_tx,
    };
    let mut limits = opts.limits;
    let fds = raise_fd_limit();
    if fds < limits.max_connections as u64 + 64 {
        limits.max_connections = (fds.saturating_sub(64) as usize).max(1);
        eprintln!(
            "bert-edge: --max-connections lowered to {} (open-file limit {fds})",
            limits.max_connections
        );
    }
    let mut front = front::Front::new(&shared, dispatcher, limits, answer_rx, wake_rx);
    front.run(listener, &term);
    eprintln!("bert-edge: shutting down: requests in flight answered");
    drop(front); // closes the handlers' channel
    handlers.into_iter().chain(workers).for_each(|h| {
        let _ = h.join();
    });
    eprintln!("bert-edge: stopped");
    Ok(ExitCode::SUCCESS)
}

/// The model's prompts with their token counts, and the index of the default one.
fn prompts(
    info: &bert_edge::PlanInfo,
    tok: &BertTokenizer,
) -> Result<(Vec<Prompt>, Option<usize>), Error> {
    let Some(st) = &info.sentence else {
        return Ok((Vec::new(), None));
    };
    let mut scratch = bert_edge::Inputs::new(info.seq);
    let mut out = Vec::with_capacity(st.prompts.len());
    for (name, text) in &st.prompts {
        let tokens = tok.encode_into(text, None, &mut scratch)?.tokens;
        out.push(Prompt {
            name: name.clone(),
            text: text.clone(),
            // sentence-transformers' prompt_length: [CLS] + the prompt's pieces.
            tokens: tokens.saturating_sub(1),
        });
    }
    let default = st
        .default_prompt_name
        .as_ref()
        .and_then(|d| out.iter().position(|p| &p.name == d));
    Ok((out, default))
}

/// Tokenizer, plan and the shared state, checked for what the service needs.
fn setup(m: &ModelArgs, opts: &Options) -> Result<(Arc<Plan>, Arc<Shared>), Fail> {
    // Workers × threads = the machine's cores unless --threads says otherwise.
    let mut m = m.clone();
    m.threads
        .get_or_insert((crate::cores() / opts.workers.max(1)).max(1));
    let plan = Arc::new(m.load().map_err(fail)?);
    let tokenizer = BertTokenizer::for_plan(&plan).map_err(fail)?;
    eprintln!(
        "bert-edge: tokenizer: {}",
        plan.tokenizer().map_or("", |t| t.0)
    );
    let info = plan.info().clone();
    if info.flavour != Flavour::Ids {
        return Err(fail(format!(
            "{} is an inputs_embeds model: serve needs an input_ids model (bert_ids_*.onnx)",
            m.model.display()
        )));
    }
    if info.seq < tokenizer.min_len(true) {
        return Err(fail(format!(
            "sequence length {} is too short for [CLS] A [SEP] B [SEP]",
            info.seq
        )));
    }
    if info.batch > 1 && info.variant != bert_edge::Variant::Int8 {
        eprintln!(
            "bert-edge: note: an {} batch runs every row at its longest text's length, unused \
             rows included; on texts of mixed lengths it measured slower than --batch 1 \
             (docs/lengths.md#dynamic-batching)",
            info.variant
        );
    }
    let embedding = crate::encode::embedding_for(&plan, opts.pooling, opts.normalize)?;
    let (prompts, default_prompt) = prompts(&info, &tokenizer).map_err(fail)?;
    let max_items = opts.max_items.min(opts.queue);
    if max_items < opts.max_items {
        eprintln!("bert-edge: --max-items lowered to the queue size, {max_items}");
    }
    let shared = Arc::new(Shared {
        tokenizer,
        seq: info.seq,
        hidden: info.hidden,
        embedding,
        prompts,
        default_prompt,
        task: info.task,
        max_items,
        max_text_bytes: opts.max_text_bytes,
        max_body: opts.max_body,
        queue_cap: opts.queue,
        batch: info.batch,
        batch_wait: opts.batch_wait,
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
        test_panic: opts.test_panic.clone(),
        metrics: Metrics::default(),
    });
    Ok((plan, shared))
}

fn spawn_workers(
    shared: &Arc<Shared>,
    plan: &Arc<Plan>,
    rx: Receiver<Item>,
    n: usize,
) -> Result<Vec<JoinHandle<()>>, Fail> {
    let rx = Arc::new(Mutex::new(rx));
    (0..n)
        .map(|ix| {
            let encoder = Encoder::new(plan.clone()).map_err(fail)?;
            let (shared, rx, plan) = (shared.clone(), rx.clone(), plan.clone());
            std::thread::Builder::new()
                .name(format!("worker-{ix}"))
                .spawn(move || pool::worker(&shared, &rx, &plan, encoder))
                .map_err(|e| fail(format!("cannot start worker: {e}")))
        })
        .collect()
}

/// Idle handlers sleep on the channel; small stacks (serde_json caps JSON nesting at 128).
fn spawn_handlers(
    shared: &Arc<Shared>,
    rx: Receiver<http::Job>,
    jobs: SyncSender<Item>,
    answers: mpsc::Sender<front::Answer>,
    wake: UnixStream,
    n: usize,
) -> Result<Vec<JoinHandle<()>>, Fail> {
    let rx = Arc::new(Mutex::new(rx));
    let wake = Arc::new(wake);
    (0..n)
        .map(|ix| {
            let (shared, rx, jobs) = (shared.clone(), rx.clone(), jobs.clone());
            let (answers, wake) = (answers.clone(), wake.clone());
            std::thread::Builder::new()
                .name(format!("http-{ix}"))
                .stack_size(512 * 1024)
                .spawn(move || http::handler(&shared, &rx, &jobs, &answers, &wake))
                .map_err(|e| fail(format!("cannot start handler: {e}")))
        })
        .collect()
}

/// Raises the soft open-file limit to the hard one (a Pi's default soft limit is 1,024);
/// returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, owned rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is u32 on armv7
    let n = r.rlim_cur as u64;
    n
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The request handling of `serve` without sockets or handler threads: a plan, its workers
/// and one call from request bytes to answer bytes. For the `http_request` fuzz target and
/// tests; the service itself runs the same `wire::parse_request` and `http::process`.
pub struct Harness {
    shared: Arc<Shared>,
    jobs: SyncSender<Item>,
    _workers: Vec<JoinHandle<()>>,
}

impl Harness {
    /// Loads `model` (tokenizer found as `serve` finds it) with `serve`'s default options
    /// plus `args` (e.g. `["--max-body", "4096"]`), and starts one worker.
    pub fn new(model: &Path, args: &[&str]) -> Result<Harness, String> {
        let mut all: Vec<std::ffi::OsString> = vec!["--model".into(), model.into()];
        all.extend(args.iter().map(|a| a.into()));
        all.extend(["--workers".into(), "1".into()]);
        let mut pa = pico_args::Arguments::from_vec(all);
        let m = ModelArgs::parse(&mut pa)?;
        let opts = Options::parse(&mut pa)?;
        let (plan, shared) = setup(&m, &opts).map_err(|(_, e)| e)?;
        let (jobs, rx) = mpsc::sync_channel::<Item>(opts.queue);
        let workers = spawn_workers(&shared, &plan, rx, 1).map_err(|(_, e)| e)?;
        Ok(Harness {
            shared,
            jobs,
            _workers: workers,
        })
    }

    /// The answer's status and bytes for `raw` request bytes; None if they are not a whole
    /// request yet.
    pub fn handle_bytes(&self, raw: &[u8]) -> Option<(u16, Vec<u8>)> {
        match wire::parse_request(raw, self.shared.max_body) {
            Ok(None) => None,
            Err(r) => Some((r.status, wire::error_response(r.status, &r.message))),
            Ok(Some((req, _))) => Some(http::process(&self.shared, &self.jobs, &req)),
        }
    }
}
