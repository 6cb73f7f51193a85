//! `Encoder`: one reusable tract state over a shared [`Plan`], fed from caller buffers.
//!
//! The hot path validates the caller's buffers (batch × N positions), finds the length L the
//! call runs at (its longest real row, rounded up to the plan's granule; N for a fixed-length
//! plan), copies the first L positions of each row into the input tensors of that length
//! (made on the first call at L, then reused: [`super::input_cache`]), runs tract, and copies
//! the outputs into the caller's [`Outputs`] (positions ≥ L zeroed). Our own code allocates
//! nothing per call at a length already seen (see `tests/alloc.rs`); what tract allocates
//! inside `state.run` is measured there too.

mod copy_out;
mod fill;
mod validate;

use super::input_cache::InputCache;
use super::io::{Input, Outputs};
use super::threads::Threads;
use super::{Flavour, Plan};
use crate::error::{Error, Result};
use copy_out::{copy_out, zero_rows};
use fill::{fill_embeds, fill_tokens, Rows};
use std::sync::Arc;
use tract_core::internal::*;

/// Runs a [`Plan`] again and again with buffers the caller owns.
///
/// One `Encoder` per worker thread; the plan is shared (`Arc`). Example: [`Encoder::run`].
#[derive(Debug)]
pub struct Encoder {
    plan: Arc<Plan>,
    state: TypedSimpleState,
    /// Input tensors (first input, attention_mask, token_type_ids if the graph takes them)
    /// by call length, refilled every call.
    inputs: InputCache,
    /// tract's matmul threads ([`LoadOptions::threads`](crate::LoadOptions::threads)).
    threads: Option<Threads>,
    /// Each used row's real length (its last real token + 1), measured by `validate` once a
    /// call; capacity the batch, so a call never allocates it.
    lengths: Vec<usize>,
}

/// What a call of [`Encoder::run_with`] runs: the default is [`Encoder::run`]'s (every row of
/// the batch, each group at [`Plan::run_length`] of its longest row).
///
/// ```
/// use bert_edge::Call;
/// let first_two = Call { rows: Some(2), ..Call::default() };
/// assert_eq!(first_two.length, None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Call {
    /// Run only the first `rows` rows of the batch (1 ≤ rows ≤ batch).
    pub rows: Option<usize>,
    /// Run at exactly this many positions.
    pub length: Option<usize>,
}

impl Encoder {
    /// Allocates the input tensors, the tract state and (for `threads` > 1) the thread pool
    /// for `plan` (see [`Encoder::run`]).
    pub fn new(plan: Arc<Plan>) -> Result<Encoder> {
        let threads = Threads::new(plan.threads)?;
        let state = plan.runnable.spawn().map_err(Error::Engine)?;
        let model = plan.runnable.model();
        let info = &plan.info;
        let mut kinds = [None; 3];
        for (k, (kind, ix)) in kinds.iter_mut().zip(plan.input_ix).enumerate() {
            let Some(ix) = ix else { continue };
            let fact = model.input_fact(ix).map_err(Error::Engine)?;
            let embeds = k == 0 && info.flavour == Flavour::Embeds;
            *kind = Some((fact.datum_type, if embeds { info.hidden } else { 0 }));
        }
        let granule = if info.fixed_length {
            info.seq
        } else {
            plan.granule
        };
        let mut inputs = InputCache::new(kinds, plan.run_batch, info.seq, granule);
        // The capacity set now: a fixed-length plan never allocates another.
        inputs.get(info.seq)?;
        let lengths = Vec::with_capacity(info.batch);
        Ok(Encoder {
            plan,
            state,
            inputs,
            threads,
            lengths,
        })
    }

