//! The default mode: warm-up (done by the caller), `--reps` timed calls, a summary (`--json`
//! for one JSON line).

use super::{cpu_model, percentile, tract_isa, Options};
use crate::alloc_count::{peak_rss_bytes, snapshot};
use crate::ModelArgs;
use bert_edge::{Encoder, Error, Inputs, Outputs};
use std::time::Instant;

/// Times `o.reps` calls of `inputs` and prints the summary (`times`: load and first call, s).
pub(super) fn summary(
    m: &ModelArgs,
    o: &Options,
    enc: &mut Encoder,
    out: &mut Outputs,
    inputs: &Inputs,
    threads: usize,
    (load_s, first_s): (f64, f64),
) -> Result<(), Error> {
    let plan = enc.plan().clone();
    let info = plan.info().clone();
    let (isa, kernels) = tract_isa(&plan);
    let Measured { lat, allocs, bytes } = measure(o.reps, enc, out, inputs)?;
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
        return Ok(());
    }
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
    Ok(())
}

/// What `reps` timed calls measured.
struct Measured {
    /// Latency of each call, ms, sorted.
    lat: Vec<f64>,
    /// Allocations per call (`None` without the counting allocator, feature `count-allocs`).
    allocs: Option<f64>,
    /// Bytes allocated per call (`None` as for `allocs`).
    bytes: Option<f64>,
}

/// Times `reps` calls of `inputs`.
fn measure(
    reps: usize,
    enc: &mut Encoder,
    out: &mut Outputs,
    inputs: &Inputs,
) -> Result<Measured, Error> {
    let mut lat = Vec::with_capacity(reps);
    let (c0, b0) = snapshot();
    for _ in 0..reps {
        let t = Instant::now();
        enc.run(inputs.as_input(), out)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (c1, b1) = snapshot();
    lat.sort_by(f64::total_cmp);
    let counted = cfg!(feature = "count-allocs");
    let allocs = counted.then(|| (c1 - c0) as f64 / reps as f64);
    let bytes = counted.then(|| (b1 - b0) as f64 / reps as f64);
    Ok(Measured { lat, allocs, bytes })
}
