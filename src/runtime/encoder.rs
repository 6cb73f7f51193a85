//! `Encoder`: one reusable tract state over a shared [`Plan`], fed from caller buffers.
//!
//! The hot path validates the caller's buffers, copies them into input tensors allocated
//! once in [`Encoder::new`], runs tract, and copies the two outputs into caller buffers.
//! Our own code allocates nothing per call (see `tests/alloc.rs`); what tract allocates
//! inside `state.run` is measured there too.

use super::plan::{Flavour, Plan};
use crate::error::{Error, Result};
use half::f16;
use std::sync::Arc;
use tract_core::internal::*;

/// An integer type token ids, masks and token types can be given in.
pub trait TokenValue: Copy {
    /// The value as i64 (the graphs take int64).
    fn to_i64(self) -> i64;
}
impl TokenValue for i64 {
    fn to_i64(self) -> i64 {
        self
    }
}
impl TokenValue for i32 {
    fn to_i64(self) -> i64 {
        self as i64
    }
}
impl TokenValue for u32 {
    fn to_i64(self) -> i64 {
        self as i64
    }
}
impl TokenValue for u16 {
    fn to_i64(self) -> i64 {
        self as i64
    }
}
impl TokenValue for u8 {
    fn to_i64(self) -> i64 {
        self as i64
    }
}

/// Runs a [`Plan`] again and again with buffers the caller owns.
///
/// One `Encoder` per worker thread; the plan is shared (`Arc`).
#[derive(Debug)]
pub struct Encoder {
    plan: Arc<Plan>,
    state: TypedSimpleState,
    /// Input tensors in the plan's input order, allocated once, refilled every call.
    inputs: [Arc<Tensor>; 3],
}

