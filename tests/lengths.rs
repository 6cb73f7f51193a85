//! Plans of any length (issue #16): one plan of capacity N runs each call at its real length.
//!
//! For every tiny fixture (ids and embeds; f32, f16, int8):
//! - at every real length L in 1..=N, the outputs at real positions equal a plan pinned to
//!   exactly L positions (f32/f16 ≤ 1e-5; int8 bit for bit: same tensors, same ranges), and a
//!   plan pinned to N with padding (f32/f16 ≤ 1e-5; int8 is not compared there: its ranges
//!   take the padding in, see the README);
//! - int8 at real length: cosine ≥ 0.999 against onnxruntime fed the unpadded tokens
//!   (models/tiny/refs-lengths, models/lengths_refs.py), and identical whatever N;
//! - positions ≥ the length the call ran at are zeros; pooled outputs do not depend on N.
//!
//! Also: masks with holes and left padding, a batch of rows of different lengths, the
//! granule, explicit lengths, and lengths over N refused.

mod common;
use bert_edge::{Call, Encoder, Error, Input, LoadOptions, Outputs, Plan};
use common::*;
use std::sync::Arc;

const N: usize = 16;
const H: usize = 64;

fn ids_for(len: usize) -> Vec<i64> {
    if len == 1 {
        return vec![101];
    }
    let mut v = vec![101i64];
    v.extend((0..len as i64 - 2).map(|j| 672 + (j * 7919) % 20428));
    v.push(102);
    v
}

struct Runner {
    enc: Encoder,
    out: Outputs,
    /// The word-embedding table, for an embeds fixture.
    table: Option<bert_edge::WordEmbeddings>,
}

impl Runner {
    fn new(flavour: &str, variant: &str, opts: LoadOptions) -> Runner {
        let plan = Arc::new(Plan::load(model(flavour, variant), &opts).unwrap());
        Runner {
            out: plan.outputs(),
            enc: Encoder::new(plan).unwrap(),
            table: (flavour == "embeds")
                .then(|| bert_edge::WordEmbeddings::from_onnx(model("ids", "f32")).unwrap()),
        }
    }

    /// One call: the ids padded to the plan's N with `mask` (N long); (hidden, pooled).
    fn call_masked(&mut self, ids: &[i64], mask: &[i64]) -> Result<(Vec<f32>, Vec<f32>), Error> {
        let n = self.enc.plan().info().seq;
        let b = mask.len() / n;
        let mut pid = vec![0i64; b * n];
        pid[..ids.len()].copy_from_slice(ids);
        let types = vec![0i64; b * n];
        if let Some(table) = &self.table {
            let mut e = vec![0f32; b * n * H];
            table.lookup_into(&pid, &mut e).unwrap();
            self.enc.run(
                Input::Embeds {
                    inputs_embeds: &e,
                    attention_mask: mask,
                    token_type_ids: &types,
                },
                &mut self.out,
            )?;
        } else {
            self.enc.run(
                Input::Ids {
                    input_ids: &pid,
                    attention_mask: mask,
                    token_type_ids: &types,
                },
                &mut self.out,
            )?;
        }
        Ok((
            self.out.last_hidden_state().unwrap().to_vec(),
            self.out.pooler_output().unwrap().to_vec(),
        ))
    }

    /// [`Encoder::run_with`] over `rows` of the batch; the other rows of the buffers hold
    /// garbage (ids out of range, an all-zero mask, NaN embeddings) it must not read.
    fn call_rows(&mut self, ids: &[i64], mask: &[i64], rows: usize) -> Result<(), Error> {
        let n = self.enc.plan().info().seq;
        let b = mask.len() / n;
        let mut pid = vec![i64::MAX; b * n];
        pid[..ids.len()].copy_from_slice(ids);
        let mut mask = mask.to_vec();
        mask[rows * n..].fill(0);
        let types = vec![0i64; b * n];
        if let Some(table) = &self.table {
            let mut e = vec![f32::NAN; b * n * H];
            let used = rows * n;
            table.lookup_into(&ids[..used], &mut e[..used * H]).unwrap();
            let input = Input::Embeds {
                inputs_embeds: &e,
                attention_mask: &mask,
                token_type_ids: &types,
            };
            self.enc.run_with(input, &mut self.out, rows_call(rows))
        } else {
            let input = Input::Ids {
                input_ids: &pid,
                attention_mask: &mask,
                token_type_ids: &types,
            };
            self.enc.run_with(input, &mut self.out, rows_call(rows))
        }
    }

