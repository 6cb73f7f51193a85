//! `/metrics`: request counts and latency histogram, inference counters, queue gauges
//! (Prometheus text format).

use super::lock;
use super::types::{Done, Failure, Shared};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What the I/O thread counts (`front.rs`).
#[derive(Default)]
pub(super) struct FrontCounters {
    pub open: std::sync::atomic::AtomicUsize,
    pub rejected: AtomicU64,
    pub evicted: AtomicU64,
    pub header_timeouts: AtomicU64,
    pub body_timeouts: AtomicU64,
    pub write_timeouts: AtomicU64,
    pub bad_requests: AtomicU64,
}

#[derive(Default)]
pub(super) struct Metrics {
    pub front: FrontCounters,
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
    inferences: AtomicU64,
    inference_errors: AtomicU64,
    batches: AtomicU64,
    tokens: AtomicU64,
    truncated: AtomicU64,
    /// Requests refused by a limit, by the limit's name.
    limits: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// One answered request.
    pub(super) fn record(&self, endpoint: &'static str, status: u16, elapsed: Duration) {
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

    /// A request refused by limit `name` (`max_client_batch_size`, `max_input_length`,
    /// `payload_limit`, `max_concurrent_requests`, `queue`, `unauthorized`, …).
    pub(super) fn limit(&self, name: &'static str) {
        *lock(&self.limits).entry(name).or_default() += 1;
    }

    /// One worker call (dynamic batching: of 1 to `--batch` texts).
    pub(super) fn batch_run(&self) {
        self.batches.fetch_add(1, SeqCst);
    }

    /// One text through a worker.
    pub(super) fn inference_done(&self, res: &Result<Done, Failure>) {
        match res {
            Ok(e) => {
                self.inferences.fetch_add(1, SeqCst);
                self.tokens.fetch_add(e.tokens as u64, SeqCst);
                self.truncated.fetch_add(e.truncated as u64, SeqCst);
            }
            Err(_) => {
                self.inference_errors.fetch_add(1, SeqCst);
            }
        }
    }
}

/// The `/metrics` page.
pub(super) fn metrics_text(s: &Shared) -> String {
    let mut o = String::new();
    let m = &s.counters.metrics;
    write_requests(&mut o, m);
    write_front(&mut o, &m.front);
    write_gauges(&mut o, s);
    let _ = writeln!(
        o,
        "# HELP bert_edge_limit_rejections_total Requests refused by a limit.\n# TYPE bert_edge_limit_rejections_total counter"
    );
    for (name, n) in lock(&m.limits).iter() {
        let _ = writeln!(
            o,
            "bert_edge_limit_rejections_total{{limit=\"{name}\"}} {n}"
        );
    }
    let _ = writeln!(
        o,
        "# HELP bert_edge_model_info The model being served.\n# TYPE bert_edge_model_info gauge"
    );
    let _ = writeln!(
        o,
        "bert_edge_model_info{{model=\"{}\",variant=\"{}\",task=\"{}\",seq=\"{}\",batch=\"{}\",hidden=\"{}\",pooling=\"{}\"}} 1",
        s.model.name.replace(['"', '\\', '\n'], "_"),
        s.model.info.variant,
        s.model.task(),
        s.model.info.seq,
        s.config.batch,
        s.model.info.hidden,
        s.model
            .embedding
            .as_ref()
            .map_or("none".to_string(), |e| e.pooling.to_string())
    );
    let _ = writeln!(
        o,
        "# HELP bert_edge_kernel_info The plan's matmuls by geometry and kernel, and who chose the kernel (measured on this CPU, forced, or tract's rules).\n# TYPE bert_edge_kernel_info gauge"
    );
    for k in &s.model.kernels {
        let _ = writeln!(
            o,
            "bert_edge_kernel_info{{geometry=\"{}\",kernel=\"{}\",chosen_by=\"{}\"}} {}",
            k.geometry, k.kernel, k.chosen_by, k.nodes
        );
    }
    o
}

/// Requests by endpoint and status, and the latency histogram.
fn write_requests(o: &mut String, m: &Metrics) {
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
}

/// One `# HELP`/`# TYPE`/value triple per row: (name, help, value, kind).
fn write_rows(o: &mut String, rows: &[(&str, &str, u64, &str)]) {
    for (name, help, v, kind) in rows {
        let _ = writeln!(
            o,
            "# HELP bert_edge_{name} {help}\n# TYPE bert_edge_{name} {kind}\nbert_edge_{name} {v}"
        );
    }
}

/// The HTTP front: connections and what its limits refused.
fn write_front(o: &mut String, f: &FrontCounters) {
    let rows = [
        ("connections_open", "Open client connections.", f.open.load(SeqCst) as u64, "gauge"),
        (
            "connections_rejected_total",
            "Connections refused with 503 at --max-connections.",
            f.rejected.load(SeqCst),
            "counter",
        ),
        (
            "connections_evicted_total",
            "Slow connections closed at --max-connections to make room for a new one.",
            f.evicted.load(SeqCst),
            "counter",
        ),
        (
            "header_timeouts_total",
            "Connections closed without a complete request head within --header-timeout (slow or idle clients).",
            f.header_timeouts.load(SeqCst),
            "counter",
        ),
        (
            "body_timeouts_total",
            "Requests answered 408: body not complete within --body-timeout.",
            f.body_timeouts.load(SeqCst),
            "counter",
        ),
        (
            "write_timeouts_total",
            "Connections closed because the client did not read its answer in time.",
            f.write_timeouts.load(SeqCst),
            "counter",
        ),
        (
            "bad_requests_total",
            "Requests refused by the HTTP parser (400, 413, 431, 501).",
            f.bad_requests.load(SeqCst),
            "counter",
        ),
    ];
    write_rows(o, &rows);
}

/// Queue and worker gauges, inference counters.
fn write_gauges(o: &mut String, s: &Shared) {
    let m = &s.counters.metrics;
    let load = |a: &std::sync::atomic::AtomicUsize| a.load(SeqCst) as u64;
    let gauges = [
        (
            "queue_depth",
            "Texts waiting for a worker.",
            load(&s.counters.queued),
            "gauge",
        ),
        (
            "queue_capacity",
            "Size of the inference queue (--queue).",
            s.config.queue_cap as u64,
            "gauge",
        ),
        ("workers", "Inference workers.", s.config.workers as u64, "gauge"),
        (
            "workers_busy",
            "Workers running an inference now.",
            load(&s.counters.busy),
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
            "batches_total",
            "Worker calls, each of 1 to --batch texts (texts per call = (inferences_total + inference_errors_total) / batches_total).",
            m.batches.load(SeqCst),
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
    write_rows(o, &gauges);
}
