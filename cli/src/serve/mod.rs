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

mod api;
mod conn;
mod front;
mod hooks;
mod http;
mod meta;
mod metrics;
mod openai;
mod options;
mod outputs;
mod pool;
mod request;
mod setup;
mod types;
pub mod wire;

pub use options::Options;

use crate::ModelArgs;
use bert_edge::{Encoder, Plan};
use setup::{setup, Loading};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use types::{Item, Shared};

type Fail = crate::CliError;

fn fail(e: impl ToString) -> Fail {
    crate::CliError::usage(e)
}

/// `bert-edge serve`: listens at once (503 to everything while the model loads, as TEI's
/// `/health` does), loads, serves until SIGTERM/SIGINT, drains, exits 0.
pub fn run(m: &ModelArgs, opts: &Options) -> Result<ExitCode, Fail> {
    let listener = TcpListener::bind(opts.bind.as_str())
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .map_err(|e| fail(format!("cannot listen on {}: {e}", opts.bind)))?;
    let loading = Loading::start(&listener)?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    eprintln!("bert-edge: answering 503 on http://{addr} until the model is loaded");
    opts.hooks.before_load();
    let setup = setup(m, opts);
    loading.stop();
    let (plan, shared) = setup?;
    // Signals: the first SIGTERM/SIGINT sets `term` (graceful); a second one exits at once.
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, term.clone())
            .and_then(|_| signal_hook::flag::register(sig, term.clone()))
            .map_err(|e| fail(format!("cannot install signal handlers: {e}")))?;
    }
    let (job_tx, job_rx) = mpsc::sync_channel::<Item>(opts.queue);
    let workers = spawn_workers(&shared, &plan, job_rx, opts.workers)?;
    let handlers_n = shared.config.handlers;
    let (req_tx, req_rx) = mpsc::sync_channel::<http::Job>(handlers_n);
    let (answer_tx, answer_rx) = mpsc::channel::<front::Answer>();
    let (wake_rx, wake_tx) = UnixStream::pair().map_err(fail)?;
    wake_rx.set_nonblocking(true).map_err(fail)?;
    let handlers = spawn_handlers(&shared, req_rx, job_tx, answer_tx, wake_tx, handlers_n)?;
    announce(&listener, opts, &shared);
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

/// The start-up line: where, what, and which routes.
fn announce(listener: &TcpListener, opts: &Options, shared: &Shared) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| opts.bind.clone());
    let c = &shared.config;
    let batching = if c.batch > 1 {
        format!(
            ", batches of up to {} texts within {:.1} ms",
            c.batch,
            c.batch_wait.as_secs_f64() * 1e3
        )
    } else {
        String::new()
    };
    eprintln!(
        "bert-edge: listening on http://{addr} ({} model, {} workers, queue {}, max input {} \
         tokens{}{batching}{})",
        shared.model.task(),
        c.workers,
        c.queue_cap,
        c.max_input_length,
        if c.auto_truncate {
            " (auto-truncate)"
        } else {
            ""
        },
        if c.api_key.is_some() {
            ", API key required"
        } else {
            ""
        },
    );
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
    /// plus `args` (e.g. `["--payload-limit", "4096"]`), and starts one worker.
    pub fn new(model: &Path, args: &[&str]) -> Result<Harness, String> {
        let mut all: Vec<std::ffi::OsString> = vec!["--model".into(), model.into()];
        all.extend(args.iter().map(|a| a.into()));
        all.extend(["--workers".into(), "1".into()]);
        let mut pa = pico_args::Arguments::from_vec(all);
        let m = ModelArgs::parse(&mut pa)?;
        let opts = Options::parse(&mut pa)?;
        let (plan, shared) = setup(&m, &opts).map_err(|e| e.message)?;
        let (jobs, rx) = mpsc::sync_channel::<Item>(opts.queue);
        let workers = spawn_workers(&shared, &plan, rx, 1).map_err(|e| e.message)?;
        Ok(Harness {
            shared,
            jobs,
            _workers: workers,
        })
    }

    /// The answer's status and bytes for `raw` request bytes; None if they are not a whole
    /// request yet.
    pub fn handle_bytes(&self, raw: &[u8]) -> Option<(u16, Vec<u8>)> {
        match wire::parse_request(raw, self.shared.config.max_body) {
            Ok(None) => None,
            Err(r) => Some((r.status, wire::error_response(r.status, &r.message))),
            Ok(Some((req, _))) => Some(http::process(&self.shared, &self.jobs, &req)),
        }
    }
}