    fn call(&mut self, ids: &[i64]) -> (Vec<f32>, Vec<f32>) {
        let n = self.enc.plan().info().seq;
        let mut mask = vec![0i64; n];
        mask[..ids.len()].fill(1);
        self.call_masked(ids, &mask).unwrap()
    }
}

/// A call of the first `rows` rows.
fn rows_call(rows: usize) -> Call {
    Call {
        rows: Some(rows),
        ..Call::default()
    }
}

/// A call at exactly `length` positions.
fn length_call(length: usize) -> Call {
    Call {
        length: Some(length),
        ..Call::default()
    }
}

fn any(n: usize) -> LoadOptions {
    LoadOptions::new().seq(n).granule(1)
}

fn fixed(n: usize) -> LoadOptions {
    LoadOptions::new().seq(n).fixed_length(true)
}

/// onnxruntime's int8 outputs on the unpadded tokens of each length 1..=16.
fn ort_int8(flavour: &str) -> Vec<(Vec<f32>, Vec<f32>)> {
    let dir = tiny().join("refs-lengths");
    let bytes = std::fs::read(dir.join(format!("{flavour}_int8.bin"))).unwrap();
    let v: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let mut at = 0;
    (1..=16)
        .map(|l| {
            let h = v[at..at + l * H].to_vec();
            let p = v[at + l * H..at + (l + 1) * H].to_vec();
            at += (l + 1) * H;
            (h, p)
        })
        .collect()
}

// One test per fixture, so the test threads share them out.
#[test]
fn every_length_equals_a_plan_pinned_to_it_ids_f32() {
    every_length_equals_a_plan_pinned_to_it("ids", "f32");
}

#[test]
fn every_length_equals_a_plan_pinned_to_it_ids_f16() {
    every_length_equals_a_plan_pinned_to_it("ids", "f16");
}

#[test]
fn every_length_equals_a_plan_pinned_to_it_ids_int8() {
    every_length_equals_a_plan_pinned_to_it("ids", "int8");
}

#[test]
fn every_length_equals_a_plan_pinned_to_it_embeds_f32() {
    every_length_equals_a_plan_pinned_to_it("embeds", "f32");
}

#[test]
fn every_length_equals_a_plan_pinned_to_it_embeds_f16() {
    every_length_equals_a_plan_pinned_to_it("embeds", "f16");
}

#[test]
fn every_length_equals_a_plan_pinned_to_it_embeds_int8() {
    every_length_equals_a_plan_pinned_to_it("embeds", "int8");
}

