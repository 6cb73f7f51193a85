//! `--lengths`: latency per real length on the one plan, lengths round-robin call by call.

use super::{bench_inputs, cpu_model, percentile, tract_isa, Options};
use crate::alloc_count::{peak_rss_bytes, snapshot};
use crate::ModelArgs;
use bert_edge::{Encoder, Error, Inputs, Outputs, Plan, PlanInfo};
use std::time::Instant;

/// `--lengths`: latency per real length on the one plan, lengths round-robin call by call.
pub(super) fn by_length(
    m: &ModelArgs,
    plan: &Plan,
    enc: &mut Encoder,
    out: &mut Outputs,
    o: &Options,
    threads: usize,
) -> Result<(), Error> {
    let info = plan.info();
    if let Some(l) = o.lengths.iter().find(|l| **l > info.seq) {
        return Err(Error::BadOptions(format!(
            "--lengths: {l} is over the plan's N = {} (--seq)",
            info.seq
        )));
    }
    let inputs: Vec<Inputs> = o.lengths.iter().map(|l| bench_inputs(plan, *l)).collect();
    let Timings {
        mut lat,
        allocs,
        ran,
    } = time_lengths(enc, out, &inputs, o)?;
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
    print_table(m, info, threads, (&isa, &kernels), &rows);
    Ok(())
}

/// Per input of `--lengths`: what its calls measured.
struct Timings {
    /// Latency of each call, ms.
    lat: Vec<Vec<f64>>,
    /// Allocations counted over all the calls.
    allocs: Vec<u64>,
    /// The length the calls ran at.
    ran: Vec<usize>,
}

/// Warm-up, then `o.reps` rounds of one call per input.
fn time_lengths(
    enc: &mut Encoder,
    out: &mut Outputs,
    inputs: &[Inputs],
    o: &Options,
) -> Result<Timings, Error> {
    for x in inputs {
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
    Ok(Timings { lat, allocs, ran })
}

/// The text form: a header line, then one line per length.
fn print_table(
    m: &ModelArgs,
    info: &PlanInfo,
    threads: usize,
    (isa, kernels): (&str, &[String]),
    rows: &[serde_json::Value],
) {
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
    for r in rows {
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
}
