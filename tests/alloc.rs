//! Zero heap allocations in the crate's own code per steady-state call.
//!
//! A counting global allocator counts everything the process allocates. For each plan we
//! count (a) a full `Encoder::run` call and (b) tract's own
//! `state.run` on the same optimized model with the same inputs. The crate's share,
//! (a) − (b), must be zero; (b) is what tract allocates per call and is printed.
//! One #[test] only: the counter is process-wide.

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
    let seq = 32;
    for (flavour, variant) in [
        ("ids", "f32"),
        ("embeds", "f32"),
        ("ids", "int8"),
        ("ids", "f16"),
    ] {
        let plan = Arc::new(load(&model(flavour, variant), seq, 1));
        let mut enc = Encoder::new(plan.clone()).unwrap();
        let n = seq;
        let ids: Vec<i64> = (0..n as i64).map(|i| 101 + i * 13).collect();
        let mask = vec![1i64; n];
        let types = vec![0i64; n];
        let embeds = vec![0.01f32; n * plan.info().hidden];
        let mut out = plan.outputs();
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

        // tract alone, same model and inputs, inputs prepared outside the count.
        let model = unstable::model(&plan);
        let raw = model.clone().into_runnable().unwrap();
        let mut state = raw.spawn().unwrap();
        let input = |name: &str| -> TValue {
            let t: Tensor = match name {
                "input_ids" => tract_ndarray::Array2::from_shape_vec((1, seq), ids.clone())
                    .unwrap()
                    .into(),
                "inputs_embeds" => {
                    tract_ndarray::Array3::from_shape_vec((1, seq, 64), embeds.clone())
                        .unwrap()
                        .into()
                }
                "attention_mask" => tract_ndarray::Array2::from_shape_vec((1, seq), mask.clone())
                    .unwrap()
                    .into(),
                _ => tract_ndarray::Array2::from_shape_vec((1, seq), types.clone())
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
            "{flavour}/{variant} seq {seq}: per call {crate_and_tract} allocations ({bytes_total} B) \
             through the crate, {tract_only} ({bytes_tract} B) in tract alone"
        );
        assert!(
            tract_only > 0,
            "the counter must see tract's own allocations"
        );
        assert_eq!(
            crate_and_tract,
            tract_only,
            "{flavour}/{variant}: the crate allocated {} times per call on its own",
            crate_and_tract as i64 - tract_only as i64
        );
    }
}
