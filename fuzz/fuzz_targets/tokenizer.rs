//! Target 3: arbitrary bytes (as UTF-8, lossily), single and pair, any N → the tokenizer into
//! fixed buffers. Checks the buffers' invariants on every Ok.
#![no_main]
use bert_edge::{tokenize::BertTokenizer, Inputs};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[path = "common.rs"]
mod common;
const TARGET: &str = "tokenizer";

static TOK: OnceLock<BertTokenizer> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    common::init(TARGET);
    let tok = TOK.get_or_init(|| {
        BertTokenizer::from_file(common::root().join("models/tokenizer.json")).unwrap()
    });
    let [n, flags, rest @ ..] = data else { return };
    let n = *n as usize; // 0..=255, capacities 0 and 1 included (errors)
    let (a, b) = match rest.iter().position(|&c| c == 0xff) {
        Some(i) if flags & 1 == 1 => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let a = String::from_utf8_lossy(a);
    let b = b.map(String::from_utf8_lossy);
    let mut inputs = Inputs::new(n);
    let r = tok.encode_into(&a, b.as_deref(), &mut inputs);
    common::check(&r);
    match r {
        Ok(done) => {
            assert!(done.tokens <= n && done.tokens >= tok.min_len(b.is_some()));
            assert!(inputs.attention_mask[..done.tokens].iter().all(|&m| m == 1));
            assert!(inputs.attention_mask[done.tokens..].iter().all(|&m| m == 0));
            assert!(inputs.input_ids.iter().all(|&id| (0..21128).contains(&id)));
            assert!(inputs.token_type_ids.iter().all(|&t| t == 0 || t == 1));
            assert_eq!(inputs.input_ids[0], 101, "[CLS] first");
        }
        Err(bert_edge::Error::BadInput(_)) => assert!(n < tok.min_len(b.is_some())),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
});
