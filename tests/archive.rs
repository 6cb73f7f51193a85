//! Precompiled plans: every tiny graph compiled to an NNEF archive gives the same outputs
//! as its ONNX source, and bad archives get clear errors.

mod common;
use bert_edge::unstable::{nnef, save_archive, translate_onnx};
use bert_edge::{compile, Error, Flavour, LoadOptions, Plan};
use common::*;
use std::path::PathBuf;
use std::sync::Arc;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bert-edge-archive-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn compiled_archives_match_their_onnx_source() {
    let all = cases(&tiny());
    for flavour in ["ids", "embeds"] {
        let case = all
            .cases
            .iter()
            .find(|c| {
                c.name
                    == if flavour == "ids" {
                        "pair32"
                    } else {
                        "pair32_embeds"
                    }
            })
            .unwrap();
        for variant in ["f32", "f16", "int8"] {
            let src = model(flavour, variant);
            let opts = LoadOptions::new().seq(case.seq);
            // ids: plain tar (the recommended form); embeds: tar.gz
            let ext = if flavour == "ids" {
                "nnef.tar"
            } else {
                "nnef.tgz"
            };
            let path = tmp(&format!("{flavour}_{variant}.{ext}"));
            let info = compile(&src, &opts, &path).unwrap();
            let archived = Plan::load(&path, &opts).unwrap();
            assert_eq!(archived.info(), &info);
            let (h1, p1) = run_plan(Plan::load(&src, &opts).unwrap(), &tiny(), case);
            let (h2, p2) = run_plan(archived, &tiny(), case);
            eprintln!(
                "{flavour}/{variant}: archive vs onnx max abs hidden {:.2e} pooled {:.2e}",
                max_abs(&h1, &h2),
                max_abs(&p1, &p2)
            );
            // Same graph, same kernels: bit for bit.
            assert!(h1 == h2 && p1 == p2, "{flavour}/{variant}: outputs differ");
            // and it still matches PyTorch within the runtime tolerances
            let want = read_f32(&tiny(), &case.outputs["last_hidden_state"]);
            let mask = read_i64(&tiny(), &case.inputs["attention_mask"]);
            let c = mean_cos(&real_rows(&h2, &mask, 64), &real_rows(&want, &mask, 64), 64);
            assert!(
                c >= if variant == "int8" { 0.999 } else { 0.9999 },
                "{flavour}/{variant}: cos {c}"
            );
        }
    }
}

#[test]
fn bad_archives_are_clear_errors() {
    let (typed, _) = translate_onnx(&model("ids", "f32"), &LoadOptions::new().seq(16)).unwrap();
    let good = tmp("good.nnef.tgz");
    save_archive(&typed, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let load = |path: &std::path::Path, seq: Option<usize>, flavour: Option<Flavour>| {
        let mut o = LoadOptions::new();
        if let Some(s) = seq {
            o = o.seq(s);
        }
        if let Some(f) = flavour {
            o = o.flavour(f);
        }
        Plan::load(path, &o)
    };
    let check = |r: Result<Plan, Error>, needle: &str| match r {
        Err(Error::BadModel(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        other => panic!(
            "expected BadModel({needle}), got {:?}",
            other.map(|p| p.info().clone())
        ),
    };
    // Counts of zero are refused before the archive is read.
    for o in [LoadOptions::new().granule(0), LoadOptions::new().threads(0)] {
        match Plan::load(&good, &o) {
            Err(Error::BadOptions(m)) => assert!(m.contains("must be at least 1"), "{m}"),
            other => panic!(
                "expected BadOptions, got {:?}",
                other.map(|p| p.info().clone())
            ),
        }
    }
    let truncated = tmp("truncated.nnef.tgz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    check(load(&truncated, None, None), "not a readable NNEF archive");
    let mut corrupt = bytes.clone();
    for b in corrupt.iter_mut().skip(100).step_by(97) {
        *b ^= 0x5a;
    }
    let corrupted = tmp("corrupt.nnef.tgz");
    std::fs::write(&corrupted, &corrupt).unwrap();
    check(load(&corrupted, None, None), "not a readable NNEF archive");
    // A plain tar has no checksum of its own: one flipped byte inside the weights (the middle
    // of the file is the word-embedding table) must still be refused, not loaded as garbage.
    let plain = tmp("good.nnef.tar");
    save_archive(&typed, &plain).unwrap();
    load(&plain, None, None).expect("the intact plain archive loads");
    let mut flipped = std::fs::read(&plain).unwrap();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    check(
        load(
            &{
                let p = tmp("flipped.nnef.tar");
                std::fs::write(&p, &flipped).unwrap();
                p
            },
            None,
            None,
        ),
        "corrupt archive",
    );
    // Options that do not fit the archive: the same kind as options that do not fit an ONNX
    // export (BadOptions), not a bad model.
    let options = |r: Result<Plan, Error>, needle: &str| match r {
        Err(Error::BadOptions(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        other => panic!(
            "expected BadOptions({needle}), got {:?}",
            other.map(|p| p.info().clone())
        ),
    };
    options(
        load(&good, Some(32), None),
        "compiled for sequence length 16",
    );
    options(
        load(&good, None, Some(Flavour::Embeds)),
        "compiled for the ids flavour",
    );
    assert!(matches!(
        load(&tmp("missing.nnef.tgz"), None, None),
        Err(Error::Io { .. })
    ));
    // Archives written straight with tract, bypassing `save_archive`.
    let write_raw = |model: &tract_core::prelude::TypedModel, name: &str| {
        let path = tmp(name);
        nnef()
            .write_to_tar(model, std::fs::File::create(&path).unwrap())
            .unwrap();
        path
    };
    // Not from bert-edge at all: no bert_edge.* property.
    let mut foreign = typed.clone();
    foreign
        .properties
        .retain(|k, _| !k.starts_with("bert_edge."));
    check(
        load(&write_raw(&foreign, "foreign.nnef.tgz"), None, None),
        "not made by `bert-edge compile`",
    );
    // From another tract version.
    let mut old = typed.clone();
    old.properties.insert(
        "bert_edge.tract_version".into(),
        Arc::new(tract_core::prelude::tensor0("0.21.0".to_string())),
    );
    check(
        load(&write_raw(&old, "older.nnef.tgz"), None, None),
        "compiled with tract 0.21.0",
    );
    let loaded = load(&good, Some(16), Some(Flavour::Ids)).unwrap();
    assert_eq!(loaded.info().seq, 16);
}
