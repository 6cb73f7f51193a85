//! `bert-edge bench`: load time, latency percentiles, allocations per call, peak RSS.
//!
//! A measurement program, not an assertion: for speed *ratios* against onnxruntime use
//! `bench/compare.py`, which runs both side by side through `--stdin` mode.
//!
//! Modes, one file each:
//! - default (`summary.rs`): warm-up, `--reps` timed calls, a summary (`--json` for one JSON
//!   line).
//! - `--stdin` (`stdin.rs`): load once, run one (untimed) first call, print one JSON "ready"
//!   line, then one command per stdin line, one answer line each (stdout flushed after every
//!   line): `run` (or an empty line) → one call, answers its latency in milliseconds
//!   (`12.345`); `dump` → one call, answers `{"outputs": {NAME: [...], …}}` (every output by
//!   the graph's name); `quit` (or EOF) → exits. A driver can thus interleave calls with
//!   another engine call by call.
//! - `--profile` (`profile.rs`): per-node wall time over `--reps` calls (after warm-up),
//!   summed by op kind and listed for the heaviest nodes; through tract's
//!   `run_plan_with_eval`, on a second state over the same optimized model. A plan of any
//!   length is profiled at the first of `--lengths` (rounded up to the granule), else at N.
//! - `--lengths 4,8,…` (`lengths.rs`): real lengths to time on the one plan, round-robin call
//!   by call (each input: `[CLS] ids… [SEP]` over the first L positions, mask ones there,
//!   padding after); prints a line per length. In `--stdin` mode `run L` / `dump L` run one
//!   call at real length L.
//!
//! Inputs are deterministic (see `bench_inputs`; `bench/compare.py` regenerates the same
//! ones for onnxruntime): `[CLS] ids… [SEP]` with ids `672 + (i·7919) mod (vocab − 700)`,
//! mask all ones, types all zeros; embeds `((i mod 97) − 48)·1e-3` (f32).
//!
//! `--threads T` (default 1 here): tract's multithreaded matmuls on a T-thread pool per
//! encoder (`LoadOptions::threads`; crate feature `multithread`, on by default).
#![allow(unexpected_cfgs)]

mod lengths;
mod profile;
mod stdin;
mod summary;

use crate::ModelArgs;
use bert_edge::unstable::tract_core;
use bert_edge::{Encoder, Error, Inputs, Plan};
use std::sync::Arc;
use std::time::Instant;

pub struct Options {
    reps: usize,
    warmup: usize,
    json: bool,
    stdin: bool,
    profile: bool,
    lengths: Vec<usize>,
}

impl Options {
    pub fn parse(args: &mut pico_args::Arguments) -> Result<Self, String> {
        let reps = args
            .opt_value_from_str("--reps")
            .map_err(|e| e.to_string())?
            .unwrap_or(20);
        let warmup = args
            .opt_value_from_str("--warmup")
            .map_err(|e| e.to_string())?
            .unwrap_or(2);
        let lengths: Option<String> = args
            .opt_value_from_str("--lengths")
            .map_err(|e| e.to_string())?;
        let lengths = match lengths {
            None => Vec::new(),
            Some(l) => l
                .split(',')
                .map(|x| match x.trim().parse::<usize>() {
                    Ok(n) if n >= 2 => Ok(n),
                    _ => Err(format!(
                        "--lengths: {x:?} is not a length ≥ 2 ([CLS] and [SEP])"
                    )),
                })
                .collect::<Result<_, _>>()?,
        };
        if reps == 0 {
            return Err("--reps must be at least 1".into());
        }
        Ok(Options {
            reps,
            warmup,
            lengths,
            json: args.contains("--json"),
            stdin: args.contains("--stdin"),
            profile: args.contains("--profile"),
        })
    }
}

/// Installs a `threads`-thread tract executor for the whole process (`--profile` runs its own
/// tract state, outside the encoder's pool).
#[cfg(feature = "multithread")]
fn set_threads(threads: usize) -> Result<(), Error> {
    use tract_core::prelude::multithread::{set_default_executor, Executor};
    if threads > 1 {
        set_default_executor(Executor::multithread(threads));
    }
    Ok(())
}

