//! `Encoder`: one reusable tract state over a shared [`Plan`], fed from caller buffers.
//!
//! The hot path validates the caller's buffers, copies them into input tensors allocated
//! once in [`Encoder::new`], runs tract, and copies the outputs into the caller's [`Outputs`].
//! Our own code allocates nothing per call (see `tests/alloc.rs`); what tract allocates
//! inside `state.run` is measured there too.

use super::io::{Input, Outputs};
use super::plan::{Flavour, Plan};
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
    /// Input tensors (first input, attention_mask, token_type_ids if the graph takes them),
    /// allocated once, refilled every call.
    inputs: [Option<Arc<Tensor>>; 3],
}

impl Encoder {
    /// Allocates the input tensors and the tract state for `plan` (see [`Encoder::run`]).
    pub fn new(plan: Arc<Plan>) -> Result<Encoder> {
        let state = plan.runnable.spawn().map_err(Error::Engine)?;
        let model = plan.runnable.model();
        let mut inputs: [Option<Arc<Tensor>>; 3] = [None, None, None];
        for (slot, ix) in inputs.iter_mut().zip(plan.input_ix) {
            let Some(ix) = ix else { continue };
            let fact = model.input_fact(ix).map_err(Error::Engine)?;
            let shape = fact.shape.as_concrete().ok_or_else(|| {
                Error::bad_model(format!("input {ix} has a symbolic shape {:?}", fact.shape))
            })?;
            *slot = Some(Arc::new(
                Tensor::zero_dt(fact.datum_type, shape).map_err(Error::Engine)?,
            ));
        }
        Ok(Encoder {
            plan,
            state,
            inputs,
        })
    }

