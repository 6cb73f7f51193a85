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
//!   second state over the same optimized model. A plan of any length is profiled at the
//!   first of `--lengths` (rounded up to the granule), else at N.
//!
//! Inputs are deterministic (see `Inputs::new`; `bench/compare.py` regenerates the same
//! ones for onnxruntime): `[CLS] ids… [SEP]` with ids `672 + (i·7919) mod (vocab − 700)`,
//! mask all ones, types all zeros; embeds `((i mod 97) − 48)·1e-3` (f32).
//!
//! `--threads T` (default 1 here): tract's multithreaded matmuls on a T-thread pool per
//! encoder (`LoadOptions::threads`; crate feature `multithread`, on by default).
//!
//! `--lengths 4,8,…`: real lengths to time on the one plan, round-robin call by call (each
//! input: `[CLS] ids… [SEP]` over the first L positions, mask ones there, padding after);
//! prints a line per length. In `--stdin` mode `run L` / `dump L` run one call at real length L.
#![allow(unexpected_cfgs)]

use crate::alloc_count::{peak_rss_bytes, snapshot};
use crate::ModelArgs;
use bert_edge::unstable::{self, tract_core};
use bert_edge::{Encoder, Error, Inputs, Outputs, Plan};
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Instant;
use tract_core::internal::*;

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

/// The model inputs as tensors of the first `l` positions of each row, in the model's input
/// order (for `--profile`).
fn tensors(plan: &Plan, inputs: &Inputs, l: usize) -> Result<TVec<TValue>, Error> {
    let model = unstable::model(plan);
    let info = plan.info();
    let (b, n, h) = (info.batch, info.seq, info.hidden);
    let cut = |v: &[i64]| -> Vec<i64> { v.chunks(n).flat_map(|r| r[..l].to_vec()).collect() };
    let mut v = tvec![];
    for (ix, o) in model.inputs.iter().enumerate() {
        let fact = model.input_fact(ix).map_err(Error::Engine)?;
        let t = match model.node(o.node).name.as_str() {
            "attention_mask" => Tensor::from_shape(&[b, l], &cut(&inputs.attention_mask)),
            "token_type_ids" => Tensor::from_shape(&[b, l], &cut(&inputs.token_type_ids)),
            "input_ids" => Tensor::from_shape(&[b, l], &cut(&inputs.input_ids)),
            _ => {
                let e: Vec<f32> = inputs
                    .inputs_embeds
                    .chunks(n * h)
                    .flat_map(|r| r[..l * h].to_vec())
                    .collect();
                Tensor::from_shape(&[b, l, h], &e)
            }
        }
        .and_then(|t| Ok(t.cast_to_dt(fact.datum_type)?.into_owned()))
        .map_err(Error::Engine)?;
        v.push(t.into_tvalue());
    }
    Ok(v)
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
        return serve_stdin(&plan, &mut enc, &mut out, (load_s, first_s), threads);
    }
    for _ in 0..o.warmup {
        enc.run(inputs.as_input(), &mut out)?;
    }
    if o.profile {
        return profile(&plan, o, threads);
    }
    if !o.lengths.is_empty() {
        return by_length(m, &plan, &mut enc, &mut out, o, threads);
    }
    let (isa, kernels) = tract_isa(&plan);
    let mut lat = Vec::with_capacity(o.reps);
    let (c0, b0) = snapshot();
    for _ in 0..o.reps {
        let t = Instant::now();
        enc.run(inputs.as_input(), &mut out)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (c1, b1) = snapshot();
    lat.sort_by(f64::total_cmp);
    // None without the counting allocator (feature `count-allocs`).
    let counted = cfg!(feature = "count-allocs");
    let allocs = counted.then(|| (c1 - c0) as f64 / o.reps as f64);
    let bytes = counted.then(|| (b1 - b0) as f64 / o.reps as f64);
    let rss = peak_rss_bytes().unwrap_or(0) as f64 / 1e6;
    let (med, p90, min) = (percentile(&lat, 0.5), percentile(&lat, 0.9), lat[0]);
    if o.json {
        let j = serde_json::json!({
            "model": m.model, "flavour": info.flavour.to_string(), "variant": info.variant.to_string(),
            "batch": info.batch, "seq": info.seq, "fixed_length": info.fixed_length,
            "reps": o.reps, "threads": threads,
            "load_s": load_s, "first_run_s": first_s,
            "latency_ms": {"median": med, "p90": p90, "min": min, "samples": lat},
            "allocations_per_call": allocs, "bytes_per_call": bytes, "peak_rss_mb": rss,
            "cpu": cpu_model(), "isa": isa, "kernels": kernels,
        });
        println!("{j}");
    } else {
        println!("model        {}", m.model.display());
        println!(
            "plan         {} {} batch {} seq {}{}",
            info.flavour,
            info.variant,
            info.batch,
            info.seq,
            if info.fixed_length {
                " (fixed length)"
            } else {
                " (any length; timed at N)"
            }
        );
        println!("threads      {threads}");
        println!("cpu          {}", cpu_model());
        println!("tract isa    {isa}; kernels {}", kernels.join(", "));
        println!("load         {load_s:.3} s (first run {first_s:.3} s)");
        println!(
            "latency      median {med:.2} ms, p90 {p90:.2} ms, min {min:.2} ms ({} reps)",
            o.reps
        );
        match (allocs, bytes) {
            (Some(a), Some(b)) => println!(
                "allocations  {a:.1} per call, {:.1} kB per call (all inside tract)",
                b / 1e3
            ),
            _ => println!("allocations  not counted (build with --features count-allocs)"),
        }
        println!("peak RSS     {rss:.1} MB");
    }
    Ok(())
}

