//! Inputs the fuzzers (fuzz/, scripts/fuzz.sh) found to crash or hang, each kept in
//! tests/data/fuzz/ and checked here to give a clean typed error, with no panic escaping.
//!
//! | file | found by | what happened | now |
//! |---|---|---|---|
//! | onnx-gather-index-panic.onnx | target `onnx`, 30 s | tract-core's `Gather` (const-folded while typing the graph) indexed out of range and panicked | `Error::Engine("loading the model panicked: …")` |
//! | onnx-gather-axis-panic.onnx | target `onnx`, 20-min run 2026-12-02 | tract-core `gather.rs:83` (const-folded `Gather`) | same |
//! | onnx-gather-range-panic.onnx | same run | tract-core `gather.rs:85`: slice range out of bounds | same |
//! | onnx-gelu-contrib-panic.onnx | same run | tract-onnx `gelu_contrib.rs:119`: a contrib Gelu node without inputs | same |
//! | onnx-missing-key-panic.onnx | same run | tract-onnx `model.rs:187`: "no entry found for key" (a node naming an unknown input) | same |
//! | onnx-smallvec-panic.onnx | same run | smallvec `lib.rs:1538` inside tract's shape code | same |
//! | onnx-permute-axes-panic.onnx | same run | tract-hir `permute_axes.rs:21`: an axis index out of bounds | same |
//!
//! None of these panics escaped: the guard at the crate boundary caught each one. They are
//! kept so that a tract upgrade that turns one into an abort (or a garbage model) is seen.
//! The panics were found with fixed-length plans, where tract folds the graph at the pinned
//! shapes while loading; a plan of any length keeps some of those ops unfolded, so there the
//! same file may load and fail on its first call instead (a typed error), or, at a length where
//! the corrupt op happens to stay in bounds, run: what is checked there is that no panic
//! escapes and no other kind of error comes back.

use bert_edge::{Encoder, Error, LoadOptions, Plan};
use std::path::PathBuf;
use std::sync::Arc;

fn fixed(seq: usize) -> LoadOptions {
    LoadOptions::new().seq(seq).fixed_length(true)
}

/// Loading `path` as a plan of any length, then calls at lengths 3 and 8: typed errors or
/// results, never a panic.
fn any_length_never_panics(path: &std::path::Path) {
    let plan = match Plan::load(path, &LoadOptions::new().seq(8)) {
        Err(Error::Engine(_) | Error::BadModel(_)) => return,
        Err(other) => panic!("{}: unexpected error kind: {other}", path.display()),
        Ok(plan) => Arc::new(plan),
    };
    for len in [3, 8] {
        let r = Encoder::new(plan.clone()).and_then(|mut enc| {
            let mut inputs = plan.inputs();
            inputs.input_ids[..len].fill(2769);
            inputs.attention_mask[..len].fill(1);
            if !inputs.inputs_embeds.is_empty() {
                inputs.inputs_embeds.fill(0.1);
            }
            enc.run(inputs.as_input(), &mut plan.outputs())
        });
        match r {
            Ok(()) | Err(Error::Engine(_) | Error::BadModel(_)) => {}
            Err(other) => panic!("{}: unexpected error kind: {other}", path.display()),
        }
    }
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(name)
}

#[test]
fn a_panic_inside_tract_during_a_load_is_an_engine_error() {
    let r = Plan::load(data("onnx-gather-index-panic.onnx"), &fixed(8));
    match r {
        Err(Error::Engine(e)) => {
            let m = format!("{e:#}");
            assert!(m.contains("loading the model panicked"), "{m}");
        }
        Err(other) => panic!("expected the caught panic as Engine, got {other}"),
        Ok(_) => panic!("the corrupt model loaded"),
    }
    // The process is fine afterwards: a good model still loads and runs.
    let plan = Plan::load(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny/bert_embeds_int8.onnx"),
        &LoadOptions::new().seq(8),
    )
    .unwrap();
    assert_eq!(plan.info().seq, 8);
}

/// Every input committed under tests/data/fuzz/ loads to a typed error (the process goes on);
/// none loads as a model.
#[test]
fn every_committed_fuzz_input_is_a_typed_error() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("onnx" | "tar")
        ) {
            continue;
        }
        let panicked = path.to_string_lossy().contains("-panic");
        any_length_never_panics(&path);
        match Plan::load(&path, &fixed(8)) {
            // Found as panics inside tract: caught, or refused by a check of ours first.
            Err(Error::Engine(e)) if panicked => {
                assert!(
                    format!("{e:#}").contains("panicked"),
                    "{}: {e:#}",
                    path.display()
                );
                n += 1
            }
            Err(Error::Engine(_) | Error::BadModel(_)) => n += 1,
            Err(other) => panic!("{}: unexpected error kind: {other}", path.display()),
            Ok(_) => panic!("{}: a fuzzed input loaded as a model", path.display()),
        }
    }
    assert!(n >= 7, "only {n} inputs found in {}", dir.display());
}
