//! `serve`'s command-line options: TEI's names where TEI has the option
//! (`--max-client-batch-size`, `--max-concurrent-requests`, `--payload-limit`,
//! `--max-input-length`, `--auto-truncate`, `--api-key`), bounded, checked at start.

use super::front::Limits;
use super::hooks::Hooks;
use bert_edge::heads::Pooling;
use std::time::Duration;

/// `serve` options (after the shared model options).
pub struct Options {
    pub(super) bind: String,
    pub(super) workers: usize,
    pub(super) queue: usize,
    pub(super) pooling: Option<Pooling>,
    /// `--normalize` / `--no-normalize`: the pooled vector's normalization (the model's
    /// Normalize module otherwise); requests' own `normalize` default to true, as TEI's.
    pub(super) normalize: Option<bool>,
    pub(super) max_items: usize,
    pub(super) max_text_bytes: usize,
    pub(super) max_body: usize,
    pub(super) max_input_length: Option<usize>,
    pub(super) max_concurrent: Option<usize>,
    pub(super) auto_truncate: bool,
    pub(super) api_key: Option<String>,
    pub(super) served_name: Option<String>,
    pub(super) limits: Limits,
    pub(super) batch_wait: Duration,
    pub(super) hooks: Hooks,
}

type Args = pico_args::Arguments;

fn opt<T: std::str::FromStr>(args: &mut Args, keys: &[&'static str]) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    let mut found = None;
    for k in keys {
        if let Some(v) = args
            .opt_value_from_str::<_, T>(*k)
            .map_err(|e| e.to_string())?
        {
            found = Some(v);
        }
    }
    Ok(found)
}

/// `--api-key KEY` or `--api-key-file FILE` (the first line, trimmed), at least 8 bytes.
fn api_key(args: &mut Args) -> Result<Option<String>, String> {
    let key: Option<String> = opt(args, &["--api-key"])?;
    let file: Option<std::path::PathBuf> = opt(args, &["--api-key-file"])?;
    let key = match (key, file) {
        (Some(_), Some(_)) => return Err("give --api-key or --api-key-file, not both".into()),
        (Some(k), None) => Some(k),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| format!("--api-key-file {}: {e}", f.display()))?;
            Some(text.lines().next().unwrap_or("").trim().to_string())
        }
        (None, None) => None,
    };
    match key {
        Some(k) if k.len() < 8 || k.chars().any(|c| c.is_whitespace() || c.is_control()) => Err(
            "the API key must be at least 8 characters, without spaces or control characters"
                .into(),
        ),
        k => Ok(k),
    }
}

/// A duration option in seconds (fractions allowed), 0.1 s to 1 h.
fn secs(args: &mut Args, key: &'static str, default: f64) -> Result<Duration, String> {
    let v: f64 = opt(args, &[key])?.unwrap_or(default);
    if !(0.1..=3600.0).contains(&v) {
        return Err(format!("{key} must be between 0.1 and 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

impl Options {
    pub fn parse(args: &mut Args) -> Result<Self, String> {
        let cores = crate::cores();
        let normalize = match (
            args.contains("--normalize"),
            args.contains("--no-normalize"),
        ) {
            (true, true) => {
                return Err("--normalize and --no-normalize contradict each other".into())
            }
            (on, off) => (on || off).then_some(on),
        };
        let batch_wait: f64 = opt(args, &["--batch-wait-ms"])?.unwrap_or(2.0);
        if !(0.0..=1000.0).contains(&batch_wait) {
            return Err("--batch-wait-ms must be between 0 and 1000".into());
        }
        let o = Options {
            bind: opt(args, &["--bind"])?.unwrap_or_else(|| "127.0.0.1:8080".into()),
            workers: opt(args, &["--workers"])?.unwrap_or(cores),
            queue: opt(args, &["--queue"])?.unwrap_or(64),
            pooling: crate::opt_parse(args, "--pooling")?,
            normalize,
            max_items: opt(args, &["--max-items", "--max-client-batch-size"])?.unwrap_or(32),
            max_text_bytes: opt(args, &["--max-text-bytes"])?.unwrap_or(16 * 1024),
            max_body: opt(args, &["--max-body", "--payload-limit"])?.unwrap_or(2_000_000),
            max_input_length: opt(args, &["--max-input-length"])?,
            max_concurrent: opt(args, &["--max-concurrent-requests"])?,
            auto_truncate: args.contains("--auto-truncate"),
            api_key: api_key(args)?,
            served_name: opt(args, &["--served-model-name"])?,
            limits: Limits {
                header_timeout: secs(args, "--header-timeout", 5.0)?,
                body_timeout: secs(args, "--body-timeout", 10.0)?,
                max_connections: opt(args, &["--max-connections"])?.unwrap_or(1024),
            },
            batch_wait: Duration::from_secs_f64(batch_wait / 1e3),
            hooks: Hooks::parse(args)?,
        };
        let counts = [
            o.workers,
            o.queue,
            o.max_items,
            o.max_body,
            o.limits.max_connections,
            o.max_input_length.unwrap_or(1),
            o.max_concurrent.unwrap_or(1),
        ];
        if counts.contains(&0) {
            return Err(
                "--workers, --queue, --max-client-batch-size, --payload-limit, \
                 --max-connections, --max-input-length and --max-concurrent-requests must be at \
                 least 1"
                    .into(),
            );
        }
        Ok(o)
    }
}
