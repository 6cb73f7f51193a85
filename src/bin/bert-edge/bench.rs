//! `bert-edge bench`: load time, latency percentiles, allocations per call, peak RSS.
//!
//! A measurement program, not an assertion: for speed *ratios* against onnxruntime use
//! `bench/compare.py`, which runs both side by side through `--stdin` mode.
//!
//! Modes:
//! - default: warm-up, `--reps` timed calls, a summary (`--json` for one JSON line).
//! - `--stdin`: load once, run one (untimed) first call, print one JSON "ready" line, then
//!   one command per stdin line, one answer line each (stdout flushed after every line):
//!   `run` (or an empty line) → one call, answers its latency in milliseconds (`12.345`);
//!   `dump` → one call, answers `{"hidden": [...], "pooled": [...]}`; `quit` (or EOF) → exits.
//!   A driver can thus interleave calls with another engine call by call.
//! - `--profile`: per-node wall time over `--reps` calls (after warm-up), summed by op
//!   kind and listed for the heaviest nodes; through tract's `run_plan_with_eval`, on a
//!   second state over the same optimized model.
//!
//! Inputs are deterministic (see `Inputs::new`; `bench/compare.py` regenerates the same
//! ones for onnxruntime): `[CLS] ids… [SEP]` with ids `672 + (i·7919) mod (vocab − 700)`,
//! mask all ones, types all zeros; embeds `((i mod 97) − 48)·1e-3` (f32).
//!
//! `--threads T`: tract's multithreaded matmul executor with a T-thread pool. Needs
//! tract-linalg's `multithread-mm` feature, i.e. a build with the crate feature
//! `multithread` (see bench/README.md); without it only `--threads 1` is accepted.
#![allow(unexpected_cfgs)]

use crate::ModelArgs;
use bert_edge::alloc_count::{peak_rss_bytes, snapshot};
use bert_edge::{Encoder, Error, Flavour, Plan};
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Instant;

pub struct Options {
    reps: usize,
    warmup: usize,
    json: bool,
    stdin: bool,
    profile: bool,
    threads: usize,
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
        let threads = args
            .opt_value_from_str("--threads")
            .map_err(|e| e.to_string())?
            .unwrap_or(1);
        if reps == 0 {
            return Err("--reps must be at least 1".into());
        }
        if threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        Ok(Options {
            reps,
            warmup,
            threads,
            json: args.contains("--json"),
            stdin: args.contains("--stdin"),
            profile: args.contains("--profile"),
        })
    }
}

