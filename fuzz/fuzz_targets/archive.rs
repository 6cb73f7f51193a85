//! Target 4: mutated precompiled archives (tar framing, NNEF text, weights, properties,
//! digest) → `Plan::load`. Seeds: tiny archives written by `bert-edge compile`.
#![no_main]
use bert_edge::{LoadOptions, Plan};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
const TARGET: &str = "archive";

fuzz_target!(|data: &[u8]| {
    common::init(TARGET);
    let path = common::scratch("archive.nnef.tar", data);
    let r = Plan::load(&path, &LoadOptions::new());
    common::check(&r);
});