    /// The plan this encoder runs.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// Runs one call: checks `input` against the plan, runs it, and overwrites `out`
    /// (from [`Plan::outputs`]). Allocates nothing in this crate's code.
    ///
    /// Token buffers are batch × N long (N = [`PlanInfo::seq`](crate::PlanInfo::seq)): ids
    /// below the vocabulary size, types below the type vocabulary, mask values 0 or 1 with
    /// at least one 1 per row (a row with no real token has no meaningful embedding: error).
    /// `inputs_embeds` is batch × N × hidden, all finite. A plan of any length runs the call
    /// at L = [`Plan::run_length`] of its longest row (the last 1 of the mask; zeros before
    /// it, e.g. left padding or holes, stay masked as in a fixed-length run). Per-position
    /// outputs ([`Outputs::last_hidden_state`], token and masked-LM logits) hold zeros at
    /// positions ≥ L; [`Outputs::length`] says L. The rows of an f32/f16 batch run together
    /// at the longest row's L; an int8 batch runs row by row, each row at its own L (dynamic
    /// quantization takes one range per tensor: rows run together would change each other's
    /// outputs). A panic inside tract is returned as [`Error::Engine`] and the encoder
    /// starts over with a fresh state.
    ///
    /// ```
    /// # #[cfg(feature = "onnx")] {
    /// use bert_edge::{Encoder, Input, LoadOptions, Plan};
    /// use std::sync::Arc;
    /// let plan = Arc::new(Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?);
    /// let mut encoder = Encoder::new(plan.clone())?;
    /// let mut out = plan.outputs();
    /// let ids = [101i64, 2769, 4263, 2110, 739, 102, 0, 0];
    /// let mask = [1i64, 1, 1, 1, 1, 1, 0, 0];
    /// encoder.run(Input::Ids { input_ids: &ids, attention_mask: &mask, token_type_ids: &[0; 8] }, &mut out)?;
    /// assert!(out.pooler_output().is_some_and(|p| p.iter().all(|v| v.is_finite())));
    /// # }
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn run<T: Copy + Into<i64>>(
        &mut self,
        input: Input<'_, T>,
        out: &mut Outputs,
    ) -> Result<()> {
        self.run_with(input, out, Call::default())
    }

    /// [`Encoder::run`] with a [`Call`]: only the first `rows` rows of a batch plan (the
    /// service's dynamic batching: rows from `rows` on are not read and their outputs are
    /// written as zeros; an int8 plan runs just those rows, an f32/f16 plan its whole batch
    /// with the unused rows as one-token rows), and/or at exactly `length` positions (at least
    /// the longest real row, at most N; a fixed-length plan: N only).
    ///
    /// ```
    /// # #[cfg(feature = "onnx")] {
    /// use bert_edge::{Call, Encoder, Input, LoadOptions, Plan};
    /// use std::sync::Arc;
    /// let plan = Arc::new(Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?);
    /// let mut encoder = Encoder::new(plan.clone())?;
    /// let mut out = plan.outputs();
    /// let ids = [101i64, 2769, 4263, 2110, 739, 102, 0, 0];
    /// let mask = [1i64, 1, 1, 1, 1, 1, 0, 0];
    /// let call = Call { length: Some(7), ..Call::default() };
    /// encoder.run_with(Input::Ids { input_ids: &ids, attention_mask: &mask, token_type_ids: &[0; 8] }, &mut out, call)?;
    /// assert_eq!(out.length(), 7);
    /// # }
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn run_with<T: Copy + Into<i64>>(
        &mut self,
        input: Input<'_, T>,
        out: &mut Outputs,
        call: Call,
    ) -> Result<()> {
        let rows = self.validate(&input, out, call)?;
        let i = &self.plan.info;
        let input = input.rows(0, rows, i.seq, i.hidden);
        self.run_checked(&input, out, call.length, rows)
    }