impl Encoder {
    /// Allocates the input tensors and the tract state for `plan`.
    pub fn new(plan: Arc<Plan>) -> Result<Encoder> {
        let state = plan.runnable.spawn().map_err(Error::Engine)?;
        let model = plan.model();
        let mut inputs: Vec<Arc<Tensor>> = Vec::with_capacity(3);
        for ix in 0..3 {
            let fact = model.input_fact(ix).map_err(Error::Engine)?;
            let shape = fact.shape.as_concrete().ok_or_else(|| {
                Error::bad_model(format!("input {ix} has a symbolic shape {:?}", fact.shape))
            })?;
            inputs.push(Arc::new(
                Tensor::zero_dt(fact.datum_type, shape).map_err(Error::Engine)?,
            ));
        }
        let inputs: [Arc<Tensor>; 3] = inputs
            .try_into()
            .map_err(|_| Error::bad_model("expected three inputs"))?;
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

    /// Runs an `input_ids` plan.
    ///
    /// `input_ids`, `attention_mask` and `token_type_ids` are batch × seq long; ids must be
    /// below the vocabulary size, types below the type vocabulary, mask values 0 or 1 with at
    /// least one 1 per row (a row with no real token has no meaningful embedding: error).
    /// `last_hidden_state` (batch × seq × hidden) and `pooler_output` (batch × hidden) are
    /// overwritten.
    pub fn run_ids<T: TokenValue>(
        &mut self,
        input_ids: &[T],
        attention_mask: &[T],
        token_type_ids: &[T],
        last_hidden_state: &mut [f32],
        pooler_output: &mut [f32],
    ) -> Result<()> {
        self.expect_flavour(Flavour::Ids)?;
        let vocab = self.plan.info.vocab_size.unwrap_or(usize::MAX);
        check_tokens("input_ids", input_ids, self.plan.tokens_len(), vocab)?;
        self.check_mask_types(attention_mask, token_type_ids)?;
        self.check_outputs(last_hidden_state, pooler_output)?;
        fill_tokens(&mut self.inputs[0], input_ids)?;
        self.fill_mask_types(attention_mask, token_type_ids)?;
        self.run(last_hidden_state, pooler_output)
    }

    /// Runs an `inputs_embeds` plan.
    ///
    /// `inputs_embeds` is batch × seq × hidden f32, all finite (e.g. `word_embeddings[ids]`
    /// from [`crate::WordEmbeddings`], possibly edited). The other buffers are as in
    /// [`Encoder::run_ids`].
    pub fn run_embeds<T: TokenValue>(
        &mut self,
        inputs_embeds: &[f32],
        attention_mask: &[T],
        token_type_ids: &[T],
        last_hidden_state: &mut [f32],
        pooler_output: &mut [f32],
    ) -> Result<()> {
        self.expect_flavour(Flavour::Embeds)?;
        let want = self.plan.hidden_len();
        if inputs_embeds.len() != want {
            return Err(Error::bad_input(format!(
                "inputs_embeds has {} values, the plan takes batch×seq×hidden = {want}",
                inputs_embeds.len()
            )));
        }
        if let Some(i) = inputs_embeds.iter().position(|v| !v.is_finite()) {
            return Err(Error::bad_input(format!(
                "inputs_embeds[{i}] is {} (every value must be finite)",
                inputs_embeds[i]
            )));
        }
        self.check_mask_types(attention_mask, token_type_ids)?;
        self.check_outputs(last_hidden_state, pooler_output)?;
        let t = exclusive(&mut self.inputs[0])?;
        match t.datum_type() {
            DatumType::F32 => write::<f32>(t, |d| d.copy_from_slice(inputs_embeds))?,
            DatumType::F16 => write::<f16>(t, |d| {
                d.iter_mut()
                    .zip(inputs_embeds)
                    .for_each(|(d, s)| *d = f16::from_f32(*s))
            })?,
            dt => return Err(Error::bad_model(format!("inputs_embeds of type {dt:?}"))),
        }
        self.fill_mask_types(attention_mask, token_type_ids)?;
        self.run(last_hidden_state, pooler_output)
    }

    fn expect_flavour(&self, f: Flavour) -> Result<()> {
        if self.plan.info.flavour != f {
            return Err(Error::bad_input(format!(
                "this is an {} plan: call run_{}",
                self.plan.info.flavour, self.plan.info.flavour
            )));
        }
        Ok(())
    }

    fn check_mask_types<T: TokenValue>(&self, mask: &[T], types: &[T]) -> Result<()> {
        let n = self.plan.tokens_len();
        check_tokens("attention_mask", mask, n, 2)?;
        check_tokens("token_type_ids", types, n, self.plan.info.type_vocab_size)?;
        let seq = self.plan.info.seq;
        for (row, m) in mask.chunks(seq).enumerate() {
            if m.iter().all(|v| v.to_i64() == 0) {
                return Err(Error::bad_input(format!(
                    "attention_mask row {row} is all zeros: no token to attend to"
                )));
            }
        }
        Ok(())
    }

    fn check_outputs(&self, hidden: &[f32], pooled: &[f32]) -> Result<()> {
        if hidden.len() != self.plan.hidden_len() {
            return Err(Error::bad_input(format!(
                "last_hidden_state buffer has {} values, the plan writes {}",
                hidden.len(),
                self.plan.hidden_len()
            )));
        }
        if pooled.len() != self.plan.pooled_len() {
            return Err(Error::bad_input(format!(
                "pooler_output buffer has {} values, the plan writes {}",
                pooled.len(),
                self.plan.pooled_len()
            )));
        }
        Ok(())
    }

    fn fill_mask_types<T: TokenValue>(&mut self, mask: &[T], types: &[T]) -> Result<()> {
        let [_, m, t] = &mut self.inputs;
        fill_tokens(m, mask)?;
        fill_tokens(t, types)
    }

    fn run(&mut self, hidden: &mut [f32], pooled: &mut [f32]) -> Result<()> {
        let p = &self.plan;
        // Model input order; `tvec!` of 3 stays inline (no heap), cloning an Arc does not allocate.
        let mut ordered: [Option<TValue>; 3] = [None, None, None];
        for (k, ix) in p.input_ix.iter().enumerate() {
            ordered[*ix] = Some(TValue::from_const(self.inputs[k].clone()));
        }
        let [a, b, c] = ordered;
        let (Some(a), Some(b), Some(c)) = (a, b, c) else {
            return Err(Error::bad_model(
                "input indices do not cover the three inputs",
            ));
        };
        let outputs = self.state.run(tvec![a, b, c]).map_err(Error::Engine)?;
        copy_out(&outputs[p.output_ix[0]], hidden)?;
        copy_out(&outputs[p.output_ix[1]], pooled)?;
        Ok(())
    }
}

fn check_tokens<T: TokenValue>(name: &str, v: &[T], len: usize, bound: usize) -> Result<()> {
    if v.len() != len {
        return Err(Error::bad_input(format!(
            "{name} has {} values, the plan takes batch×seq = {len}",
            v.len()
        )));
    }
    if let Some(i) = v
        .iter()
        .position(|x| x.to_i64() < 0 || x.to_i64() as u64 >= bound as u64)
    {
        return Err(Error::bad_input(format!(
            "{name}[{i}] = {} is out of range 0..{bound}",
            v[i].to_i64()
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

fn fill_tokens<T: TokenValue>(arc: &mut Arc<Tensor>, v: &[T]) -> Result<()> {
    let t = exclusive(arc)?;
    match t.datum_type() {
        DatumType::I64 => write::<i64>(t, |d| {
            d.iter_mut().zip(v).for_each(|(d, s)| *d = s.to_i64())
        })?,
        DatumType::I32 => write::<i32>(t, |d| {
            d.iter_mut()
                .zip(v)
                .for_each(|(d, s)| *d = s.to_i64() as i32)
        })?,
        dt => return Err(Error::bad_model(format!("token input of type {dt:?}"))),
    }
    Ok(())
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