    /// The plan this encoder runs.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// Runs one call: checks `input` against the plan, runs it, and overwrites `out`
    /// (from [`Plan::outputs`]). Allocates nothing in this crate's code.
    ///
    /// Token buffers are batch × seq long: ids below the vocabulary size, types below the
    /// type vocabulary, mask values 0 or 1 with at least one 1 per row (a row with no real
    /// token has no meaningful embedding: error). `inputs_embeds` is batch × seq × hidden,
    /// all finite. A panic inside tract is returned as [`Error::Engine`] and the encoder
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
        self.check(&input, out)?;
        let res = crate::error::guard("running the plan", || self.fill_and_run(&input, out));
        if let Err(Error::Engine(_)) = &res {
            // The tract state may be half-updated: start over with a fresh one.
            if let Ok(state) = self.plan.runnable.spawn() {
                self.state = state;
            }
        }
        res
    }

    fn check<T: Copy + Into<i64>>(&self, input: &Input<'_, T>, out: &Outputs) -> Result<()> {
        self.expect_flavour(input.flavour())?;
        match *input {
            Input::Ids { input_ids, .. } => {
                let vocab = self.plan.info.vocab_size.unwrap_or(usize::MAX);
                check_tokens("input_ids", input_ids, self.tokens_len(), vocab)?;
            }
            Input::Embeds { inputs_embeds, .. } => check_embeds(inputs_embeds, self.hidden_len())?,
        }
        let (mask, types) = input.mask_and_types();
        self.check_mask_types(mask, types)?;
        self.check_outputs(out)
    }

    fn fill_and_run<T: Copy + Into<i64>>(
        &mut self,
        input: &Input<'_, T>,
        out: &mut Outputs,
    ) -> Result<()> {
        let [first, m, t] = &mut self.inputs;
        let missing = || Error::bad_model("the plan lost an input tensor");
        let first = first.as_mut().ok_or_else(missing)?;
        match *input {
            Input::Ids { input_ids, .. } => fill_tokens(first, input_ids)?,
            Input::Embeds { inputs_embeds, .. } => fill_embeds(first, inputs_embeds)?,
        }
        let (mask, types) = input.mask_and_types();
        fill_tokens(m.as_mut().ok_or_else(missing)?, mask)?;
        if let Some(t) = t {
            fill_tokens(t, types)?;
        }
        self.run_state(out)
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

    fn check_mask_types<T: Copy + Into<i64>>(&self, mask: &[T], types: &[T]) -> Result<()> {
        let n = self.tokens_len();
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

    fn run_state(&mut self, out: &mut Outputs) -> Result<()> {
        let p = &self.plan;
        // Model input order; `tvec!` of ≤ 3 stays inline (no heap), cloning an Arc does not
        // allocate.
        let mut ordered: [Option<TValue>; 3] = [None, None, None];
        for (t, ix) in self.inputs.iter().zip(p.input_ix) {
            if let (Some(t), Some(ix)) = (t, ix) {
                ordered[ix] = Some(TValue::from_const(t.clone()));
            }
        }
        let mut values: TVec<TValue> = tvec![];
        values.extend(ordered.into_iter().flatten());
        let outputs = self.state.run(values).map_err(Error::Engine)?;
        for (ix, dst) in p.output_ix.iter().zip(out.values.iter_mut()) {
            if let Some(dst) = dst {
                copy_out(&outputs[*ix], dst)?;
            }
        }
        Ok(())
    }
}

fn check_embeds(embeds: &[f32], want: usize) -> Result<()> {
    if embeds.len() != want {
        return Err(Error::bad_input(format!(
            "inputs_embeds has {} values, the plan takes batch×seq×hidden = {want}",
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

fn fill_embeds(arc: &mut Arc<Tensor>, embeds: &[f32]) -> Result<()> {
    let t = exclusive(arc)?;
    match t.datum_type() {
        DatumType::F32 => write::<f32>(t, |d| d.copy_from_slice(embeds)),
        DatumType::F16 => write::<f16>(t, |d| {
            d.iter_mut()
                .zip(embeds)
                .for_each(|(d, s)| *d = f16::from_f32(*s))
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
            "{name} has {} values, the plan takes batch×seq = {len}",
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

fn fill_tokens<T: Copy + Into<i64>>(arc: &mut Arc<Tensor>, v: &[T]) -> Result<()> {
    /// Values were range-checked against the plan's bounds; a graph whose integer type
    /// cannot hold them (e.g. ids in `uint8`) gets an error rather than wrapped values.
    fn narrow<D: Datum + TryFrom<i64>, T: Copy + Into<i64>>(t: &mut Tensor, v: &[T]) -> Result<()> {
        let mut bad = None;
        write::<D>(t, |d| {
            for (d, s) in d.iter_mut().zip(v) {
                match D::try_from(int(*s)) {
                    Ok(x) => *d = x,
                    Err(_) => bad = Some(int(*s)),
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
        DatumType::I64 => write::<i64>(t, |d| d.iter_mut().zip(v).for_each(|(d, s)| *d = int(*s))),
        DatumType::I32 => narrow::<i32, T>(t, v),
        DatumType::U32 => narrow::<u32, T>(t, v),
        DatumType::I16 => narrow::<i16, T>(t, v),
        DatumType::U16 => narrow::<u16, T>(t, v),
        DatumType::I8 => narrow::<i8, T>(t, v),
        DatumType::U8 => narrow::<u8, T>(t, v),
        DatumType::U64 => narrow::<u64, T>(t, v),
        dt => Err(Error::bad_model(format!("token input of type {dt:?}"))),
    }
}

fn copy_out(value: &TValue, out: &mut [f32]) -> Result<()> {
    let view = value.try_as_plain_ram().map_err(Error::Engine)?;
    match value.datum_type() {
        DatumType::F32 => out.copy_from_slice(view.as_slice::<f32>().map_err(Error::Engine)?),
        DatumType::F16 => {
            for (d, s) in out
                .iter_mut()
                .zip(view.as_slice::<f16>().map_err(Error::Engine)?)
            {
                *d = s.to_f32();
            }
        }
        dt => return Err(Error::bad_model(format!("output of type {dt:?}"))),
    }
    Ok(())
}
