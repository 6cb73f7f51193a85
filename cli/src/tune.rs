//! `bert-edge tune`: measures the plan's matmul kernels on this machine (every candidate of
//! every geometry), prints the table, and caches the choice for later loads.

use crate::ModelArgs;
use bert_edge::tuning::Tune;
use bert_edge::Error;

/// `bert-edge tune`: load with [`Tune::Measure`] and print what was measured and chosen.
pub(crate) fn tune(m: &ModelArgs) -> Result<(), Error> {
    let mut m = m.clone();
    m.tune = Tune::Measure;
    let plan = m.load()?;
    let t = plan
        .tuning()
        .ok_or_else(|| Error::BadOptions("the load made no measurement".into()))?;
    println!("cpu: {}", t.cpu);
    for g in &t.measured {
        let at = if g.lengths.is_empty() {
            "its pinned length".to_string()
        } else {
            format!("lengths {:?}", g.lengths)
        };
        println!("{} (median call summed over {at}):", g.geometry);
        let best = g.seconds.first().map_or(f64::NAN, |s| s.1);
        for (k, s) in &g.seconds {
            let mark = if k == g.best() { "  <- chosen" } else { "" };
            println!("  {:>10.3} ms  {:>5.2}x  {k}{mark}", s * 1e3, s / best);
        }
        for (k, s) in &g.cut {
            println!(
                "  {:>10.3} ms+ {:>5.2}x+ {k} (cut: over 2x the best)",
                s * 1e3,
                s / best
            );
        }
        for (k, e) in &g.inexact {
            match e.is_nan() {
                true => println!("  left out: {k}: failed to build or run here"),
                false => println!(
                    "  left out: {k}: differs from tract's portable kernel by {e:.1e} (relative)"
                ),
            }
        }
    }
    println!("plan kernels:");
    for k in plan.kernels() {
        println!(
            "  {} x{}: {} ({})",
            k.geometry, k.nodes, k.kernel, k.chosen_by
        );
    }
    println!("measured in {:.1} s", t.seconds);
    match &t.cache_file {
        Some(f) => println!("cached in {}", f.display()),
        None => println!("not cached: no writable cache directory (set BERT_EDGE_CACHE_DIR)"),
    }
    Ok(())
}