/// Installs a `threads`-thread tract executor for the whole process.
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
        return Err(Error::BadInput(format!(
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

/// The deterministic inputs and the output buffers of one plan.
struct Inputs {
    flavour: Flavour,
    ids: Vec<i64>,
    mask: Vec<i64>,
    types: Vec<i64>,
    embeds: Vec<f32>,
    hidden: Vec<f32>,
    pooled: Vec<f32>,
}

impl Inputs {
    fn new(plan: &Plan) -> Inputs {
        let info = plan.info();
        let n = plan.tokens_len();
        // A deterministic, valid input: [CLS] ids… [SEP] over the whole length.
        let vocab = info.vocab_size.unwrap_or(21128) as i64;
        let mut ids: Vec<i64> = (0..n as i64)
            .map(|i| 672 + (i * 7919) % (vocab - 700))
            .collect();
        for row in ids.chunks_mut(info.seq) {
            row[0] = 101;
            row[info.seq - 1] = 102;
        }
        let embeds: Vec<f32> = (0..plan.hidden_len())
            .map(|i| ((i % 97) as f32 - 48.0) * 1e-3)
            .collect();
        Inputs {
            flavour: info.flavour,
            ids,
            mask: vec![1i64; n],
            types: vec![0i64; n],
            embeds,
            hidden: vec![0f32; plan.hidden_len()],
            pooled: vec![0f32; plan.pooled_len()],
        }
    }

    fn call(&mut self, enc: &mut Encoder) -> Result<(), Error> {
        let Inputs {
            flavour,
            ids,
            mask,
            types,
            embeds,
            hidden,
            pooled,
        } = self;
        match flavour {
            Flavour::Ids => enc.run_ids(ids, mask, types, hidden, pooled),
            Flavour::Embeds => enc.run_embeds(embeds, mask, types, hidden, pooled),
        }
    }

    /// The model inputs as tensors, in the model's input order (for `--profile`).
    fn tensors(
        &self,
        plan: &Plan,
    ) -> Result<tract_core::prelude::TVec<tract_core::prelude::TValue>, Error> {
        use tract_core::prelude::*;
        let model = plan.model();
        let info = plan.info();
        let (b, s) = (info.batch, info.seq);
        let mut v = tvec![];
        for (ix, o) in model.inputs.iter().enumerate() {
            let name = model.node(o.node).name.as_str();
            let fact = model.input_fact(ix).map_err(Error::Engine)?;
            let t = match name {
                "attention_mask" => {
                    tract_ndarray::Array2::from_shape_vec((b, s), self.mask.clone())
                        .map(Tensor::from)
                }
                "token_type_ids" => {
                    tract_ndarray::Array2::from_shape_vec((b, s), self.types.clone())
                        .map(Tensor::from)
                }
                "input_ids" => tract_ndarray::Array2::from_shape_vec((b, s), self.ids.clone())
                    .map(Tensor::from),
                _ => {
                    tract_ndarray::Array3::from_shape_vec((b, s, info.hidden), self.embeds.clone())
                        .map(Tensor::from)
                }
            }
            .map_err(|e| Error::BadInput(e.to_string()))?;
            let t = t
                .cast_to_dt(fact.datum_type)
                .map_err(Error::Engine)?
                .into_owned();
            v.push(t.into_tvalue());
        }
        Ok(v)
    }
}

pub fn run(m: &ModelArgs, o: &Options) -> Result<(), Error> {
    set_threads(o.threads)?;
    let t0 = Instant::now();
    let plan = Arc::new(m.load()?);
    let load_s = t0.elapsed().as_secs_f64();
    let info = plan.info().clone();
    let mut enc = Encoder::new(plan.clone())?;
    let mut inputs = Inputs::new(&plan);
    let t1 = Instant::now();
    inputs.call(&mut enc)?;
    let first_s = t1.elapsed().as_secs_f64();
    if o.stdin {
        return serve_stdin(&plan, &mut enc, &mut inputs, load_s, first_s, o.threads);
    }
    for _ in 0..o.warmup {
        inputs.call(&mut enc)?;
    }
    if o.profile {
        return profile(&plan, &inputs, o);
    }
    let mut lat = Vec::with_capacity(o.reps);
    let (c0, b0) = snapshot();
    for _ in 0..o.reps {
        let t = Instant::now();
        inputs.call(&mut enc)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (c1, b1) = snapshot();
    lat.sort_by(f64::total_cmp);
    let allocs = (c1 - c0) as f64 / o.reps as f64;
    let bytes = (b1 - b0) as f64 / o.reps as f64;
    let rss = peak_rss_bytes().unwrap_or(0) as f64 / 1e6;
    let (med, p90, min) = (percentile(&lat, 0.5), percentile(&lat, 0.9), lat[0]);
    if o.json {
        let j = serde_json::json!({
            "model": m.model, "flavour": info.flavour.to_string(), "variant": info.variant.to_string(),
            "batch": info.batch, "seq": info.seq, "reps": o.reps, "threads": o.threads,
            "load_s": load_s, "first_run_s": first_s,
            "latency_ms": {"median": med, "p90": p90, "min": min, "samples": lat},
            "allocations_per_call": allocs, "bytes_per_call": bytes, "peak_rss_mb": rss,
        });
        println!("{j}");
    } else {
        println!("model        {}", m.model.display());
        println!(
            "plan         {} {} batch {} seq {}",
            info.flavour, info.variant, info.batch, info.seq
        );
        println!("threads      {}", o.threads);
        println!("load         {load_s:.3} s (first run {first_s:.3} s)");
        println!(
            "latency      median {med:.2} ms, p90 {p90:.2} ms, min {min:.2} ms ({} reps)",
            o.reps
        );
        println!(
            "allocations  {allocs:.1} per call, {:.1} kB per call (all inside tract)",
            bytes / 1e3
        );
        println!("peak RSS     {rss:.1} MB");
    }
    Ok(())
}

/// `--stdin`: one call per command line, for drivers that interleave engines.
fn serve_stdin(
    plan: &Plan,
    enc: &mut Encoder,
    inputs: &mut Inputs,
    load_s: f64,
    first_s: f64,
    threads: usize,
) -> Result<(), Error> {
    let info = plan.info();
    let out = std::io::stdout();
    let mut out = out.lock();
    let io = |e: std::io::Error| Error::BadInput(format!("stdout: {e}"));
    let ready = serde_json::json!({
        "ready": true, "flavour": info.flavour.to_string(), "variant": info.variant.to_string(),
        "batch": info.batch, "seq": info.seq, "hidden": info.hidden, "threads": threads,
        "load_s": load_s, "first_run_s": first_s, "inputs": "bert-edge bench v1",
        "peak_rss_mb": peak_rss_bytes().unwrap_or(0) as f64 / 1e6,
    });
    writeln!(out, "{ready}")
        .and_then(|_| out.flush())
        .map_err(io)?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::BadInput(format!("stdin: {e}")))?;
        match line.trim() {
            "" | "run" => {
                let t = Instant::now();
                inputs.call(enc)?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                writeln!(out, "{ms:.6}").map_err(io)?;
            }
            "dump" => {
                inputs.call(enc)?;
                let j = serde_json::json!({"hidden": inputs.hidden, "pooled": inputs.pooled});
                writeln!(out, "{j}").map_err(io)?;
            }
            "quit" => break,
            other => {
                let j = serde_json::json!({"error": format!("unknown command {other:?}")});
                writeln!(out, "{j}").map_err(io)?;
            }
        }
        out.flush().map_err(io)?;
    }
    Ok(())
}

/// `--profile`: wall time per node over `reps` calls, summed by op kind.
fn profile(plan: &Plan, inputs: &Inputs, o: &Options) -> Result<(), Error> {
    use tract_core::internal::*;
    let model = plan.model().clone();
    let splan = SimplePlan::new(model).map_err(Error::Engine)?;
    let mut state = splan.spawn().map_err(Error::Engine)?;
    let n = splan.model().nodes().len();
    let mut per_node = vec![0f64; n];
    let mut total = 0f64;
    for rep in 0..o.reps + 1 {
        let tv = inputs.tensors(plan)?;
        let mut times = vec![0f64; n];
        let t0 = Instant::now();
        state
            .run_plan_with_eval(tv, |ctx, st, node, inp| {
                let t = Instant::now();
                let r = tract_core::plan::eval(ctx, st, node, inp);
                times[node.id] += t.elapsed().as_secs_f64();
                r
            })
            .map_err(Error::Engine)?;
        let el = t0.elapsed().as_secs_f64();
        if rep > 0 {
            // The first run of this second state is a warm-up.
            total += el;
            per_node.iter_mut().zip(&times).for_each(|(a, t)| *a += t);
        }
    }
    let reps = o.reps as f64;
    let model = splan.model();
    let mut by_op: HashMap<String, (f64, usize)> = HashMap::new();
    for node in model.nodes() {
        let e = by_op.entry(node.op.name().to_string()).or_default();
        e.0 += per_node[node.id];
        e.1 += 1;
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    let nodes_sum: f64 = per_node.iter().sum();
    let info = plan.info();
    println!(
        "profile: {} {} seq {} threads {}, {} reps, {:.2} ms/call wall, {:.2} ms/call in nodes",
        info.flavour,
        info.variant,
        info.seq,
        o.threads,
        o.reps,
        total / reps * 1e3,
        nodes_sum / reps * 1e3
    );
    println!("{:>10} {:>6} {:>6}  op", "ms/call", "%", "nodes");
    for (op, (t, count)) in &ops {
        if *t / reps * 1e3 < 0.005 {
            continue;
        }
        println!(
            "{:>10.3} {:>6.1} {:>6}  {op}",
            t / reps * 1e3,
            100.0 * t / nodes_sum,
            count
        );
    }
    // Matmuls grouped by geometry and kernel ("Mult: m:768 k:3072 n:128 with [fma_mmm_f32_16x6]"
    // in tract's op info), with the multiply-add rate each reaches: which shapes are slow.
    let mut by_geometry: Vec<(String, f64, usize, f64)> = Vec::new(); // line, s, nodes, MACs
    for node in model.nodes() {
        let info = node.op.info().unwrap_or_default();
        let Some(line) = info.iter().find(|l| l.trim_start().starts_with("Mult: m:")) else {
            continue;
        };
        let line = line.trim().to_string();
        // multiply-adds = k × every output element (batched attention products included).
        let k: Option<f64> = line
            .split(" k:")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok());
        let outputs: Option<f64> =
            model
                .outlet_fact(OutletId::new(node.id, 0))
                .ok()
                .and_then(|f| {
                    f.shape
                        .as_concrete()
                        .map(|s| s.iter().product::<usize>() as f64)
                });
        let (Some(k), Some(outputs)) = (k, outputs) else {
            continue;
        };
        let macs = k * outputs;
        match by_geometry.iter_mut().find(|g| g.0 == line) {
            Some(g) => {
                g.1 += per_node[node.id];
                g.2 += 1;
            }
            None => by_geometry.push((line, per_node[node.id], 1, macs)),
        }
    }
    if !by_geometry.is_empty() {
        by_geometry.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("matmuls by geometry (GMAC/s = multiply-adds per second inside the op):");
        println!(
            "{:>10} {:>6} {:>6} {:>8}  geometry",
            "ms/call", "%", "nodes", "GMAC/s"
        );
        for (line, t, count, macs) in &by_geometry {
            println!(
                "{:>10.3} {:>6.1} {:>6} {:>8.1}  {line}",
                t / reps * 1e3,
                100.0 * t / nodes_sum,
                count,
                macs * *count as f64 * reps / t / 1e9
            );
        }
    }
    let mut heavy: Vec<usize> = (0..n).collect();
    heavy.sort_by(|a, b| per_node[*b].total_cmp(&per_node[*a]));
    println!("heaviest nodes:");
    for &id in heavy.iter().take(25) {
        let node = model.node(id);
        let fact = model
            .outlet_fact(OutletId::new(id, 0))
            .map(|f| format!("{f:?}"))
            .unwrap_or_default();
        println!(
            "{:>10.3} {:>6.1}  #{id} {} ({}) -> {fact}",
            per_node[id] / reps * 1e3,
            100.0 * per_node[id] / nodes_sum,
            node.name,
            node.op.name()
        );
        // The op's own description (kernel choice, geometry), first lines only.
        for line in node.op.info().unwrap_or_default().iter().take(4) {
            let line: String = line.chars().take(160).collect();
            println!("{:>18}{line}", "");
        }
    }
    Ok(())
}