fn every_length_equals_a_plan_pinned_to_it(flavour: &str, variant: &str) {
    let mut one = Runner::new(flavour, variant, any(N));
    let mut wider = Runner::new(flavour, variant, any(2 * N));
    let mut padded = Runner::new(flavour, variant, fixed(N));
    let refs = (variant == "int8").then(|| ort_int8(flavour));
    let mut worst = (0f32, 0f32, 1f64);
    for l in 1..=N {
        let ids = ids_for(l);
        let (h, p) = one.call(&ids);
        assert_eq!(one.out.length(), l, "{flavour}/{variant}: ran at");
        // Zeros at and beyond L.
        assert!(
            h[l * H..].iter().all(|v| *v == 0.0),
            "{flavour}/{variant} L {l}: not zero beyond L"
        );
        let mut exact = Runner::new(flavour, variant, fixed(l));
        let (he, pe) = exact.call(&ids);
        let d = max_abs(&h[..l * H], &he).max(max_abs(&p, &pe));
        let (hw, pw) = wider.call(&ids);
        let label = format!("{flavour}/{variant} L {l}");
        if variant == "int8" {
            assert!(
                d == 0.0,
                "{label}: differs from the plan pinned to L by {d:e}"
            );
            assert!(
                h[..l * H] == hw[..l * H] && p == pw,
                "{label}: depends on N"
            );
            let (rh, rp) = &refs.as_ref().unwrap()[l - 1];
            let c = min_cos(&h[..l * H], rh, H).min(cos(&p, rp));
            assert!(c >= 0.999, "{label}: cos {c} against onnxruntime unpadded");
            worst.2 = worst.2.min(c);
        } else {
            assert!(d <= 1e-5, "{label}: {d:e} from the plan pinned to L");
            let (hp, pp) = padded.call(&ids);
            let dp = max_abs(&h[..l * H], &hp[..l * H]).max(max_abs(&p, &pp));
            let dw = max_abs(&h[..l * H], &hw[..l * H]).max(max_abs(&p, &pw));
            assert!(
                dp <= 1e-5 && dw <= 1e-5,
                "{label}: padded {dp:e}, N=32 {dw:e}"
            );
            worst.1 = worst.1.max(dp.max(dw));
        }
        worst.0 = worst.0.max(d);
    }
    eprintln!(
        "{flavour}/{variant}: L 1..{N}: max abs vs pinned to L {:.1e}, vs padded/other N {:.1e}, int8 1 - min cos vs onnxruntime {:.1e}",
        worst.0, worst.1, 1.0 - worst.2
    );
}

#[test]
fn granule_holes_left_padding_and_explicit_lengths() {
    let mut g8 = Runner::new("ids", "f32", LoadOptions::new().seq(N));
    let mut pinned = Runner::new("ids", "f32", fixed(N));
    let plan = g8.enc.plan().clone();
    assert_eq!(
        (1..=N).map(|l| plan.run_length(l)).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7, 8, 16, 16, 16, 16, 16, 16, 16, 16]
    );
    // A mask with holes, and one with left padding: as the pinned plan computes them.
    let ids = ids_for(10);
    for mask in [
        [1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
    ] {
        let (h, p) = g8.call_masked(&ids, &mask).unwrap();
        let (hp, pp) = pinned.call_masked(&ids, &mask).unwrap();
        assert_eq!(g8.out.length(), 16);
        let real = real_rows(&h, &mask, H);
        let d = max_abs(&real, &real_rows(&hp, &mask, H)).max(max_abs(&p, &pp));
        assert!(d <= 1e-5, "mask {mask:?}: {d:e}");
    }
    // Explicit lengths: at least the longest row, at most N.
    let mut mask = vec![0i64; N];
    mask[..6].fill(1);
    let mut pid = vec![0i64; N];
    pid[..6].copy_from_slice(&ids_for(6));
    let types = vec![0i64; N];
    let input = Input::Ids {
        input_ids: &pid,
        attention_mask: &mask,
        token_type_ids: &types,
    };
    let mut enc = Encoder::new(plan.clone()).unwrap();
    let mut out = plan.outputs();
    enc.run_with(input, &mut out, length_call(7)).unwrap();
    assert_eq!(out.length(), 7);
    for bad in [5, 17] {
        let e = enc.run_with(input, &mut out, length_call(bad)).unwrap_err();
        assert!(matches!(e, Error::BadInput(_)), "{e}");
        assert!(e.to_string().contains("at most 16"), "{e}");
    }
    // Longer than N: the buffers do not fit the plan (a clear error, not a truncation).
    let long = vec![1i64; N + 1];
    let e = enc
        .run(
            Input::Ids {
                input_ids: &long,
                attention_mask: &long,
                token_type_ids: &[0; N + 1],
            },
            &mut out,
        )
        .unwrap_err();
    assert!(e.to_string().contains("batch×N = 16"), "{e}");
    // A pinned plan takes N only.
    let mut pe = Encoder::new(pinned.enc.plan().clone()).unwrap();
    let e = pe
        .run_with(input, &mut pinned.out, length_call(8))
        .unwrap_err();
    assert!(e.to_string().contains("exactly 16"), "{e}");
}