/// `--lengths`: latency per real length on the one plan, lengths round-robin call by call.
fn by_length(
    m: &ModelArgs,
    plan: &Plan,
    enc: &mut Encoder,
    out: &mut Outputs,
    o: &Options,
    threads: usize,
) -> Result<(), Error> {
    let info = plan.info();
    if let Some(l) = o.lengths.iter().find(|l| **l > info.seq) {
        return Err(Error::BadInput(format!(
            "--lengths: {l} is over the plan's N = {} (--seq)",
            info.seq
        )));
    }
    let inputs: Vec<Inputs> = o.lengths.iter().map(|l| bench_inputs(plan, *l)).collect();
    for x in &inputs {
        for _ in 0..o.warmup {
            enc.run(x.as_input(), out)?;
        }
    }
    let mut lat = vec![Vec::with_capacity(o.reps); inputs.len()];
    let mut allocs = vec![0u64; inputs.len()];
    let mut ran = vec![0usize; inputs.len()];
    for _ in 0..o.reps {
        for (k, x) in inputs.iter().enumerate() {
            let (c0, _) = snapshot();
            let t = Instant::now();
            enc.run(x.as_input(), out)?;
            lat[k].push(t.elapsed().as_secs_f64() * 1e3);
            allocs[k] += snapshot().0 - c0;
            ran[k] = out.length();
        }
    }
    let (isa, kernels) = tract_isa(plan);
    let counted = cfg!(feature = "count-allocs");
    let rows: Vec<serde_json::Value> = o
        .lengths
        .iter()
        .zip(&mut lat)
        .zip(allocs.iter().zip(&ran))
        .map(|((l, lat), (a, ran))| {
            lat.sort_by(f64::total_cmp);
            serde_json::json!({
                "real_length": l, "run_length": ran,
                "median_ms": percentile(lat, 0.5), "p90_ms": percentile(lat, 0.9),
                "allocations_per_call": counted.then(|| *a as f64 / o.reps as f64),
            })
        })
        .collect();
    if o.json {
        let j = serde_json::json!({
            "model": m.model, "flavour": info.flavour.to_string(), "variant": info.variant.to_string(),
            "batch": info.batch, "seq": info.seq, "fixed_length": info.fixed_length,
            "reps": o.reps, "threads": threads, "cpu": cpu_model(), "isa": isa, "kernels": kernels,
            "lengths": rows, "peak_rss_mb": peak_rss_bytes().unwrap_or(0) as f64 / 1e6,
        });
        println!("{j}");
        return Ok(());
    }
    println!(
        "{} {} {} N={} threads {threads}; cpu {}; tract isa {isa}; kernels {}",
        m.model.display(),
        info.flavour,
        info.variant,
        info.seq,
        cpu_model(),
        kernels.join(", ")
    );
    println!(
        "{:>6} {:>6} {:>10} {:>10} {:>8}",
        "real", "ran at", "median ms", "p90 ms", "allocs"
    );
    for r in &rows {
        println!(
            "{:>6} {:>6} {:>10.3} {:>10.3} {:>8}",
            r["real_length"],
            r["run_length"],
            r["median_ms"].as_f64().unwrap_or(0.0),
            r["p90_ms"].as_f64().unwrap_or(0.0),
            r["allocations_per_call"]
                .as_f64()
                .map_or("-".to_string(), |a| format!("{a:.1}"))
        );
    }
    Ok(())
}

