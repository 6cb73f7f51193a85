//! The idea the project started from: `inputs_embeds` replaces only the word-embedding
//! lookup, so `word_embeddings[ids]` through the embeds graph gives the ids graph's output.
//! And padding invariance: padding a sentence does not change its real tokens' states.

mod common;
use bert_edge::{Encoder, WordEmbeddings};
use common::*;
use std::sync::Arc;

fn encoder(file: &std::path::Path, seq: usize, batch: usize) -> Encoder {
    Encoder::new(Arc::new(load(file, seq, batch))).unwrap()
}

#[test]
fn ids_path_equals_embeds_path_fed_word_embeddings() {
    let dir = tiny();
    let table = WordEmbeddings::from_onnx(model("ids", "f32")).unwrap();
    assert_eq!(table.vocab_size(), 21128);
    for case in cases(&dir).cases.iter().filter(|c| c.flavour == "ids") {
        let ids = read_i64(&dir, &case.inputs["input_ids"]);
        let mask = read_i64(&dir, &case.inputs["attention_mask"]);
        let types = read_i64(&dir, &case.inputs["token_type_ids"]);
        let mut ids_enc = encoder(&model("ids", "f32"), case.seq, case.batch);
        let mut emb_enc = encoder(&model("embeds", "f32"), case.seq, case.batch);
        let (h1, p1) = run_ids(&mut ids_enc, &ids, &mask, &types).unwrap();
        let mut embeds = vec![0f32; h1.len()];
        table.lookup_into(&ids, &mut embeds).unwrap();
        // The lookup is the same table PyTorch used for the committed embeds reference.
        let want_embeds = read_f32(
            &dir,
            &cases(&dir)
                .cases
                .iter()
                .find(|c| c.name == format!("{}_embeds", case.name))
                .unwrap()
                .inputs["inputs_embeds"],
        );
        assert_eq!(
            max_abs(&embeds, &want_embeds),
            0.0,
            "{}: lookup differs from PyTorch's",
            case.name
        );
        let (h2, p2) = run_embeds(&mut emb_enc, &embeds, &mask, &types).unwrap();
        let (dh, dp) = (max_abs(&h1, &h2), max_abs(&p1, &p2));
        eprintln!(
            "{}: ids vs embeds max abs hidden {dh:.2e} pooled {dp:.2e}",
            case.name
        );
        assert!(dh <= 1e-5 && dp <= 1e-5, "{}: {dh} {dp}", case.name);
    }
}

#[test]
fn edited_embeddings_change_the_output() {
    // The embeds path really uses what the caller gives: edit one token's vector.
    let table = WordEmbeddings::from_onnx(model("ids", "f32")).unwrap();
    let ids = [101i64, 2769, 4263, 2110, 739, 102, 0, 0];
    let mask = [1i64, 1, 1, 1, 1, 1, 0, 0];
    let types = [0i64; 8];
    let mut enc = encoder(&model("embeds", "f32"), 8, 1);
    let mut embeds = vec![0f32; 8 * table.hidden_size()];
    table.lookup_into(&ids, &mut embeds).unwrap();
    let (_, p1) = run_embeds(&mut enc, &embeds, &mask, &types).unwrap();
    let h = table.hidden_size();
    let learn = table.row(3300).unwrap().to_vec();
    embeds[3 * h..4 * h].copy_from_slice(&learn);
    let (_, p2) = run_embeds(&mut enc, &embeds, &mask, &types).unwrap();
    assert!(
        max_abs(&p1, &p2) > 1e-4,
        "editing an embedding must change the pooled output"
    );
}

#[test]
fn padding_does_not_change_real_tokens() {
    let ids = [101i64, 2769, 4263, 2110, 739, 102];
    let h = 64;
    let mut short = encoder(&model("ids", "f32"), 6, 1);
    let (hs, ps) = run_ids(&mut short, &ids, &[1i64; 6], &[0i64; 6]).unwrap();
    for n in [8usize, 32, 128] {
        let mut long = encoder(&model("ids", "f32"), n, 1);
        let mut pid = vec![0i64; n];
        pid[..6].copy_from_slice(&ids);
        let mut mask = vec![0i64; n];
        mask[..6].fill(1);
        let (hl, pl) = run_ids(&mut long, &pid, &mask, &vec![0i64; n]).unwrap();
        let d = max_abs(&hs, &hl[..6 * h]);
        let dp = max_abs(&ps, &pl);
        eprintln!("padded to {n}: real-token max abs {d:.2e}, pooled {dp:.2e}");
        assert!(
            d <= 1e-4 && dp <= 1e-4,
            "padding to {n} changed the states: {d} {dp}"
        );
    }
}
