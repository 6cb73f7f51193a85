//! `Encoder`: one reusable tract state over a shared [`Plan`], fed from caller buffers.
//!
//! The hot path validates the caller's buffers (batch × N positions), finds the length L the
//! call runs at (its longest real row, rounded up to the plan's granule; N for a fixed-length
//! plan), copies the first L positions of each row into the input tensors of that length
//! (made on the first call at L, then reused: [`super::input_cache`]), runs tract, and copies
//! the outputs into the caller's [`Outputs`] (positions ≥ L zeroed). Our own code allocates
//! nothing per call at a length already seen (see `tests/alloc.rs`); what tract allocates
//! inside `state.run` is measured there too.

use super::input_cache::InputCache;
use super::io::{Input, Outputs};
use super::plan::{Flavour, Plan};
use super::threads::Threads;
use crate::error::{Error, Result};
use half::f16;
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
        Ok(Encoder {
            plan,
            state,
            inputs,
            threads,
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
        self.run_rows(input, out, self.plan.info.batch)
    }

    /// [`Encoder::run`] on the first `rows` rows of a batch plan (1 ≤ `rows` ≤ batch), for a
    /// call that fills its batch only partly (the service's dynamic batching). The input
    /// buffers keep their full batch × N size; rows from `rows` on are not read (they may
    /// hold anything) and their outputs are written as zeros. An int8 plan runs just the
    /// `rows` rows; an f32/f16 plan runs its whole batch with the unused rows as one-token
    /// rows, at the call's length.
    pub fn run_rows<T: Copy + Into<i64>>(
        &mut self,
        input: Input<'_, T>,
        out: &mut Outputs,
        rows: usize,
    ) -> Result<()> {
        let i = &self.plan.info;
        if rows == 0 || rows > i.batch {
            return Err(Error::bad_input(format!(
                "{rows} rows: the plan takes 1 to {} rows a call",
                i.batch
            )));
        }
        if rows < i.batch && i.outputs.iter().any(|o| o.role.is_none()) {
            return Err(Error::bad_input(
                "this plan has outputs of unknown layout: run its whole batch (Encoder::run)",
            ));
        }
        self.expect_flavour(input.flavour())?;
        self.check_full(&input)?;
        let input = input.rows(0, rows, i.seq, i.hidden);
        self.check(&input, out, rows)?;
        self.run_checked(&input, out, None, rows)
    }

    /// [`Encoder::run`] at exactly `length` positions: at least the longest real row, at most
    /// N (a fixed-length plan: N only). For callers that group calls by length themselves.
    pub fn run_with_length<T: Copy + Into<i64>>(
        &mut self,
        input: Input<'_, T>,
        out: &mut Outputs,
        length: usize,
    ) -> Result<()> {
        self.check(&input, out, self.plan.info.batch)?;
        let real = self.real_length(input.mask_and_types().0);
        let n = self.plan.info.seq;
        if length < real || length > n || (self.plan.info.fixed_length && length != n) {
            return Err(Error::bad_input(format!(
                "length {length}: the call has a row of {real} positions and the plan takes {}",
                if self.plan.info.fixed_length {
                    format!("exactly {n}")
                } else {
                    format!("at most {n}")
                }
            )));
        }
        self.run_checked(&input, out, Some(length), self.plan.info.batch)
    }

    /// The longest row up to its last real token (the rows were checked non-empty).
    fn real_length<T: Copy + Into<i64>>(&self, mask: &[T]) -> usize {
        mask.chunks(self.plan.info.seq)
            .map(|row| row.iter().rposition(|v| int(*v) != 0).map_or(0, |p| p + 1))
            .max()
            .unwrap_or(0)
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
                let l = length.unwrap_or_else(|| {
                    self.plan
                        .run_length(self.real_length(rows.mask_and_types().0))
                });
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

    /// Checks `rows` rows of input (values and lengths) and the output buffers.
    fn check<T: Copy + Into<i64>>(
        &self,
        input: &Input<'_, T>,
        out: &Outputs,
        rows: usize,
    ) -> Result<()> {
        self.expect_flavour(input.flavour())?;
        let tokens = rows * self.plan.info.seq;
        match *input {
            Input::Ids { input_ids, .. } => {
                let vocab = self.plan.info.vocab_size.unwrap_or(usize::MAX);
                check_tokens("input_ids", input_ids, tokens, vocab)?;
            }
            Input::Embeds { inputs_embeds, .. } => {
                check_embeds(inputs_embeds, tokens * self.plan.info.hidden)?
            }
        }
        let (mask, types) = input.mask_and_types();
        self.check_mask_types(mask, types, tokens)?;
        self.check_outputs(out)
    }

    /// The buffers' lengths at full capacity (before [`Encoder::run_rows`] takes its rows).
    fn check_full<T: Copy + Into<i64>>(&self, input: &Input<'_, T>) -> Result<()> {
        let n = self.tokens_len();
        let (mask, types) = input.mask_and_types();
        let first = match *input {
            Input::Ids { input_ids, .. } => ("input_ids", input_ids.len(), n),
            Input::Embeds { inputs_embeds, .. } => {
                ("inputs_embeds", inputs_embeds.len(), self.hidden_len())
            }
        };
        let types_ok = types.is_empty() && !self.plan.info.token_types || types.len() == n;
        for (name, got, want) in [first, ("attention_mask", mask.len(), n)]
            .into_iter()
            .chain((!types_ok).then_some(("token_type_ids", types.len(), n)))
        {
            if got != want {
                return Err(Error::bad_input(format!(
                    "{name} has {got} values, the plan takes batch×N{} = {want}",
                    if name == "inputs_embeds" {
                        "×hidden"
                    } else {
                        ""
                    }
                )));
            }
        }
        Ok(())
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

    fn tokens_len(&self) -> usize {
        self.plan.info.batch * self.plan.info.seq
    }

    fn hidden_len(&self) -> usize {
        self.tokens_len() * self.plan.info.hidden
    }

    fn expect_flavour(&self, f: Flavour) -> Result<()> {
        if self.plan.info.flavour != f {
            return Err(Error::bad_input(format!(
                "this is an {} plan, the input is for an {f} plan (Input::{})",
                self.plan.info.flavour,
                match self.plan.info.flavour {
                    Flavour::Ids => "Ids",
                    Flavour::Embeds => "Embeds",
                }
            )));
        }
        Ok(())
    }

    fn check_mask_types<T: Copy + Into<i64>>(
        &self,
        mask: &[T],
        types: &[T],
        n: usize,
    ) -> Result<()> {
        check_tokens("attention_mask", mask, n, 2)?;
        if self.plan.info.token_types {
            check_tokens("token_type_ids", types, n, self.plan.info.type_vocab_size)?;
        } else if types.iter().any(|t| int(*t) != 0) {
            return Err(Error::bad_input(
                "this graph takes no token_type_ids: it cannot tell a text pair's second \
                 segment (give all zeros, or no token types)",
            ));
        } else if !types.is_empty() {
            check_tokens("token_type_ids", types, n, 1)?;
        }
        let seq = self.plan.info.seq;
        for (row, m) in mask.chunks(seq).enumerate() {
            if m.iter().all(|v| int(*v) == 0) {
                return Err(Error::bad_input(format!(
                    "attention_mask row {row} is all zeros: no token to attend to"
                )));
            }
        }
        Ok(())
    }

    fn check_outputs(&self, out: &Outputs) -> Result<()> {
        let specs = &self.plan.info.outputs;
        let same_names = out.specs.len() == specs.len()
            && out.specs.iter().zip(specs).all(|(a, b)| a.name == b.name);
        if !same_names {
            return Err(Error::bad_input(
                "the output buffers were made for another plan (use Plan::outputs)",
            ));
        }
        for (spec, v) in specs.iter().zip(&out.values) {
            let got = v.as_ref().map_or(spec.len(), Vec::len);
            if got != spec.len() {
                return Err(Error::bad_input(format!(
                    "{} buffer has {got} values, the plan writes {} (use Plan::outputs)",
                    spec.name,
                    spec.len()
                )));
            }
        }
        Ok(())
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

/// A run's geometry: `batch` rows of capacity `n` positions, run at length `l` ≤ n, of which
/// the first `real` come from the caller (the rest are one-token filler rows,
/// [`Encoder::run_rows`]).
#[derive(Debug, Clone, Copy)]
struct Rows {
    batch: usize,
    real: usize,
    n: usize,
    l: usize,
}

impl Rows {
    /// Pairs each destination row (`l` × `w` values) with its source row (`n` × `w`), for
    /// the `real` rows.
    fn each<'a, D, S>(
        self,
        dst: &'a mut [D],
        src: &'a [S],
        w: usize,
    ) -> impl Iterator<Item = (&'a mut [D], &'a [S])> {
        dst.chunks_mut(self.l * w)
            .zip(src.chunks(self.n * w))
            .map(move |(d, s)| (d, &s[..self.l * w]))
    }

    /// The filler rows of a run's input tensor (`l` × `w` values each).
    fn filler<D>(self, dst: &mut [D], w: usize) -> impl Iterator<Item = &mut [D]> {
        dst.chunks_mut(self.l * w).skip(self.real)
    }
}

/// Zeroes rows `r..r + k` (of `b`) of every output: rows a call does not use.
fn zero_rows(out: &mut Outputs, r: usize, k: usize, b: usize) {
    for v in out.values.iter_mut().flatten() {
        let per_row = v.len() / b.max(1);
        v[r * per_row..(r + k) * per_row].fill(0.0);
    }
}

fn check_embeds(embeds: &[f32], want: usize) -> Result<()> {
    if embeds.len() != want {
        return Err(Error::bad_input(format!(
            "inputs_embeds has {} values, the plan takes batch×N×hidden = {want}",
            embeds.len()
        )));
    }
    if let Some(i) = embeds.iter().position(|v| !v.is_finite()) {
        return Err(Error::bad_input(format!(
            "inputs_embeds[{i}] is {} (every value must be finite)",
            embeds[i]
        )));
    }
    Ok(())
}

fn fill_embeds(arc: &mut Arc<Tensor>, embeds: &[f32], rows: Rows, hidden: usize) -> Result<()> {
    let t = exclusive(arc)?;
    match t.datum_type() {
        DatumType::F32 => write::<f32>(t, |d| {
            rows.each(d, embeds, hidden)
                .for_each(|(d, s)| d.copy_from_slice(s));
            rows.filler(d, hidden).for_each(|d| d.fill(0.0));
        }),
        DatumType::F16 => write::<f16>(t, |d| {
            for (d, s) in rows.each(d, embeds, hidden) {
                d.iter_mut()
                    .zip(s)
                    .for_each(|(d, s)| *d = f16::from_f32(*s))
            }
            rows.filler(d, hidden).for_each(|d| d.fill(f16::ZERO));
        }),
        dt => Err(Error::bad_model(format!("inputs_embeds of type {dt:?}"))),
    }
}

fn int<T: Into<i64>>(v: T) -> i64 {
    v.into()
}

fn check_tokens<T: Copy + Into<i64>>(name: &str, v: &[T], len: usize, bound: usize) -> Result<()> {
    if v.len() != len {
        return Err(Error::bad_input(format!(
            "{name} has {} values, the plan takes batch×N = {len}",
            v.len()
        )));
    }
    if let Some(i) = v
        .iter()
        .position(|x| int(*x) < 0 || int(*x) as u64 >= bound as u64)
    {
        return Err(Error::bad_input(format!(
            "{name}[{i}] = {} is out of range 0..{bound}",
            int(v[i])
        )));
    }
    Ok(())
}

/// The tensor behind `arc`, writable: tract has dropped its references after the last run.
fn exclusive(arc: &mut Arc<Tensor>) -> Result<&mut Tensor> {
    if Arc::get_mut(arc).is_none() {
        // tract kept a reference (never seen): take a private copy rather than write under it.
        *arc = Arc::new((**arc).clone());
    }
    Arc::get_mut(arc).ok_or_else(|| Error::Engine(anyhow::anyhow!("input tensor still shared")))
}

/// Runs `f` on the tensor's elements as a mutable slice of `D`.
fn write<D: Datum>(t: &mut Tensor, f: impl FnOnce(&mut [D])) -> Result<()> {
    let mut view = t
        .as_plain_ram_mut()
        .ok_or_else(|| Error::Engine(anyhow::anyhow!("input tensor is not in plain memory")))?;
    f(view.as_slice_mut::<D>().map_err(Error::Engine)?);
    Ok(())
}

/// Fills a token tensor from `v`; filler rows get `first` at position 0 and zeros after it
/// (mask: one real token; ids and types: 0).
fn fill_tokens<T: Copy + Into<i64>>(
    arc: &mut Arc<Tensor>,
    v: &[T],
    rows: Rows,
    first: i64,
) -> Result<()> {
    /// Values were range-checked against the plan's bounds; a graph whose integer type
    /// cannot hold them (e.g. ids in `uint8`) gets an error rather than wrapped values.
    fn narrow<D: Datum + TryFrom<i64>, T: Copy + Into<i64>>(
        t: &mut Tensor,
        v: &[T],
        rows: Rows,
        first: i64,
    ) -> Result<()> {
        let mut bad = None;
        let mut cast = |x: i64, d: &mut D| match D::try_from(x) {
            Ok(x) => *d = x,
            Err(_) => bad = Some(x),
        };
        write::<D>(t, |d| {
            for (d, s) in rows.each(d, v, 1) {
                for (d, s) in d.iter_mut().zip(s) {
                    cast(int(*s), d);
                }
            }
            for d in rows.filler(d, 1) {
                for (j, d) in d.iter_mut().enumerate() {
                    cast(if j == 0 { first } else { 0 }, d);
                }
            }
        })?;
        match bad {
            Some(x) => Err(Error::bad_input(format!(
                "token value {x} does not fit the graph's {:?} input",
                D::datum_type()
            ))),
            None => Ok(()),
        }
    }
    let t = exclusive(arc)?;
    match t.datum_type() {
        DatumType::I64 => write::<i64>(t, |d| {
            for (d, s) in rows.each(d, v, 1) {
                d.iter_mut().zip(s).for_each(|(d, s)| *d = int(*s))
            }
            for d in rows.filler(d, 1) {
                d.fill(0);
                d[0] = first;
            }
        }),
        DatumType::I32 => narrow::<i32, T>(t, v, rows, first),
        DatumType::U32 => narrow::<u32, T>(t, v, rows, first),
        DatumType::I16 => narrow::<i16, T>(t, v, rows, first),
        DatumType::U16 => narrow::<u16, T>(t, v, rows, first),
        DatumType::I8 => narrow::<i8, T>(t, v, rows, first),
        DatumType::U8 => narrow::<u8, T>(t, v, rows, first),
        DatumType::U64 => narrow::<u64, T>(t, v, rows, first),
        dt => Err(Error::bad_model(format!("token input of type {dt:?}"))),
    }
}

/// Copies one output into the caller's buffer, widening f16. A per-token output comes as
/// `[batch, l, w]` and goes to `[batch, n, w]`, positions ≥ l zeroed; another as
/// `[batch, w]`. Filler rows are written as zeros.
fn copy_out(value: &TValue, out: &mut [f32], per_token: bool, r: Rows) -> Result<()> {
    fn copy<S: Datum>(
        src: &[S],
        out: &mut [f32],
        per_token: bool,
        r: Rows,
        f: impl Fn(&S) -> f32,
    ) -> Result<()> {
        if !per_token {
            if src.len() != out.len() {
                return Err(Error::Engine(anyhow::anyhow!(
                    "output of {} values for a buffer of {}",
                    src.len(),
                    out.len()
                )));
            }
            // Batch-first (checked at load for plans whose rows can be left unused).
            let keep = out.len() / r.batch.max(1) * r.real;
            let (real, filler) = out.split_at_mut(if r.real == r.batch { out.len() } else { keep });
            real.iter_mut().zip(src).for_each(|(d, s)| *d = f(s));
            filler.fill(0.0);
            return Ok(());
        }
        let (n, l) = (r.n, r.l);
        let w = out.len() / (r.batch * n).max(1);
        if src.len() != r.batch * l * w || out.len() != r.batch * n * w {
            return Err(Error::Engine(anyhow::anyhow!(
                "output of {} values at length {l} for a buffer of {}",
                src.len(),
                out.len()
            )));
        }
        let (real, filler) = out.split_at_mut(r.real * n * w);
        for (d, s) in real.chunks_mut(n * w).zip(src.chunks(l * w)) {
            let (real, rest) = d.split_at_mut(l * w);
            real.iter_mut().zip(s).for_each(|(d, s)| *d = f(s));
            rest.fill(0.0);
        }
        filler.fill(0.0);
        Ok(())
    }
    let view = value.try_as_plain_ram().map_err(Error::Engine)?;
    match value.datum_type() {
        DatumType::F32 => copy(
            view.as_slice::<f32>().map_err(Error::Engine)?,
            out,
            per_token,
            r,
            |s| *s,
        ),
        DatumType::F16 => copy(
            view.as_slice::<f16>().map_err(Error::Engine)?,
            out,
            per_token,
            r,
            |s| s.to_f32(),
        ),
        dt => Err(Error::bad_model(format!("output of type {dt:?}"))),
    }
}
