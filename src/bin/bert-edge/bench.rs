//! `bert-edge bench`: load time, latency percentiles, allocations per call, peak RSS.
//!
//! A measurement program, not an assertion: for speed *ratios* against onnxruntime use
//! `bench/compare.py`, which runs both side by side.

use crate::ModelArgs;
use bert_edge::alloc_count::{peak_rss_bytes, snapshot};
use bert_edge::{Encoder, Error, Flavour};
use std::sync::Arc;
use std::time::Instant;

pub struct Options {
    reps: usize,
    warmup: usize,
    json: bool,
}

impl Options {
    pub fn parse(args: &mut pico_args::Arguments) -> Result<Self, String> {
        let reps = args.opt_value_from_str("--reps").map_err(|e| e.to_string())?.unwrap_or(20);
        let warmup = args.opt_value_from_str("--warmup").map_err(|e| e.to_string())?.unwrap_or(2);
        if reps == 0 {
            return Err("--reps must be at least 1".into());
        }
        Ok(Options { reps, warmup, json: args.contains("--json") })
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let ix = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[ix]
}

pub fn run(m: &ModelArgs, o: &Options) -> Result<(), Error> {
    let t0 = Instant::now();
    let plan = Arc::new(m.load()?);
    let load_s = t0.elapsed().as_secs_f64();
    let info = plan.info().clone();
    let mut enc = Encoder::new(plan.clone())?;
    let n = plan.tokens_len();
    // A deterministic, valid input: [CLS] ids… [SEP] over the whole length.
    let vocab = info.vocab_size.unwrap_or(21128) as i64;
    let mut ids: Vec<i64> = (0..n as i64).map(|i| 672 + (i * 7919) % (vocab - 700)).collect();
    for row in ids.chunks_mut(info.seq) {
        row[0] = 101;
        row[info.seq - 1] = 102;
    }
    let mask = vec![1i64; n];
    let types = vec![0i64; n];
    let embeds: Vec<f32> = (0..plan.hidden_len()).map(|i| ((i % 97) as f32 - 48.0) * 1e-3).collect();
    let mut hidden = vec![0f32; plan.hidden_len()];
    let mut pooled = vec![0f32; plan.pooled_len()];
    let mut call = |enc: &mut Encoder| match info.flavour {
        Flavour::Ids => enc.run_ids(&ids, &mask, &types, &mut hidden, &mut pooled),
        Flavour::Embeds => enc.run_embeds(&embeds, &mask, &types, &mut hidden, &mut pooled),
    };
    let t1 = Instant::now();
    call(&mut enc)?;
    let first_s = t1.elapsed().as_secs_f64();
    for _ in 0..o.warmup {
        call(&mut enc)?;
    }
    let mut lat = Vec::with_capacity(o.reps);
    let (c0, b0) = snapshot();
    for _ in 0..o.reps {
        let t = Instant::now();
        call(&mut enc)?;
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
            "batch": info.batch, "seq": info.seq, "reps": o.reps,
            "load_s": load_s, "first_run_s": first_s,
            "latency_ms": {"median": med, "p90": p90, "min": min, "samples": lat},
            "allocations_per_call": allocs, "bytes_per_call": bytes, "peak_rss_mb": rss,
        });
        println!("{j}");
    } else {
        println!("model        {}", m.model.display());
        println!("plan         {} {} batch {} seq {}", info.flavour, info.variant, info.batch, info.seq);
        println!("load         {load_s:.3} s (first run {first_s:.3} s)");
        println!("latency      median {med:.2} ms, p90 {p90:.2} ms, min {min:.2} ms ({} reps)", o.reps);
        println!("allocations  {allocs:.1} per call, {:.1} kB per call (all inside tract)", bytes / 1e3);
        println!("peak RSS     {rss:.1} MB");
    }
    Ok(())
}
