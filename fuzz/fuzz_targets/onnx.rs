//! Target 5: mutated ONNX protobufs (the tiny fixtures as seeds) → the ONNX importer's checks
//! and tract's import (host side), through `Plan::load`.
#![no_main]
use bert_edge::{LoadOptions, Plan};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
const TARGET: &str = "onnx";

fuzz_target!(|data: &[u8]| {
    common::init(TARGET);
    let path = common::scratch("model.onnx", data);
    let r = Plan::load(&path, &LoadOptions::new().seq(8));
    common::check(&r);
});
