//! Zero heap allocations in the crate's own code per steady-state call, at several lengths
//! of one plan of any length.
//!
//! A counting global allocator counts everything the process allocates. For each plan and
//! each call length L we count (a) a full `Encoder::run` call and (b) tract's own
//! `state.run` on the same optimized model with the same `[1, L]` inputs. The crate's share,
//! (a) − (b), must be zero; (b) is what tract allocates per call and is printed per L. Then
//! calls alternating between two lengths: still nothing of the crate's (the input tensors of
//! each length are kept). One #[test] only: the counter is process-wide.

mod common;
use bert_edge::{unstable, Encoder, Input};
use common::*;
use std::sync::Arc;
use tract_core::prelude::*;

/// The CLI's counting allocator (one implementation for `bench` and this test).
#[path = "../cli/src/alloc_count.rs"]
#[allow(dead_code)]
mod alloc_count;
use alloc_count::{snapshot, CountingAlloc};

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

fn per_call(reps: u64, mut f: impl FnMut()) -> (u64, u64) {
    f();
    f(); // steady state
    let (c0, b0) = snapshot();
    for _ in 0..reps {
        f();
    }
    let (c1, b1) = snapshot();
    ((c1 - c0) / reps, (b1 - b0) / reps)
}

#[test]
fn no_allocation_in_crate_code_per_call() {
    let n = 32;
    for (flavour, variant) in [
        ("ids", "f32"),
        ("embeds", "f32"),
        ("ids", "int8"),
        ("ids", "f16"),
    ] {
        let plan = Arc::new(load(&model(flavour, variant), n, 1));
        let h = plan.info().hidden;
        let mut enc = Encoder::new(plan.clone()).unwrap();
        let ids: Vec<i64> = (0..n as i64).map(|i| 101 + i * 13).collect();
        let types = vec![0i64; n];
        let embeds = vec![0.01f32; n * h];
        let mut out = plan.outputs();
        let mut tract_per_len = Vec::new();
        // Real lengths 5, 12, 32: the plan runs at 5, 16 and 32.
        for real in [5usize, 12, 32] {
            let l = plan.run_length(real);
            let mut mask = vec![0i64; n];
            mask[..real].fill(1);
            let input = if flavour == "ids" {
                Input::Ids {
                    input_ids: &ids,
                    attention_mask: &mask,
                    token_type_ids: &types,
                }
            } else {
                Input::Embeds {
                    inputs_embeds: &embeds,
                    attention_mask: &mask,
                    token_type_ids: &types,
                }
            };
            let (crate_and_tract, bytes_total) = per_call(20, || enc.run(input, &mut out).unwrap());
            assert_eq!(out.length(), l);

            // tract alone, same model and [1, l] inputs, prepared outside the count.
            let model = unstable::model(&plan);
            let raw = model.clone().into_runnable().unwrap();
            let mut state = raw.spawn().unwrap();
            let input = |name: &str| -> TValue {
                let t: Tensor = match name {
                    "input_ids" => tract_ndarray::Array2::from_shape_vec((1, l), ids[..l].to_vec())
                        .unwrap()
                        .into(),
                    "inputs_embeds" => {
                        tract_ndarray::Array3::from_shape_vec((1, l, h), embeds[..l * h].to_vec())
                            .unwrap()
                            .into()
                    }
                    "attention_mask" => {
                        tract_ndarray::Array2::from_shape_vec((1, l), mask[..l].to_vec())
                            .unwrap()
                            .into()
                    }
                    _ => tract_ndarray::Array2::from_shape_vec((1, l), types[..l].to_vec())
                        .unwrap()
                        .into(),
                };
                t.into_tvalue()
            };
            let inputs: TVec<TValue> = model
                .inputs
                .iter()
                .map(|o| input(&model.node(o.node).name))
                .collect();
            let (tract_only, bytes_tract) = per_call(20, || {
                let out = state.run(inputs.clone()).unwrap();
                drop(out);
            });
            eprintln!(
                "{flavour}/{variant} N {n} real {real} -> L {l}: per call {crate_and_tract} \
                 allocations ({bytes_total} B) through the crate, {tract_only} ({bytes_tract} B) \
                 in tract alone"
            );
            assert!(
                tract_only > 0,
                "the counter must see tract's own allocations"
            );
            assert_eq!(
                crate_and_tract,
                tract_only,
                "{flavour}/{variant} L {l}: the crate allocated {} times per call on its own",
                crate_and_tract as i64 - tract_only as i64
            );
            tract_per_len.push(tract_only);
        }
        // Alternating 5 and 32 real tokens: each length's input tensors are kept.
        let masks: Vec<Vec<i64>> = [5usize, 32]
            .iter()
            .map(|r| (0..n).map(|i| (i < *r) as i64).collect())
            .collect();
        let mut call = |mask: &[i64]| {
            let input = if flavour == "ids" {
                Input::Ids {
                    input_ids: &ids,
                    attention_mask: mask,
                    token_type_ids: &types,
                }
            } else {
                Input::Embeds {
                    inputs_embeds: &embeds,
                    attention_mask: mask,
                    token_type_ids: &types,
                }
            };
            enc.run(input, &mut out).unwrap();
        };
        let (both, _) = per_call(10, || {
            call(&masks[0]);
            call(&masks[1]);
        });
        assert_eq!(
            both,
            tract_per_len[0] + tract_per_len[2],
            "{flavour}/{variant}: alternating lengths made the crate allocate"
        );
    }
}