/// Row `r` (`l` real tokens, `ids_for(l)`) of a batch's hidden states `h` and pooled `p`
/// equals the row run alone: f32/f16 ≤ 1e-5; int8 exactly (its rows run one by one, each at
/// its own length, whatever its neighbours hold).
fn assert_row_alone(h: &[f32], p: &[f32], r: usize, l: usize, alone: &mut Runner, what: &str) {
    let (ha, pa) = alone.call(&ids_for(l));
    let d = max_abs(&h[r * N * H..(r * N + l) * H], &ha[..l * H])
        .max(max_abs(&p[r * H..(r + 1) * H], &pa));
    let tol = if what.ends_with("int8") { 0.0 } else { 1e-5 };
    assert!(d <= tol, "{what} row {r}: {d:e} from the row alone");
}

#[test]
fn a_batch_of_rows_of_different_lengths_equals_each_row_alone() {
    for variant in ["f32", "f16", "int8"] {
        for flavour in ["ids", "embeds"] {
            let mut batch = Runner::new(flavour, variant, LoadOptions::new().seq(N).batch(3));
            let mut alone = Runner::new(flavour, variant, LoadOptions::new().seq(N));
            let lens = [3usize, 11, 6];
            let mut ids = vec![0i64; 3 * N];
            let mut mask = vec![0i64; 3 * N];
            for (r, l) in lens.iter().enumerate() {
                ids[r * N..r * N + l].copy_from_slice(&ids_for(*l));
                mask[r * N..r * N + l].fill(1);
            }
            let (h, p) = batch.call_masked(&ids, &mask).unwrap();
            // f32/f16: the longest row rounded up to the granule; int8: exactly the longest.
            let longest = if variant == "int8" { 11 } else { 16 };
            assert_eq!(batch.out.length(), longest, "the longest row (11)");
            for (r, l) in lens.iter().enumerate() {
                assert_row_alone(&h, &p, r, *l, &mut alone, &format!("{flavour}/{variant}"));
                if variant == "int8" {
                    let own = batch.enc.plan().run_length(*l);
                    let beyond = &h[(r * N + own) * H..(r + 1) * N * H];
                    assert!(
                        beyond.iter().all(|v| *v == 0.0),
                        "row {r}: zeros beyond its L"
                    );
                }
            }
        }
    }
}