/// `--stdin`: one call per command line, for drivers that interleave engines.
fn serve_stdin(
    plan: &Plan,
    enc: &mut Encoder,
    out: &mut Outputs,
    (load_s, first_s): (f64, f64),
    threads: usize,
) -> Result<(), Error> {
    let info = plan.info();
    let (isa, kernels) = tract_isa(plan);
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let io = |e: std::io::Error| Error::BadInput(format!("stdout: {e}"));
    let ready = serde_json::json!({
        "ready": true, "flavour": info.flavour.to_string(), "variant": info.variant.to_string(),
        "batch": info.batch, "seq": info.seq, "fixed_length": info.fixed_length,
        "hidden": info.hidden, "threads": threads, "load_s": load_s, "first_run_s": first_s, "inputs": "bert-edge bench v1",
        "peak_rss_mb": peak_rss_bytes().unwrap_or(0) as f64 / 1e6,
        "cpu": cpu_model(), "isa": isa, "kernels": kernels,
    });
    writeln!(w, "{ready}").and_then(|_| w.flush()).map_err(io)?;
    // Inputs by real length (N for a bare `run`), made on first use.
    let mut by_len: Vec<(usize, Inputs)> = vec![(info.seq, bench_inputs(plan, info.seq))];
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::BadInput(format!("stdin: {e}")))?;
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("run");
        let len = match words.next().map(str::parse::<usize>) {
            None => Ok(info.seq),
            Some(Ok(l)) if (2..=info.seq).contains(&l) => Ok(l),
            Some(_) => Err(format!("length must be 2..={}", info.seq)),
        };
        let len = match len {
            Ok(l) => l,
            Err(e) => {
                writeln!(w, "{}", serde_json::json!({ "error": e })).map_err(io)?;
                w.flush().map_err(io)?;
                continue;
            }
        };
        if !by_len.iter().any(|(l, _)| *l == len) {
            by_len.push((len, bench_inputs(plan, len)));
        }
        let inputs = &by_len
            .iter()
            .find(|(l, _)| *l == len)
            .expect("just added")
            .1;
        match cmd {
            "run" => {
                let t = Instant::now();
                enc.run(inputs.as_input(), out)?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                writeln!(w, "{ms:.6}").map_err(io)?;
            }
            "dump" => {
                enc.run(inputs.as_input(), out)?;
                // Every output by the graph's name, in the graph's order.
                let outputs: serde_json::Map<String, serde_json::Value> = out
                    .iter()
                    .map(|(spec, v)| (spec.name.clone(), serde_json::json!(v)))
                    .collect();
                let j = serde_json::json!({ "outputs": outputs });
                writeln!(w, "{j}").map_err(io)?;
            }
            "quit" => break,
            other => {
                let j = serde_json::json!({"error": format!("unknown command {other:?}")});
                writeln!(w, "{j}").map_err(io)?;
            }
        }
        w.flush().map_err(io)?;
    }
    Ok(())
}

/// `--profile`: wall time per node over `reps` calls, summed by op kind, by matmul
/// geometry, and the heaviest nodes.
fn profile(plan: &Plan, o: &Options, threads: usize) -> Result<(), Error> {
    let info = plan.info();
    // A plan of any length runs at the first of --lengths (rounded to the granule), else N.
    let real = o.lengths.first().copied().unwrap_or(info.seq).min(info.seq);
    let l = plan.run_length(real);
    let inputs = bench_inputs(plan, real);
    let model = unstable::model(plan).clone();
    let splan = SimplePlan::new(model).map_err(Error::Engine)?;
    let (per_node, total) = time_nodes(&splan, plan, &inputs, l, o.reps)?;
    let reps = o.reps as f64;
    let nodes_sum: f64 = per_node.iter().sum();
    println!(
        "profile: {} {} seq {} (run at {l}) threads {}, {} reps, {:.2} ms/call wall, {:.2} ms/call in nodes",
        info.flavour,
        info.variant,
        info.seq,
        threads,
        o.reps,
        total / reps * 1e3,
        nodes_sum / reps * 1e3
    );
    let (isa, kernels) = tract_isa(plan);
    println!(
        "cpu {}; tract isa {isa}; kernels {}",
        cpu_model(),
        kernels.join(", ")
    );
    let model = splan.model();
    print_by_op(model, &per_node, reps);
    print_by_geometry(model, &per_node, reps, l);
    print_heaviest(model, &per_node, reps);
    Ok(())
}