    /// Runs the `real` rows of `input` (checked, `real` × N positions).
    fn run_checked<T: Copy + Into<i64>>(
        &mut self,
        input: &Input<'_, T>,
        out: &mut Outputs,
        length: Option<usize>,
        real: usize,
    ) -> Result<()> {
        let res = crate::error::guard("running the plan", || {
            let i = &self.plan.info;
            let (b, n, h) = (i.batch, i.seq, i.hidden);
            let k = self.plan.run_batch;
            // All rows in one run (k = b), or one by one (int8), each group at its own length.
            let mut longest = 0;
            for r in (0..b).step_by(k) {
                if r >= real {
                    // int8, a row the call does not use: zeros, as documented.
                    zero_rows(out, r, k, b);
                    continue;
                }
                let used = k.min(real - r);
                let rows = input.rows(r, used, n, h);
                // Each row's real length was measured once, by `validate`.
                let real_l = self.lengths[r..r + used].iter().copied().max().unwrap_or(1);
                let l = length.unwrap_or_else(|| self.plan.run_length(real_l));
                let geometry = Rows {
                    batch: k,
                    real: used,
                    n,
                    l,
                };
                self.fill_and_run(&rows, out, geometry, r)?;
                longest = longest.max(l);
            }
            out.length = longest;
            Ok(())
        });
        if let Err(Error::Engine(_)) = &res {
            // The tract state may be half-updated: start over with a fresh one.
            if let Ok(state) = self.plan.runnable.spawn() {
                self.state = state;
            }
        }
        res
    }

    /// One tract run of `rows.batch` rows at length `rows.l`, written to the caller's rows
    /// from `first_row` on.
    fn fill_and_run<T: Copy + Into<i64>>(
        &mut self,
        input: &Input<'_, T>,
        out: &mut Outputs,
        rows: Rows,
        first_row: usize,
    ) -> Result<()> {
        let p = &self.plan;
        let set = self.inputs.get(rows.l)?;
        let [first, m, t] = &mut *set;
        let missing = || Error::bad_model("the plan lost an input tensor");
        let first = first.as_mut().ok_or_else(missing)?;
        match *input {
            Input::Ids { input_ids, .. } => fill_tokens(first, input_ids, rows, 0)?,
            Input::Embeds { inputs_embeds, .. } => {
                fill_embeds(first, inputs_embeds, rows, p.info.hidden)?
            }
        }
        let (mask, types) = input.mask_and_types();
        fill_tokens(m.as_mut().ok_or_else(missing)?, mask, rows, 1)?;
        if let Some(t) = t {
            fill_tokens(t, types, rows, 0)?;
        }
        // Model input order; `tvec!` of ≤ 3 stays inline (no heap), cloning an Arc does not
        // allocate.
        let mut ordered: [Option<TValue>; 3] = [None, None, None];
        for (t, ix) in set.iter().zip(p.input_ix) {
            if let (Some(t), Some(ix)) = (t, ix) {
                ordered[ix] = Some(TValue::from_const(t.clone()));
            }
        }
        let mut values: TVec<TValue> = tvec![];
        values.extend(ordered.into_iter().flatten());
        self.run_state(values, out, rows, first_row)
    }

    /// Runs tract on `values` (model input order) and copies the outputs to the caller's rows
    /// from `first_row` on.
    fn run_state(
        &mut self,
        values: TVec<TValue>,
        out: &mut Outputs,
        rows: Rows,
        first_row: usize,
    ) -> Result<()> {
        let p = &self.plan;
        let state = &mut self.state;
        let outputs = match &mut self.threads {
            Some(t) => t.run(|| state.run(values)),
            None => state.run(values),
        }
        .map_err(Error::Engine)?;
        for ((ix, tokens), dst) in p
            .output_ix
            .iter()
            .zip(&p.per_token)
            .zip(out.values.iter_mut())
        {
            if let Some(dst) = dst {
                let dst = if rows.batch == p.info.batch {
                    &mut dst[..]
                } else {
                    let per_row = dst.len() / p.info.batch;
                    &mut dst[first_row * per_row..(first_row + rows.batch) * per_row]
                };
                copy_out(&outputs[*ix], dst, *tokens, rows)?;
            }
        }
        Ok(())
    }
}
