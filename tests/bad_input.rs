//! Bad input gets a clear, typed error — never a panic, never silent garbage.

mod common;
use bert_edge::translate::Fixes;
use bert_edge::{load_model, load_onnx, Encoder, Error, Flavour, PlanOptions, Variant};
use common::*;
use std::sync::Arc;

fn ids_encoder(seq: usize) -> Encoder {
    Encoder::new(Arc::new(
        load_onnx(model("ids", "f32"), &PlanOptions::new(seq)).unwrap(),
    ))
    .unwrap()
}

fn assert_bad_input<T: std::fmt::Debug>(r: Result<T, Error>, needle: &str) {
    match r {
        Err(Error::BadInput(m)) => assert!(m.contains(needle), "message {m:?} lacks {needle:?}"),
        other => panic!("expected BadInput({needle}), got {other:?}"),
    }
}

fn assert_bad_model<T: std::fmt::Debug>(r: Result<T, Error>, needle: &str) {
    match r {
        Err(Error::BadModel(m)) => assert!(m.contains(needle), "message {m:?} lacks {needle:?}"),
        other => panic!("expected BadModel({needle}), got {other:?}"),
    }
}

const IDS: [i64; 8] = [101, 2769, 4263, 2110, 739, 102, 0, 0];
const MASK: [i64; 8] = [1, 1, 1, 1, 1, 1, 0, 0];
const TYPES: [i64; 8] = [0; 8];

#[test]
fn wrong_buffer_lengths() {
    let mut e = ids_encoder(8);
    let (mut h, mut p) = (vec![0f32; 8 * 64], vec![0f32; 64]);
    assert_bad_input(
        e.run_ids(&IDS[..7], &MASK, &TYPES, &mut h, &mut p),
        "input_ids has 7",
    );
    assert_bad_input(
        e.run_ids(&IDS, &MASK[..5], &TYPES, &mut h, &mut p),
        "attention_mask has 5",
    );
    assert_bad_input(
        e.run_ids(&IDS, &MASK, &[0i64; 9], &mut h, &mut p),
        "token_type_ids has 9",
    );
    assert_bad_input(
        e.run_ids(&IDS, &MASK, &TYPES, &mut h[..10], &mut p),
        "last_hidden_state",
    );
    assert_bad_input(
        e.run_ids(&IDS, &MASK, &TYPES, &mut h, &mut vec![0f32; 768]),
        "pooler_output",
    );
    // and the encoder still works afterwards
    e.run_ids(&IDS, &MASK, &TYPES, &mut h, &mut p).unwrap();
}

#[test]
fn ids_out_of_range() {
    let mut e = ids_encoder(8);
    let (mut h, mut p) = (vec![0f32; 8 * 64], vec![0f32; 64]);
    let mut ids = IDS;
    ids[2] = 21128;
    assert_bad_input(
        e.run_ids(&ids, &MASK, &TYPES, &mut h, &mut p),
        "input_ids[2] = 21128",
    );
    ids[2] = -1;
    assert_bad_input(
        e.run_ids(&ids, &MASK, &TYPES, &mut h, &mut p),
        "input_ids[2] = -1",
    );
    let mut types = TYPES;
    types[1] = 2;
    assert_bad_input(
        e.run_ids(&IDS, &MASK, &types, &mut h, &mut p),
        "token_type_ids[1] = 2",
    );
    let mut mask = MASK;
    mask[0] = 3;
    assert_bad_input(
        e.run_ids(&IDS, &mask, &TYPES, &mut h, &mut p),
        "attention_mask[0] = 3",
    );
    // u32 ids (as the tokenizers crate gives them) go through the same checks
    let big: [u32; 8] = [101, 2769, 4263, 2110, 739, 102, 0, 30000];
    assert_bad_input(
        e.run_ids(&big, &[1u32; 8], &[0u32; 8], &mut h, &mut p),
        "30000",
    );
}

#[test]
fn mask_of_all_zeros_is_an_error() {
    let mut e = ids_encoder(8);
    let (mut h, mut p) = (vec![0f32; 8 * 64], vec![0f32; 64]);
    assert_bad_input(
        e.run_ids(&IDS, &[0i64; 8], &TYPES, &mut h, &mut p),
        "all zeros",
    );
}

