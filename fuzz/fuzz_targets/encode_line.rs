//! Target 1: one JSON line → `bert-edge encode`'s request parser and the runtime's input
//! validation (ids, masks, types, embeds) and a run. The first byte picks the tiny ids or
//! embeds plan (seq 8); the rest is the line.
#![no_main]
use bert_edge::{tokenize::BertTokenizer, Encoder, Inputs, LoadOptions, Outputs, Plan};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, Mutex, OnceLock};

#[path = "common.rs"]
mod common;
const TARGET: &str = "encode_line";

struct Side {
    plan: Arc<Plan>,
    state: Mutex<(Encoder, Inputs, Outputs)>,
}

fn side(flavour: &str) -> Side {
    let file = common::root().join(format!("models/tiny/bert_{flavour}_f32.onnx"));
    let plan = Arc::new(Plan::load(file, &LoadOptions::new().seq(8)).unwrap());
    let state = (Encoder::new(plan.clone()).unwrap(), plan.inputs(), plan.outputs());
    Side {
        plan,
        state: Mutex::new(state),
    }
}

static SIDES: OnceLock<(Side, Side, BertTokenizer)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    common::init(TARGET);
    let (ids, embeds, tok) = SIDES.get_or_init(|| {
        let tok = BertTokenizer::from_file(common::root().join("models/tokenizer.json")).unwrap();
        (side("ids"), side("embeds"), tok)
    });
    let [pick, line @ ..] = data else { return };
    let s = if pick & 1 == 0 { ids } else { embeds };
    let mut guard = s.state.lock().unwrap_or_else(|p| p.into_inner());
    let (enc, inputs, out) = &mut *guard;
    match bert_edge_cli::encode::one_line(line, &s.plan, Some(tok), enc, inputs, out) {
        Ok(line) => {
            let real = line.tokens;
            assert!(real <= 8, "{real} tokens in a seq-8 plan");
            assert!(out.iter().all(|(_, v)| v.iter().all(|x| x.is_finite())));
        }
        Err(msg) => {
            assert!(!msg.is_empty());
            assert!(!msg.contains("panicked"), "{msg}");
        }
    }
});
