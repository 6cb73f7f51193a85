//! Shared test helpers: the committed fixtures and their PyTorch reference outputs.
#![allow(dead_code)]

use bert_edge::{Encoder, Error, F16Compute, Input, LoadOptions, Plan, Variant};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The repository root (the library's package; the CLI's tests live one level down).
pub fn root() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if dir.join("models").is_dir() {
        dir
    } else {
        dir.parent().expect("cli/ has a parent").to_path_buf()
    }
}

/// An ONNX (or archive) file loaded at (seq, batch).
pub fn load(file: &Path, seq: usize, batch: usize) -> Plan {
    Plan::load(file, &LoadOptions::new().seq(seq).batch(batch))
        .unwrap_or_else(|e| panic!("{file:?}: {e}"))
}

/// One call: (last_hidden_state, pooler_output), in outputs sized by the encoder's plan.
pub fn run(enc: &mut Encoder, input: Input) -> Result<(Vec<f32>, Vec<f32>), Error> {
    let mut out = enc.plan().outputs();
    enc.run(input, &mut out)?;
    Ok((
        out.last_hidden_state().expect("hidden states").to_vec(),
        out.pooler_output().expect("pooler output").to_vec(),
    ))
}

/// One call of an ids plan: (last_hidden_state, pooler_output).
pub fn run_ids(
    enc: &mut Encoder,
    ids: &[i64],
    mask: &[i64],
    types: &[i64],
) -> Result<(Vec<f32>, Vec<f32>), Error> {
    let input = Input::Ids {
        input_ids: ids,
        attention_mask: mask,
        token_type_ids: types,
    };
    run(enc, input)
}

/// One call of an embeds plan: (last_hidden_state, pooler_output).
pub fn run_embeds(
    enc: &mut Encoder,
    embeds: &[f32],
    mask: &[i64],
    types: &[i64],
) -> Result<(Vec<f32>, Vec<f32>), Error> {
    let input = Input::Embeds {
        inputs_embeds: embeds,
        attention_mask: mask,
        token_type_ids: types,
    };
    run(enc, input)
}

/// `models/tiny`: 2 layers, hidden 64, the real 21128-word vocabulary (models/export.py).
pub fn tiny() -> PathBuf {
    root().join("models/tiny")
}

pub fn model(flavour: &str, variant: &str) -> PathBuf {
    tiny().join(format!("bert_{flavour}_{variant}.onnx"))
}

