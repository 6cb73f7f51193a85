//! Kernels chosen by measurement (issue #30, `bert_edge::tuning`).
//!
//! - Forcing each kernel tract offers (every candidate of every matmul geometry of the tiny
//!   fixtures, on whatever CPU runs the test, qemu's ARM cores included): int8 outputs are
//!   bit-identical to tract's own choice (its kernels are exact), f32 within 1e-5.
//! - `Tune::Measure` measures every geometry, chooses among its candidates, writes the cache;
//!   `Tune::Cached` reads it back without measuring; an archive compiled with a measurement
//!   carries it; `Tune::Rules` ignores both.
//! - A forced kernel that runs nothing is an error, not a silent fallback.

mod common;
use bert_edge::tuning::{ChosenBy, Tune};
use bert_edge::{Encoder, Error, LoadOptions, Plan};
use common::*;
use std::path::Path;
use std::sync::Arc;

const N: usize = 48;

/// Token rows of 6, 18 and 44 real tokens, padded to N.
fn rows() -> Vec<(Vec<i64>, Vec<i64>)> {
    [6usize, 18, 44]
        .iter()
        .map(|&len| {
            let mut ids = vec![101i64];
            ids.extend((0..len as i64 - 2).map(|j| 672 + (j * 7919) % 20428));
            ids.push(102);
            let mut mask = vec![1i64; len];
            ids.resize(N, 0);
            mask.resize(N, 0);
            (ids, mask)
        })
        .collect()
}

fn load(file: &Path, tune: Tune) -> Result<Plan, Error> {
    Plan::load(file, &LoadOptions::new().seq(N).threads(1).tune(tune))
}

/// The hidden states and pooled rows of every row of [`rows`], one after the other.
fn answers(plan: Plan, file: &Path) -> Vec<f32> {
    let plan = Arc::new(plan);
    let embeds = file.to_string_lossy().contains("embeds");
    let table = embeds.then(|| bert_edge::WordEmbeddings::from_onnx(model("ids", "f32")).unwrap());
    let mut enc = Encoder::new(plan).unwrap();
    let mut all = vec![];
    for (ids, mask) in rows() {
        let (h, p) = match &table {
            None => run_ids(&mut enc, &ids, &mask, &[0; N]).unwrap(),
            Some(t) => {
                let mut e = vec![0f32; N * t.hidden_size()];
                t.lookup_into(&ids, &mut e).unwrap();
                run_embeds(&mut enc, &e, &mask, &[0; N]).unwrap()
            }
        };
        all.extend(h);
        all.extend(p);
    }
    assert!(
        all.iter().all(|x| x.is_finite()),
        "{file:?}: non-finite outputs"
    );
    all
}

/// Every kernel any geometry of `plan` could take.
fn candidates(plan: &Plan) -> Vec<String> {
    let mut all: Vec<String> = plan
        .kernels()
        .iter()
        .flat_map(|k| k.candidates.clone())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// The tests that read or write the cache (a measurement writes it) take turns.
static CACHE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// This process's cache directory, set before any load reads it.
fn cache_dir() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bert-edge-tuning-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("BERT_EDGE_CACHE_DIR", &dir);
        dir
    })
    .clone()
}

/// Whether a measurement leaves `kernel` out as inexact (it rounds its operands).
fn measured_inexact(file: &Path, kernel: &str) -> bool {
    let _turn = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache_dir();
    let plan = load(file, Tune::Measure).unwrap();
    let t = plan.tuning().expect("a measurement");
    t.measured
        .iter()
        .any(|m| m.inexact.iter().any(|i| i.0 == kernel))
}