#[cfg(not(feature = "multithread"))]
fn set_threads(threads: usize) -> Result<(), Error> {
    if threads > 1 {
        return Err(Error::BadOptions(format!(
            "--threads {threads}: this build has no multithreaded tract executor (build with \
             --features multithread, see bench/README.md)"
        )));
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let ix = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[ix]
}

/// The deterministic input of `plan` at real length `len` (≤ N): `[CLS] ids… [SEP]` over
/// the first `len` positions of every row, mask ones there, padding after, types all zeros;
/// for an embeds plan the embeddings `((i mod 97) − 48)·1e-3` (`i` over the rows of `len`
/// positions, as bench/compare.py makes them for onnxruntime at that length).
fn bench_inputs(plan: &Plan, len: usize) -> Inputs {
    let info = plan.info();
    let (n, h) = (info.seq, info.hidden);
    let len = len.clamp(2, n);
    let mut inputs = plan.inputs();
    let vocab = info.vocab_size.unwrap_or(21128) as i64;
    for (r, row) in inputs.input_ids.chunks_mut(n).enumerate() {
        for (j, id) in row[..len].iter_mut().enumerate() {
            let i = (r * len + j) as i64;
            *id = 672 + (i * 7919) % (vocab - 700);
        }
        row[0] = 101;
        row[len - 1] = 102;
    }
    for row in inputs.attention_mask.chunks_mut(n) {
        row[..len].fill(1);
    }
    let mut k = 0usize;
    for row in inputs.inputs_embeds.chunks_mut(n * h) {
        for e in &mut row[..len * h] {
            *e = ((k % 97) as f32 - 48.0) * 1e-3;
            k += 1;
        }
    }
    inputs
}

pub fn run(m: &ModelArgs, o: &Options) -> Result<(), Error> {
    let threads = m.threads.unwrap_or(1);
    let mut m = m.clone();
    m.threads = Some(threads);
    let m = &m;
    if o.profile {
        set_threads(threads)?;
    }
    let t0 = Instant::now();
    let plan = Arc::new(m.load()?);
    let load_s = t0.elapsed().as_secs_f64();
    let info = plan.info().clone();
    let mut enc = Encoder::new(plan.clone())?;
    let (inputs, mut out) = (bench_inputs(&plan, info.seq), plan.outputs());
    let t1 = Instant::now();
    enc.run(inputs.as_input(), &mut out)?;
    let first_s = t1.elapsed().as_secs_f64();
    if o.stdin {
        return stdin::serve_stdin(&plan, &mut enc, &mut out, (load_s, first_s), threads);
    }
    for _ in 0..o.warmup {
        enc.run(inputs.as_input(), &mut out)?;
    }
    if o.profile {
        return profile::profile(&plan, o, threads);
    }
    if !o.lengths.is_empty() {
        return lengths::by_length(m, &plan, &mut enc, &mut out, o, threads);
    }
    summary::summary(
        m,
        o,
        &mut enc,
        &mut out,
        &inputs,
        threads,
        (load_s, first_s),
    )
}

/// The CPU, precisely ([`bert_edge::tuning::cpu_id`]).
fn cpu_model() -> String {
    bert_edge::tuning::cpu_id()
}

/// What tract found on this machine and what it chose: the instruction-set rung and features
/// tract-linalg probed (after `TRACT_CPU_ISA`), and the matmul kernels the optimized plan runs.
fn tract_isa(plan: &Plan) -> (String, Vec<String>) {
    let isa = tract_core::internal::tract_linalg::isa::native();
    let mut kernels: Vec<String> = vec![];
    for k in plan.kernels() {
        let named = format!("{} ({})", k.kernel, k.chosen_by);
        if !kernels.contains(&named) {
            kernels.push(named);
        }
    }
    (format!("{isa:?}"), kernels)
}