#[test]
fn nan_and_inf_in_embeddings() {
    let plan = load_onnx(model("embeds", "f32"), &PlanOptions::new(8)).unwrap();
    let mut e = Encoder::new(Arc::new(plan)).unwrap();
    let (mut h, mut p) = (vec![0f32; 8 * 64], vec![0f32; 64]);
    let mut emb = vec![0.01f32; 8 * 64];
    emb[70] = f32::NAN;
    assert_bad_input(
        e.run_embeds(&emb, &MASK, &TYPES, &mut h, &mut p),
        "inputs_embeds[70] is NaN",
    );
    emb[70] = f32::INFINITY;
    assert_bad_input(e.run_embeds(&emb, &MASK, &TYPES, &mut h, &mut p), "inf");
    assert_bad_input(
        e.run_embeds(&emb[..100], &MASK, &TYPES, &mut h, &mut p),
        "inputs_embeds has 100",
    );
    // wrong entry point for the flavour
    assert_bad_input(e.run_ids(&IDS, &MASK, &TYPES, &mut h, &mut p), "run_embeds");
}

#[test]
fn missing_truncated_and_non_onnx_files() {
    let opts = PlanOptions::new(8);
    assert_bad_model(load_onnx("/nonexistent/bert.onnx", &opts), "cannot read");
    assert_bad_model(
        load_model("/nonexistent/bert.onnx", None, None, None),
        "no model file",
    );
    let dir = std::env::temp_dir().join(format!("bert-edge-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let full = std::fs::read(model("ids", "f32")).unwrap();
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &full[..full.len() / 3]).unwrap();
    assert_bad_model(load_onnx(&truncated, &opts), "not an ONNX model");
    let text = dir.join("text.onnx");
    std::fs::write(&text, "this is not a model\n").unwrap();
    assert_bad_model(load_onnx(&text, &opts), "");
    // A valid ONNX file that is not a BERT export: the tokenizer JSON won't parse; a real
    // ONNX graph with other inputs is rejected by name.
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wrong_variant_flavour_or_hidden_size() {
    let mut o = PlanOptions::new(8).variant(Variant::Int8);
    assert_bad_model(
        load_onnx(model("ids", "f32"), &o),
        "asked for int8, the file is f32",
    );
    o.variant = Some(Variant::F32);
    assert_bad_model(
        load_onnx(model("ids", "int8"), &o),
        "asked for f32, the file is int8",
    );
    let o = PlanOptions::new(8).flavour(Flavour::Embeds);
    assert_bad_model(
        load_onnx(model("ids", "f32"), &o),
        "asked for an embeds graph",
    );
    let mut o = PlanOptions::new(8);
    o.hidden_size = Some(768);
    assert_bad_model(load_onnx(model("ids", "f32"), &o), "hidden size 768");
    assert_bad_input(
        load_onnx(model("ids", "f32"), &PlanOptions::new(513)),
        "512 positions",
    );
    assert_bad_input(
        load_onnx(model("ids", "f32"), &PlanOptions::new(0)),
        "at least 1",
    );
}

#[test]
fn variant_and_flavour_are_detected_from_the_graph() {
    for flavour in ["ids", "embeds"] {
        for variant in ["f32", "f16", "int8"] {
            let f = bert_edge::inspect_onnx(model(flavour, variant)).unwrap();
            assert_eq!(f.flavour.to_string(), flavour);
            assert_eq!(f.variant.to_string(), variant);
            assert_eq!(f.hidden, 64);
            assert_eq!(f.type_vocab_size, 2);
            assert_eq!(f.vocab_size, (flavour == "ids").then_some(21128));
        }
    }
}

#[test]
fn fixes_are_needed() {
    // Each plan-builder fix, switched off, shows the failure it exists for.
    let no_value_info_fix = PlanOptions {
        fixes: Fixes {
            ignore_value_info: false,
            ..Fixes::default()
        },
        ..PlanOptions::new(8)
    };
    for v in ["f16", "int8"] {
        let r = load_onnx(model("ids", v), &no_value_info_fix);
        assert!(
            r.is_err(),
            "{v}: loading with the converters' value_info should fail"
        );
        eprintln!("{v} without the value_info fix: {}", r.unwrap_err());
    }
    let no_gemm_fix = PlanOptions {
        fixes: Fixes {
            f16_gemm: false,
            ..Fixes::default()
        },
        ..PlanOptions::new(8)
    };
    let r = load_onnx(model("ids", "f16"), &no_gemm_fix);
    eprintln!(
        "f16 without the Gemm fix: {:?}",
        r.as_ref().map(|p| p.info().clone())
    );
    assert!(r.is_err(), "f16 without the Gemm fix should fail");
}
