//! Bad input gets a clear, typed error — never a panic, never silent garbage.

mod common;
use bert_edge::error::InputKind;
use bert_edge::unstable::Fixes;
use bert_edge::{Encoder, Error, Flavour, Input, LoadOptions, Outputs, Plan, Variant};
use common::*;
use std::sync::Arc;

fn ids_encoder(seq: usize) -> Encoder {
    Encoder::new(Arc::new(load(&model("ids", "f32"), seq, 1))).unwrap()
}

fn opts(seq: usize) -> LoadOptions {
    LoadOptions::new().seq(seq)
}

/// One ids call into `out`.
fn run_ids_into<T: Copy + Into<i64>>(
    e: &mut Encoder,
    input_ids: &[T],
    attention_mask: &[T],
    token_type_ids: &[T],
    out: &mut Outputs,
) -> Result<(), Error> {
    let input = Input::Ids {
        input_ids,
        attention_mask,
        token_type_ids,
    };
    e.run(input, out)
}

/// One embeds call into `out`.
fn embeds(e: &mut Encoder, inputs_embeds: &[f32], out: &mut Outputs) -> Result<(), Error> {
    let input = Input::Embeds {
        inputs_embeds,
        attention_mask: &MASK,
        token_type_ids: &TYPES,
    };
    e.run(input, out)
}

/// A `BadInput` of the kind the mistake is (what callers match on), whose message says
/// `needle` (what a person reads).
fn assert_bad_input<T: std::fmt::Debug>(r: Result<T, Error>, kind: InputKind, needle: &str) {
    match r {
        Err(Error::BadInput(m)) => {
            assert_eq!(m.kind, kind, "{m}");
            assert!(m.message.contains(needle), "message {m:?} lacks {needle:?}");
        }
        other => panic!("expected BadInput({kind:?}, {needle}), got {other:?}"),
    }
}

