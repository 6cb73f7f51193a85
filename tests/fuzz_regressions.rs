//! Inputs the fuzzers (fuzz/, scripts/fuzz.sh) found to crash or hang, each kept in
//! tests/data/fuzz/ and checked here to give a clean typed error, with no panic escaping.
//!
//! | file | found by | what happened | now |
//! |---|---|---|---|
//! | onnx-gather-index-panic.onnx | target `onnx`, 30 s | tract-core's `Gather` (const-folded while typing the graph) indexed out of range and panicked | `Error::Engine("loading the model panicked: …")` |

use bert_edge::{Error, LoadOptions, Plan};
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(name)
}

#[test]
fn a_panic_inside_tract_during_a_load_is_an_engine_error() {
    let r = Plan::load(
        data("onnx-gather-index-panic.onnx"),
        &LoadOptions::new().seq(8),
    );
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