#[derive(Deserialize, Debug, Clone)]
pub struct TensorRef {
    pub file: String,
    pub dtype: String,
    pub shape: Vec<usize>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Case {
    pub name: String,
    pub flavour: String,
    pub batch: usize,
    pub seq: usize,
    pub inputs: BTreeMap<String, TensorRef>,
    pub outputs: BTreeMap<String, TensorRef>,
}

#[derive(Deserialize, Debug)]
pub struct Cases {
    pub hidden_size: usize,
    pub vocab_size: usize,
    pub cases: Vec<Case>,
}

/// The reference cases of a task fixture directory (any number).
pub fn task_cases(dir: &Path) -> Cases {
    let text = std::fs::read_to_string(dir.join("refs/cases.json")).expect("refs/cases.json");
    let c: Cases = serde_json::from_str(&text).expect("cases.json parses");
    assert!(!c.cases.is_empty(), "{dir:?}: no reference cases");
    c
}

pub fn cases(dir: &Path) -> Cases {
    let text = std::fs::read_to_string(dir.join("refs/cases.json")).expect("refs/cases.json");
    let c: Cases = serde_json::from_str(&text).expect("cases.json parses");
    assert!(
        c.cases.len() >= 12,
        "expected the full reference set, got {}",
        c.cases.len()
    );
    c
}

fn bytes(dir: &Path, t: &TensorRef) -> Vec<u8> {
    let b = std::fs::read(dir.join("refs").join(&t.file)).expect("reference file");
    let n: usize = t.shape.iter().product();
    let width = if t.dtype == "i64" { 8 } else { 4 };
    assert_eq!(b.len(), n * width, "{} size", t.file);
    b
}

pub fn read_i64(dir: &Path, t: &TensorRef) -> Vec<i64> {
    assert_eq!(t.dtype, "i64");
    bytes(dir, t)
        .chunks(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn read_f32(dir: &Path, t: &TensorRef) -> Vec<f32> {
    assert_eq!(t.dtype, "f32");
    bytes(dir, t)
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Largest absolute difference; NaN (in either side, or ∞ − ∞) makes it NaN, so that every
/// `max_abs(..) <= tol` check fails on it (`f32::max` alone would drop a NaN).
pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared outputs differ in length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |m, d| {
            if m.is_nan() || d.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        })
}

/// Cosine similarity; NaN if either side holds a NaN or is all zeros (fails `>=` checks).
pub fn cos(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared vectors differ in length");
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Mean over vectors of width `w` of the cosine similarity.
pub fn mean_cos(a: &[f32], b: &[f32], w: usize) -> f64 {
    let n = a.len() / w;
    a.chunks(w)
        .zip(b.chunks(w))
        .map(|(x, y)| cos(x, y))
        .sum::<f64>()
        / n as f64
}

/// Minimum over vectors of width `w` of the cosine similarity; NaN if any is NaN.
pub fn min_cos(a: &[f32], b: &[f32], w: usize) -> f64 {
    assert_eq!(a.len(), b.len(), "compared outputs differ in length");
    a.chunks(w)
        .zip(b.chunks(w))
        .map(|(x, y)| cos(x, y))
        .fold(1.0, |m, c| {
            if m.is_nan() || c.is_nan() {
                f64::NAN
            } else {
                m.min(c)
            }
        })
}

/// The rows (of width `w`) of a per-token output at the real tokens of `mask` (batch × seq
/// positions): what a reference can be compared on. Padding positions hold whatever an
/// engine computes there, and a plan of any length writes zeros at and beyond the length it
/// ran at.
pub fn real_rows(x: &[f32], mask: &[i64], w: usize) -> Vec<f32> {
    assert_eq!(x.len(), mask.len() * w, "per-token output vs mask");
    x.chunks(w)
        .zip(mask)
        .filter(|(_, m)| **m != 0)
        .flat_map(|(c, _)| c.iter().copied())
        .collect()
}

/// A plan's outputs against the PyTorch reference of one case.
pub struct Outcome {
    pub hidden_max_abs: f32,
    pub pooled_max_abs: f32,
    pub hidden_cos: f64,
    pub pooled_cos: f64,
}

/// Runs one reference case through `plan`: (last_hidden_state, pooler_output).
pub fn run_plan(plan: Plan, dir: &Path, case: &Case) -> (Vec<f32>, Vec<f32>) {
    let mut enc = Encoder::new(Arc::new(plan)).unwrap();
    let mask = read_i64(dir, &case.inputs["attention_mask"]);
    let types = read_i64(dir, &case.inputs["token_type_ids"]);
    if case.flavour == "ids" {
        let ids = read_i64(dir, &case.inputs["input_ids"]);
        run_ids(&mut enc, &ids, &mask, &types).unwrap()
    } else {
        let emb = read_f32(dir, &case.inputs["inputs_embeds"]);
        run_embeds(&mut enc, &emb, &mask, &types).unwrap()
    }
}

pub fn run_reference_case(
    dir: &Path,
    case: &Case,
    file: &Path,
    variant: Option<Variant>,
) -> Outcome {
    run_reference_case_with(dir, case, file, variant, F16Compute::Auto)
}

pub fn run_reference_case_with(
    dir: &Path,
    case: &Case,
    file: &Path,
    variant: Option<Variant>,
    f16: F16Compute,
) -> Outcome {
    let mut opts = LoadOptions::new()
        .seq(case.seq)
        .batch(case.batch)
        .f16_compute(f16);
    if let Some(v) = variant {
        opts = opts.variant(v);
    }
    let plan = Plan::load(file, &opts).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    let w = plan.info().hidden;
    let (hidden, pooled) = run_plan(plan, dir, case);
    let mask = read_i64(dir, &case.inputs["attention_mask"]);
    let hidden = real_rows(&hidden, &mask, w);
    let want_h = real_rows(&read_f32(dir, &case.outputs["last_hidden_state"]), &mask, w);
    let want_p = read_f32(dir, &case.outputs["pooler_output"]);
    Outcome {
        hidden_max_abs: max_abs(&hidden, &want_h),
        pooled_max_abs: max_abs(&pooled, &want_p),
        hidden_cos: mean_cos(&hidden, &want_h, w),
        pooled_cos: mean_cos(&pooled, &want_p, w),
    }
}

#[test]
fn nan_fails_every_numeric_helper() {
    let good = [1.0f32, 2.0, 3.0, 4.0];
    let nan = [1.0f32, f32::NAN, 3.0, 4.0];
    // What the tests assert (`<=` / `>=`: false for NaN), not its negation (true for NaN).
    let close = |d: f32| d <= 1e-5;
    let aligned = |c: f64| c >= 0.99;
    assert!(max_abs(&good, &good) == 0.0);
    assert!(!close(max_abs(&good, &nan)), "max_abs must not drop a NaN");
    assert!(!close(max_abs(&nan, &good)));
    assert!(
        !close(max_abs(&[f32::NAN; 4], &[f32::NAN; 4])),
        "all-NaN is no match"
    );
    assert!(!aligned(cos(&good, &nan)));
    assert!(
        !aligned(min_cos(&good, &nan, 2)),
        "min_cos must not drop a NaN"
    );
    assert!(!aligned(min_cos(&[f32::NAN; 4], &[f32::NAN; 4], 2)));
    assert!(!aligned(mean_cos(&good, &nan, 2)));
    assert!(
        !aligned(min_cos(&good, &[0.0; 4], 2)),
        "a zero vector has no direction"
    );
}