/// Seconds per node summed over `reps` calls (after one warm-up call), and the wall total.
fn time_nodes(
    splan: &Arc<TypedSimplePlan>,
    plan: &Plan,
    inputs: &Inputs,
    l: usize,
    reps: usize,
) -> Result<(Vec<f64>, f64), Error> {
    let mut state = splan.spawn().map_err(Error::Engine)?;
    let n = splan.model().nodes().len();
    let mut per_node = vec![0f64; n];
    let mut total = 0f64;
    for rep in 0..reps + 1 {
        let tv = tensors(plan, inputs, l)?;
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
        if rep > 0 {
            // The first run of this second state is a warm-up.
            total += t0.elapsed().as_secs_f64();
            per_node.iter_mut().zip(&times).for_each(|(a, t)| *a += t);
        }
    }
    Ok((per_node, total))
}

fn print_by_op(model: &TypedModel, per_node: &[f64], reps: f64) {
    let nodes_sum: f64 = per_node.iter().sum();
    let mut by_op: HashMap<String, (f64, usize)> = HashMap::new();
    for node in model.nodes() {
        let e = by_op.entry(node.op.name().to_string()).or_default();
        e.0 += per_node[node.id];
        e.1 += 1;
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
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
}

/// The CPU this runs on, as `/proc/cpuinfo` names it (x86: "model name"; ARM: "model name"
/// or the "CPU part" number), else the architecture.
fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    field("model name")
        .or_else(|| field("CPU part").map(|p| format!("ARM CPU part {p}")))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// What tract found on this machine and what it chose: the instruction-set rung and features
/// tract-linalg probed (after `TRACT_CPU_ISA`), and the matmul kernels the optimized plan runs.
fn tract_isa(plan: &Plan) -> (String, Vec<String>) {
    let isa = tract_core::internal::tract_linalg::isa::native();
    (format!("{isa:?}"), unstable::matmul_kernels(plan))
}

/// An optimized matmul's geometry and kernels ("m:768 k:3072 n:128 [fma_mmm_f32_16x6]") and
/// its multiply-adds per call (k × every output element, batched products included). In a
/// plan of any length the sequence symbol `S` is taken at `n_max` (what `--profile` runs).
fn matmul_geometry(model: &TypedModel, node: &TypedNode, n_max: usize) -> Option<(String, f64)> {
    use tract_core::ops::matmul::optimized::OptMatMul;
    let op = node.op_as::<OptMatMul>()?;
    let k = op.guess_k()?;
    let kernels: Vec<&str> = op.mmm.iter().map(|m| m.name()).collect();
    let label = format!("m:{} k:{k} n:{} {kernels:?}", op.m(), op.n());
    let mut at = SymbolValues::default();
    if let Some(s) = model.symbols.get("S") {
        at.set(&s, n_max as i64);
    }
    let outputs = model.outlet_fact(OutletId::new(node.id, 0)).ok()?;
    let outputs = outputs
        .shape
        .eval_to_usize(&at)
        .ok()?
        .iter()
        .product::<usize>() as f64;
    Some((label, k.to_i64().ok()? as f64 * outputs))
}

fn print_by_geometry(model: &TypedModel, per_node: &[f64], reps: f64, n_max: usize) {
    let nodes_sum: f64 = per_node.iter().sum();
    let mut by_geometry: Vec<(String, f64, usize, f64)> = Vec::new(); // label, s, nodes, MACs
    for node in model.nodes() {
        let Some((label, macs)) = matmul_geometry(model, node, n_max) else {
            continue;
        };
        match by_geometry.iter_mut().find(|g| g.0 == label) {
            Some(g) => {
                g.1 += per_node[node.id];
                g.2 += 1;
            }
            None => by_geometry.push((label, per_node[node.id], 1, macs)),
        }
    }
    if by_geometry.is_empty() {
        return;
    }
    by_geometry.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("matmuls by geometry (GMAC/s = multiply-adds per second inside the op):");
    println!(
        "{:>10} {:>6} {:>6} {:>8}  geometry",
        "ms/call", "%", "nodes", "GMAC/s"
    );
    for (label, t, count, macs) in &by_geometry {
        println!(
            "{:>10.3} {:>6.1} {:>6} {:>8.1}  {label}",
            t / reps * 1e3,
            100.0 * t / nodes_sum,
            count,
            macs * *count as f64 * reps / t / 1e9
        );
    }
}

fn print_heaviest(model: &TypedModel, per_node: &[f64], reps: f64) {
    let nodes_sum: f64 = per_node.iter().sum();
    let mut heavy: Vec<usize> = (0..per_node.len()).collect();
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
}