/// Forces each candidate of `file`'s plan in turn: outputs within `tol` of tract's own choice,
/// and bit-identical where the kernel runs only integer matmuls (int8 kernels are exact).
fn each_forced_kernel_matches_the_rules(file: &Path, tol: f32) {
    let rules = load(file, Tune::Rules).unwrap();
    let kernels = candidates(&rules);
    assert!(kernels.len() > 1, "{file:?}: one kernel only: {kernels:?}");
    let integer_only = |k: &String| {
        let mut of = rules.kernels().iter().filter(|c| c.candidates.contains(k));
        of.all(|c| c.geometry.starts_with('I') || c.geometry.starts_with('U'))
    };
    let tols: Vec<f32> = kernels
        .iter()
        .map(|k| if integer_only(k) { 0.0 } else { tol })
        .collect();
    let want = answers(rules, file);
    for (k, &tol) in kernels.iter().zip(&tols) {
        let plan = load(file, Tune::Force(k.clone())).unwrap();
        for c in plan.kernels() {
            if c.candidates.contains(k) {
                assert_eq!((&c.kernel, c.chosen_by), (k, ChosenBy::Forced), "{c:?}");
            }
        }
        let got = answers(plan, file);
        let d = max_abs(&want, &got);
        // A kernel that rounds its operands (AMX's f32 kernel computes in bf16 where the CPU
        // has it) may differ more, but then a measurement must never choose it.
        let allowed = d <= tol || (tol > 0.0 && d.is_finite() && measured_inexact(file, k));
        assert!(
            allowed,
            "{file:?} forced to {k}: max abs {d} (tolerance {tol})"
        );
    }
}

#[test]
fn forcing_any_kernel_keeps_int8_bit_identical() {
    // Integer kernels: 0 difference; the f32 attention's kernels: rounding.
    each_forced_kernel_matches_the_rules(&model("ids", "int8"), 1e-5);
    each_forced_kernel_matches_the_rules(&model("embeds", "int8"), 1e-5);
}

#[test]
fn forcing_any_kernel_keeps_f32_within_rounding() {
    each_forced_kernel_matches_the_rules(&model("ids", "f32"), 1e-5);
}

#[test]
fn a_forced_kernel_that_runs_nothing_is_an_error() {
    let e = load(&model("ids", "int8"), Tune::Force("no_such_kernel".into())).unwrap_err();
    assert!(matches!(e, Error::BadOptions(_)), "{e}");
}

/// Measure → cache → cached load; archive record; rules. The cache directory is this
/// process's (`BERT_EDGE_CACHE_DIR`), set before any load reads it.
#[test]
fn measured_kernels_are_cached_and_recorded_in_archives() {
    let _turn = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache_dir();
    let file = model("ids", "int8");
    let measured = load(&file, Tune::Measure).unwrap();
    let t = measured.tuning().expect("a measurement").clone();
    assert_eq!(
        t.cache_file.as_deref(),
        Some(dir.join("kernels.tsv").as_path())
    );
    assert!(!t.measured.is_empty());
    for m in &t.measured {
        assert!(
            m.seconds.iter().all(|s| s.1.is_finite() && s.1 > 0.0),
            "{m:?}"
        );
        assert!(m.seconds.windows(2).all(|w| w[0].1 <= w[1].1), "{m:?}");
    }
    let chosen = |p: &Plan| -> Vec<(String, String, ChosenBy)> {
        let k = p.kernels().iter();
        k.map(|k| (k.geometry.clone(), k.kernel.clone(), k.chosen_by))
            .collect()
    };
    for k in measured.kernels() {
        let m = t.measured.iter().find(|m| m.geometry == k.geometry);
        assert_eq!(m.map(|m| m.best()), Some(k.kernel.as_str()), "{k:?}");
        assert_eq!(k.chosen_by, ChosenBy::Measured);
    }
    // Cached: the same choices, no measurement.
    let cached = load(&file, Tune::Cached).unwrap();
    assert!(cached.tuning().is_none());
    assert_eq!(chosen(&cached), chosen(&measured));
    // An archive compiled with a measurement carries it, cache or not.
    let archive = dir.join("tuned.nnef.tar");
    let opts = LoadOptions::new().seq(N).tune(Tune::Measure);
    bert_edge::compile(&file, &opts, &archive).unwrap();
    std::fs::remove_file(dir.join("kernels.tsv")).unwrap();
    let from_archive = Plan::load(&archive, &LoadOptions::new()).unwrap();
    let k = from_archive.kernels();
    assert!(
        k.iter().all(|k| k.chosen_by == ChosenBy::Measured),
        "{k:#?}"
    );
    // Rules: tract's own choice everywhere.
    let rules = load(&file, Tune::Rules).unwrap();
    assert!(rules
        .kernels()
        .iter()
        .all(|k| k.chosen_by == ChosenBy::Rules));
}