#[test]
fn a_partly_filled_batch_equals_each_row_alone() {
    // f32 runs the whole batch with one-token filler rows; int8 runs only the used rows.
    for (flavour, variant) in [("ids", "f32"), ("ids", "int8"), ("embeds", "f16")] {
        let mut batch = Runner::new(flavour, variant, LoadOptions::new().seq(N).batch(4));
        let mut alone = Runner::new(flavour, variant, LoadOptions::new().seq(N));
        let lens = [5usize, 9];
        let mut ids = vec![0i64; 2 * N];
        let mut mask = vec![0i64; 4 * N];
        for (r, l) in lens.iter().enumerate() {
            ids[r * N..r * N + l].copy_from_slice(&ids_for(*l));
            mask[r * N..r * N + l].fill(1);
        }
        // Stale outputs from a full call first: the unused rows must be overwritten.
        let full: Vec<i64> = (0..4).flat_map(|_| ids[..N].to_vec()).collect();
        let full_mask: Vec<i64> = (0..4).flat_map(|_| mask[..N].to_vec()).collect();
        batch.call_masked(&full, &full_mask).unwrap();
        batch.call_rows(&ids, &mask, 2).unwrap();
        let longest = if variant == "int8" { 9 } else { 16 };
        assert_eq!(batch.out.length(), longest, "the longest used row (9)");
        let h = batch.out.last_hidden_state().unwrap().to_vec();
        let p = batch.out.pooler_output().unwrap().to_vec();
        for (r, l) in lens.iter().enumerate() {
            assert_row_alone(&h, &p, r, *l, &mut alone, &format!("{flavour}/{variant}"));
        }
        assert!(
            h[2 * N * H..].iter().chain(&p[2 * H..]).all(|v| *v == 0.0),
            "{flavour}/{variant}: the unused rows' outputs are zeros"
        );
        // The row count is checked first, whatever the buffers hold.
        let z = vec![0i64; 4 * N];
        for rows in [0, 5] {
            let input = Input::Ids {
                input_ids: &z,
                attention_mask: &z,
                token_type_ids: &z,
            };
            let e = batch.enc.run_with(input, &mut batch.out, rows_call(rows));
            let e = e.unwrap_err().to_string();
            assert!(e.contains("1 to 4 rows"), "{rows} rows: {e}");
        }
    }
}

/// int8 answers do not depend on padding (issue #29): dynamic quantization takes each
/// tensor's range over every position it sees, so an int8 plan of any length runs each row at
/// its exact length, and one pinned to N takes its ranges over the real positions only.
/// Whatever the granule, N, batch neighbours or pinning, a text's outputs equal, bit for bit,
/// those of a plan pinned to exactly its length.
#[test]
fn int8_answers_do_not_depend_on_granule_capacity_or_neighbours() {
    for flavour in ["ids", "embeds"] {
        let mut plans: Vec<(String, Runner)> = Vec::new();
        for n in [128, 512] {
            for g in [1, 8, 32] {
                let opts = LoadOptions::new().seq(n).granule(g);
                plans.push((
                    format!("N {n} granule {g}"),
                    Runner::new(flavour, "int8", opts),
                ));
            }
        }
        for n in [40, 128] {
            plans.push((
                format!("pinned to {n}"),
                Runner::new(flavour, "int8", fixed(n)),
            ));
        }
        let batch = LoadOptions::new().seq(128).batch(4);
        let mut batch = Runner::new(flavour, "int8", batch);
        for l in [1usize, 3, 6, 9, 13, 16, 17, 31, 40] {
            let ids = ids_for(l);
            let (he, pe) = Runner::new(flavour, "int8", fixed(l)).call(&ids);
            assert!(he.iter().chain(&pe).all(|v| v.is_finite()));
            for (what, r) in plans.iter_mut() {
                let (h, p) = r.call(&ids);
                let pinned = r.enc.plan().info().fixed_length;
                let at = if pinned { r.enc.plan().info().seq } else { l };
                assert_eq!(r.out.length(), at, "{flavour} {what} L {l}: ran at");
                assert!(
                    h[..l * H] == he[..] && p == pe,
                    "{flavour} {what} L {l}: differs from the plan pinned to L"
                );
            }
            // Row 1 of a batch whose other rows are longer, shorter and empty of meaning.
            let n = 128;
            let mut bid = vec![0i64; 4 * n];
            let mut mask = vec![0i64; 4 * n];
            for (r, len) in [(0, 50), (1, l), (2, 2), (3, 77)] {
                bid[r * n..r * n + len].copy_from_slice(&ids_for(len));
                mask[r * n..r * n + len].fill(1);
            }
            let (h, p) = batch.call_masked(&bid, &mask).unwrap();
            assert!(
                h[n * H..(n + l) * H] == he[..] && p[H..2 * H] == pe[..],
                "{flavour} batch of 4, L {l}: row 1 differs from the plan pinned to L"
            );
        }
    }
}