fn assert_bad_options<T: std::fmt::Debug>(r: Result<T, Error>, needle: &str) {
    match r {
        Err(Error::BadOptions(m)) => assert!(m.contains(needle), "message {m:?} lacks {needle:?}"),
        other => panic!("expected BadOptions({needle}), got {other:?}"),
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
    let mut out = e.plan().outputs();
    assert_bad_input(
        run_ids_into(&mut e, &IDS[..7], &MASK, &TYPES, &mut out),
        InputKind::Shape,
        "input_ids has 7",
    );
    assert_bad_input(
        run_ids_into(&mut e, &IDS, &MASK[..5], &TYPES, &mut out),
        InputKind::Shape,
        "attention_mask has 5",
    );
    assert_bad_input(
        run_ids_into(&mut e, &IDS, &MASK, &[0i64; 9], &mut out),
        InputKind::Shape,
        "token_type_ids has 9",
    );
    // Outputs sized for another plan (seq 16): the encoder refuses them.
    let mut other = load(&model("ids", "f32"), 16, 1).outputs();
    assert_bad_input(
        run_ids_into(&mut e, &IDS, &MASK, &TYPES, &mut other),
        InputKind::Shape,
        "last_hidden_state buffer has 1024 values",
    );
    // and the encoder still works afterwards
    run_ids_into(&mut e, &IDS, &MASK, &TYPES, &mut out).unwrap();
}

#[test]
fn ids_out_of_range() {
    let mut e = ids_encoder(8);
    let mut out = e.plan().outputs();
    let mut ids = IDS;
    ids[2] = 21128;
    assert_bad_input(
        run_ids_into(&mut e, &ids, &MASK, &TYPES, &mut out),
        InputKind::Range,
        "input_ids[2] = 21128",
    );
    ids[2] = -1;
    assert_bad_input(
        run_ids_into(&mut e, &ids, &MASK, &TYPES, &mut out),
        InputKind::Range,
        "input_ids[2] = -1",
    );
    let mut types = TYPES;
    types[1] = 2;
    assert_bad_input(
        run_ids_into(&mut e, &IDS, &MASK, &types, &mut out),
        InputKind::Range,
        "token_type_ids[1] = 2",
    );
    let mut mask = MASK;
    mask[0] = 3;
    assert_bad_input(
        run_ids_into(&mut e, &IDS, &mask, &TYPES, &mut out),
        InputKind::Range,
        "attention_mask[0] = 3",
    );
    // u32 ids (as the tokenizers crate gives them) go through the same checks
    let big: [u32; 8] = [101, 2769, 4263, 2110, 739, 102, 0, 30000];
    assert_bad_input(
        run_ids_into(&mut e, &big, &[1u32; 8], &[0u32; 8], &mut out),
        InputKind::Range,
        "30000",
    );
}

#[test]
fn mask_of_all_zeros_is_an_error() {
    let mut e = ids_encoder(8);
    let mut out = e.plan().outputs();
    assert_bad_input(
        run_ids_into(&mut e, &IDS, &[0i64; 8], &TYPES, &mut out),
        InputKind::EmptyRow,
        "all zeros",
    );
}

#[test]
fn nan_and_inf_in_embeddings() {
    let mut e = Encoder::new(Arc::new(load(&model("embeds", "f32"), 8, 1))).unwrap();
    let mut out = e.plan().outputs();
    let mut emb = vec![0.01f32; 8 * 64];
    emb[70] = f32::NAN;
    assert_bad_input(
        embeds(&mut e, &emb, &mut out),
        InputKind::NotFinite,
        "inputs_embeds[70] is NaN",
    );
    emb[70] = f32::INFINITY;
    assert_bad_input(embeds(&mut e, &emb, &mut out), InputKind::NotFinite, "inf");
    assert_bad_input(
        embeds(&mut e, &emb[..100], &mut out),
        InputKind::Shape,
        "inputs_embeds has 100",
    );
    // wrong entry point for the flavour
    assert_bad_input(
        run_ids_into(&mut e, &IDS, &MASK, &TYPES, &mut out),
        InputKind::Unsupported,
        "Input::Embeds",
    );
}

#[test]
fn missing_truncated_and_non_onnx_files() {
    let opts = opts(8);
    match Plan::load("/nonexistent/bert.onnx", &opts) {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, std::path::Path::new("/nonexistent/bert.onnx"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!(
            "expected Io(NotFound), got {:?}",
            other.map(|p| p.info().clone())
        ),
    }
    let dir = std::env::temp_dir().join(format!("bert-edge-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let full = std::fs::read(model("ids", "f32")).unwrap();
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &full[..full.len() / 3]).unwrap();
    assert_bad_model(Plan::load(&truncated, &opts), "not an ONNX model");
    let text = dir.join("text.onnx");
    std::fs::write(&text, "this is not a model\n").unwrap();
    assert_bad_model(Plan::load(&text, &opts), "not an ONNX model");
    // A valid ONNX file that is not a BERT export: the tokenizer JSON won't parse; a real
    // ONNX graph with other inputs is rejected by name.
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wrong_variant_flavour_or_hidden_size() {
    assert_bad_model(
        Plan::load(model("ids", "f32"), &opts(8).variant(Variant::Int8)),
        "asked for int8, the file is f32",
    );
    assert_bad_model(
        Plan::load(model("ids", "int8"), &opts(8).variant(Variant::F32)),
        "asked for f32, the file is int8",
    );
    assert_bad_model(
        Plan::load(model("ids", "f32"), &opts(8).flavour(Flavour::Embeds)),
        "asked for an embeds graph",
    );
    assert_bad_model(
        Plan::load(model("ids", "f32"), &opts(8).hidden_size(768)),
        "hidden size 768",
    );
    assert_bad_options(Plan::load(model("ids", "f32"), &opts(513)), "512 positions");
    assert_bad_options(Plan::load(model("ids", "f32"), &opts(0)), "at least 1");
    assert_bad_options(
        Plan::load(model("ids", "f32"), &opts(8).batch(0)),
        "batch must be at least 1",
    );
    assert_bad_options(
        Plan::load(model("ids", "f32"), &opts(8).granule(0)),
        "granule must be at least 1",
    );
    assert_bad_options(
        Plan::load(model("ids", "f32"), &opts(8).threads(0)),
        "threads must be at least 1",
    );
}

#[test]
fn variant_and_flavour_are_detected_from_the_graph() {
    for flavour in ["ids", "embeds"] {
        for variant in ["f32", "f16", "int8"] {
            let f = bert_edge::unstable::inspect_onnx(model(flavour, variant)).unwrap();
            assert_eq!(f.flavour.to_string(), flavour);
            assert_eq!(f.variant.to_string(), variant);
            assert_eq!(f.hidden, 64);
            assert_eq!(f.type_vocab_size, 2);
            assert_eq!(f.vocab_size, (flavour == "ids").then_some(21128));
        }
    }
}

/// A load's error message, for the tests that expect a specific failure.
fn load_error(file: &std::path::Path, opts: &LoadOptions) -> String {
    assert!(file.is_file(), "fixture {file:?} missing");
    match Plan::load(file, opts) {
        Ok(_) => panic!("{file:?} loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fixes_are_needed() {
    // Each import fix, switched off, shows the failure it exists for; on, the same file loads.
    let without = |f: Fixes| opts(8).unstable_fixes(f);
    let no_value_info_fix = without(Fixes {
        ignore_value_info: false,
        ..Fixes::default()
    });
    for v in ["f16", "int8"] {
        let m = load_error(&model("ids", v), &no_value_info_fix);
        eprintln!("{v} without the value_info fix: {m}");
        assert!(m.contains("Impossible to unify"), "{v}: {m}");
        Plan::load(model("ids", v), &opts(8)).expect("loads with the fix");
    }
    let no_gemm_fix = without(Fixes {
        f16_gemm: false,
        ..Fixes::default()
    });
    let m = load_error(&model("ids", "f16"), &no_gemm_fix);
    eprintln!("f16 without the Gemm fix: {m}");
    assert!(
        m.contains("Gemm") && m.contains("expected 1,64,F16 got 1,64,F32"),
        "{m}"
    );
    Plan::load(model("ids", "f16"), &opts(8)).expect("loads with the fix");
}

#[test]
fn int8_import_swaps_in_the_serializable_quantizer() {
    // tract-onnx's DynamicQuantizeLinearU8 is matched by name (its type is private): a rename
    // in tract would leave it in the plan, and archives of int8 models would not serialize.
    for flavour in ["ids", "embeds"] {
        let plan = load(&model(flavour, "int8"), 8, 1);
        let ops: Vec<String> = bert_edge::unstable::model(&plan)
            .nodes()
            .iter()
            .map(|n| n.op.name().to_string())
            .collect();
        assert!(
            !ops.iter().any(|o| o == "DynamicQuantizeLinearU8"),
            "{flavour}"
        );
        let swapped = ops.iter().filter(|o| *o == "DynQuantU8").count();
        let facts = bert_edge::unstable::inspect_onnx(model(flavour, "int8")).unwrap();
        let in_file = facts.op_histogram["DynamicQuantizeLinear"];
        assert_eq!(
            swapped, in_file,
            "{flavour}: every DynamicQuantizeLinear of the file"
        );
    }
}

/// An `--optimize O2` export quantized afterwards holds onnxruntime-only `QAttention` nodes:
/// refused up front, by name, with the way out (tract would fail deep in its analysis).
#[test]
fn onnxruntime_only_quantized_attention_is_refused_by_name() {
    let file = root().join("tests/data/ort-fused/bert_embeds_int8_ort_fused.onnx");
    let r = Plan::load(&file, &opts(8));
    assert_bad_model(r, "com.microsoft QAttention ×2");
    let m = load_error(&file, &opts(8));
    assert!(m.contains("without --optimize"), "{m}");
}
