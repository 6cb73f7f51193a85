//! `LoadOptions::threads`: an encoder on a thread pool gives the same outputs as one thread,
//! bit for bit, call after call, at several lengths, for every tiny fixture. tract's
//! threading gates are opened for this test binary, so the fixtures' small matmuls and
//! packings are really split across the pool (and the pool's spinners really run them).
#![cfg(feature = "multithread")]

mod common;
use bert_edge::{Encoder, Input, LoadOptions, Plan};
use common::*;
use std::sync::Arc;
use tract_core::internal::tract_linalg::multithread as mt;

fn plan(flavour: &str, variant: &str, threads: usize) -> Arc<Plan> {
    let file = model(flavour, variant);
    let opts = LoadOptions::new().seq(16).threads(threads);
    Arc::new(Plan::load(&file, &opts).unwrap_or_else(|e| panic!("{file:?}: {e}")))
}

/// Every output of one call (all of the graph's outputs, in order).
fn outputs(enc: &mut Encoder, input: Input) -> Vec<Vec<f32>> {
    let mut out = enc.plan().outputs();
    enc.run(input, &mut out).unwrap();
    out.iter().map(|(_, v)| v.to_vec()).collect()
}

#[test]
fn threaded_calls_equal_one_thread() {
    mt::set_threading_panel_threshold(0);
    mt::set_threading_mac_threshold(0);
    mt::set_threading_element_threshold(0);
    let n = 16;
    for (flavour, variant) in [
        ("ids", "f32"),
        ("embeds", "f32"),
        ("ids", "int8"),
        ("embeds", "int8"),
        ("ids", "f16"),
    ] {
        let mut one = Encoder::new(plan(flavour, variant, 1)).unwrap();
        let mut pooled: Vec<(usize, Encoder)> = [2, 3]
            .iter()
            .map(|&t| (t, Encoder::new(plan(flavour, variant, t)).unwrap()))
            .collect();
        let h = one.plan().info().hidden;
        // Lengths up and down, a repeat: calls at a length already seen and new ones.
        for (call, real) in [3usize, 16, 9, 16, 2, 11].into_iter().enumerate() {
            let ids: Vec<i64> = (0..n)
                .map(|i| {
                    if i < real {
                        101 + ((i + call) as i64 * 977) % 21000
                    } else {
                        0
                    }
                })
                .collect();
            let mask: Vec<i64> = (0..n).map(|i| (i < real) as i64).collect();
            let types = vec![0i64; n];
            let embeds: Vec<f32> = (0..n * h)
                .map(|i| ((i * 31 + call) % 97) as f32 * 1e-3 - 0.048)
                .collect();
            let input = || match flavour {
                "ids" => Input::Ids {
                    input_ids: &ids,
                    attention_mask: &mask,
                    token_type_ids: &types,
                },
                _ => Input::Embeds {
                    inputs_embeds: &embeds,
                    attention_mask: &mask,
                    token_type_ids: &types,
                },
            };
            let want = outputs(&mut one, input());
            assert!(want.iter().flatten().all(|v| v.is_finite()));
            for (threads, enc) in &mut pooled {
                let got = outputs(enc, input());
                assert!(
                    got == want,
                    "{flavour} {variant}, {threads} threads, call {call} (real length {real}): \
                     outputs differ from one thread's"
                );
            }
        }
    }
}

/// Two threaded encoders over one plan, each driven from its own OS thread (as `serve`'s
/// workers do), agree with each other and with one thread.
#[test]
fn threaded_encoders_run_side_by_side() {
    let p = plan("ids", "f32", 2);
    let ids = [
        101i64, 2769, 4263, 2110, 739, 102, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mask: Vec<i64> = ids.iter().map(|&i| (i != 0) as i64).collect();
    let types = [0i64; 16];
    let input = || Input::Ids {
        input_ids: &ids,
        attention_mask: &mask,
        token_type_ids: &types,
    };
    let want = outputs(&mut Encoder::new(plan("ids", "f32", 1)).unwrap(), input());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let p = p.clone();
                s.spawn(move || {
                    let mut enc = Encoder::new(p).unwrap();
                    (0..20)
                        .map(|_| outputs(&mut enc, input()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for w in workers {
            for got in w.join().unwrap() {
                assert!(got == want, "a threaded call differs from one thread's");
            }
        }
    });
}
