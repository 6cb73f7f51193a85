//! Matmul kernels chosen by measurement on the machine that runs them (issue #30).
//!
//! tract picks each matmul's kernel by rules (a cost model, CPU-name tiers, bert-edge's
//! vendored changes 2 and 3). [`Tune::Measure`] times, for each distinct matmul geometry of a
//! plan, every kernel tract offers for it on this CPU (packing included: the matmul alone,
//! optimized as the plan optimizes it, run on random operands at the plan's lengths) and keeps
//! the fastest. The result is used at once, written to a cache keyed by CPU, tract version,
//! geometry and lengths, and recorded in an archive by `bert-edge compile --tune`; a later load
//! with [`Tune::Cached`] (the default) reads it back for nothing. How it plugs in: vendored
//! tract-core change 5 (`kernel_selection::choice`) offers every kernel choice to a function
//! of ours while a plan is optimized.

mod cache;
mod cpu;
mod measure;

pub use cpu::cpu_id;

use crate::error::{Error, Result};
use std::path::PathBuf;
use tract_core::internal::*;
use tract_core::ops::einsum::kernel_selection::choice;

/// How a plan's matmul kernels are chosen ([`LoadOptions::tune`](crate::LoadOptions::tune)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Tune {
    /// A measurement for this CPU and tract version, from the archive or the cache, where one
    /// covers a geometry; tract's rules for the rest. Costs nothing extra.
    #[default]
    Cached,
    /// tract's rules only.
    Rules,
    /// Measure now (every candidate of every geometry), use it, and write the cache.
    Measure,
    /// This kernel wherever it can run a matmul, tract's rules elsewhere (tests, experiments).
    Force(String),
}

/// Who chose a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChosenBy {
    /// tract's rules (a guess).
    Rules,
    /// A measurement on this CPU (now, from the cache or from the archive).
    Measured,
    /// [`Tune::Force`].
    Forced,
}

impl std::fmt::Display for ChosenBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChosenBy::Rules => "rules",
            ChosenBy::Measured => "measured",
            ChosenBy::Forced => "forced",
        })
    }
}

/// One matmul geometry of a plan and the kernel it runs ([`crate::Plan::kernels`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelChoice {
    /// Operand types and dims, `?` where symbolic: `I8xU8 m3072 k768 n?`.
    pub geometry: String,
    /// The kernel's name (`avx512vnni_mmm_i32_16x16`).
    pub kernel: String,
    /// Every kernel tract offers for the geometry on this CPU.
    pub candidates: Vec<String>,
    /// Who chose it.
    pub chosen_by: ChosenBy,
    /// Matmuls of the plan with this geometry.
    pub nodes: usize,
}

/// One geometry's measurement: each candidate's time, the median of its calls summed over the
/// lengths measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// As in [`KernelChoice::geometry`].
    pub geometry: String,
    /// Sequence lengths the matmul was run at (the symbol `S`; empty: no symbol).
    pub lengths: Vec<usize>,
    /// (kernel, seconds), fastest first.
    pub seconds: Vec<(String, f64)>,
    /// Candidates left out because their outputs differ from tract's portable (`generic`)
    /// kernel beyond rounding (a kernel that computes f32 in bf16), or failed to run (NaN):
    /// (kernel, relative difference).
    pub inexact: Vec<(String, f64)>,
    /// Candidates not timed to the end: after their longest length they were already over
    /// twice the best total, so cannot win: (kernel, seconds so far, a lower bound).
    pub cut: Vec<(String, f64)>,
}

impl Measurement {
    /// The fastest kernel.
    pub fn best(&self) -> &str {
        self.seconds.first().map_or("", |s| s.0.as_str())
    }
}

/// What [`Tune::Measure`] did ([`crate::Plan::tuning`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// [`cpu_id`] of the machine measured on.
    pub cpu: String,
    /// One entry per geometry.
    pub measured: Vec<Measurement>,
    /// Wall time the measurement took.
    pub seconds: f64,
    /// The cache file written (`None`: no cache directory could be written).
    pub cache_file: Option<PathBuf>,
}

/// The kernels decided before optimizing: (geometry, measured kernel), or one kernel forced
/// everywhere.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    entries: Vec<(String, String)>,
    force_all: Option<String>,
}

impl Table {
    /// The table for `tune`: the archive's record (`recorded`) and the cache where they match
    /// this CPU and tract; `measured` when a measurement was just made.
    pub(crate) fn new(
        tune: &Tune,
        recorded: Option<&str>,
        measured: Option<&Tuning>,
        lengths: &[usize],
    ) -> Table {
        let mut t = Table::default();
        match tune {
            Tune::Rules => {}
            Tune::Force(k) => t.force_all = Some(k.clone()),
            Tune::Measure => {
                for m in measured.map_or(&[][..], |m| &m.measured[..]) {
                    t.add(&m.geometry, m.best());
                }
            }
            Tune::Cached => {
                let cpu = cpu_id();
                let recorded = recorded.map(|r| cache::parse_record(r, &cpu));
                for (g, k) in recorded.unwrap_or_default() {
                    t.add(&g, &k);
                }
                for (g, k) in cache::read_all(&cpu, lengths) {
                    t.add(&g, &k);
                }
            }
        }
        t
    }

    fn add(&mut self, geometry: &str, kernel: &str) {
        if !kernel.is_empty() && !self.entries.iter().any(|e| e.0 == geometry) {
            self.entries
                .push((geometry.to_string(), kernel.to_string()));
        }
    }

    /// `f` (an optimization) with this table deciding each matmul's kernel where it can;
    /// `f`'s result and the plan's kernels by geometry.
    pub(crate) fn apply<R>(&self, f: impl FnOnce() -> R) -> (R, Vec<KernelChoice>) {
        let entries = self.entries.clone();
        let all = self.force_all.clone();
        let force: choice::Force = Box::new(move |geometry, candidates| {
            let want = all.clone().or_else(|| {
                let e = entries.iter().find(|e| e.0 == geometry);
                e.map(|e| e.1.clone())
            });
            want.filter(|k| candidates.contains(k))
        });
        let (r, seen) = choice::with_choices(force, f);
        let by = if self.force_all.is_some() {
            ChosenBy::Forced
        } else {
            ChosenBy::Measured
        };
        (r, summarize(seen, by))
    }
}

/// Choices as `strategize` made them → one [`KernelChoice`] per (geometry, kernel).
fn summarize(seen: Vec<choice::Choice>, forced_by: ChosenBy) -> Vec<KernelChoice> {
    let mut out: Vec<KernelChoice> = vec![];
    for c in seen {
        let chosen_by = if c.forced { forced_by } else { ChosenBy::Rules };
        match out
            .iter_mut()
            .find(|k| k.geometry == c.geometry && k.kernel == c.kernel)
        {
            Some(k) => k.nodes += 1,
            None => out.push(KernelChoice {
                geometry: c.geometry,
                kernel: c.kernel,
                candidates: c.candidates,
                chosen_by,
                nodes: 1,
            }),
        }
    }
    out
}

/// Measures every matmul geometry of `model` (decluttered, as optimization takes it) at
/// `lengths`, writes the cache, and returns the measurement.
pub(crate) fn measure(model: &TypedModel, lengths: &[usize], fold: bool) -> Result<Tuning> {
    let t0 = std::time::Instant::now();
    let measured = measure::all(model, lengths, fold).map_err(Error::Engine)?;
    let cpu = cpu_id();
    let cache_file = cache::write(&cpu, lengths, &measured);
    Ok(Tuning {
        cpu,
        measured,
        seconds: t0.elapsed().as_secs_f64(),
        cache_file,
    })
}

/// The lengths a plan is measured at: none for a plan pinned to N (its dims are concrete),
/// else 8, 32 and 128 where they fit under N, and N when it is below 8.
pub(crate) fn lengths_for(seq: usize, fixed: bool) -> Vec<usize> {
    if fixed {
        return vec![];
    }
    let mut l: Vec<usize> = [8, 32, 128].into_iter().filter(|&l| l <= seq).collect();
    if l.is_empty() {
        l.push(seq);
    }
    l
}

/// The archive property recording a measurement (`bert-edge compile --tune`).
pub(crate) const RECORD_KEY: &str = "bert_edge.kernels";

/// Records a measurement in a model bound for an archive (read back by [`Table::new`] on a
/// machine with the same CPU and tract).
pub(crate) fn record_into(model: &mut TypedModel, t: &Tuning) {
    let text = cache::record(&t.cpu, &t.measured);
    model
        .properties
        .insert(RECORD_KEY.to_string(), Arc::new(tensor0(text)));
}
