//! Checks of a call's buffers against the plan, before anything runs: once a call, in one
//! pass over each buffer; the attention mask's pass also measures each row's real length,
//! which the run then trusts.

use super::{Call, Encoder};
use crate::error::{Error, InputKind, Result};
use crate::runtime::io::{Input, Outputs};
use crate::runtime::Flavour;

impl Encoder {
    /// Checks a call: the buffers at the batch's full size, the `call`'s rows and length, the
    /// values of the rows it uses, and the output buffers; measures each used row's real
    /// length into `self.lengths`. Returns the number of rows the call runs.
    pub(super) fn validate<T: Copy + Into<i64>>(
        &mut self,
        input: &Input<'_, T>,
        out: &Outputs,
        call: Call,
    ) -> Result<usize> {
        let i = &self.plan.info;
        let rows = call.rows.unwrap_or(i.batch);
        if rows == 0 || rows > i.batch {
            return Err(Error::input(
                InputKind::Range,
                format!("{rows} rows: the plan takes 1 to {} rows a call", i.batch),
            ));
        }
        if rows < i.batch && i.outputs.iter().any(|o| o.role.is_none()) {
            return Err(Error::input(
                InputKind::Unsupported,
                "this plan has outputs of unknown layout: run its whole batch (Encoder::run)",
            ));
        }
        self.expect_flavour(input.flavour())?;
        self.check_full(input)?;
        let (seq, hidden) = (i.seq, i.hidden);
        self.check(&input.rows(0, rows, seq, hidden), out, rows)?;
        if let Some(length) = call.length {
            self.check_length(length)?;
        }
        Ok(rows)
    }

    /// An explicit length: at least the longest real row, at most N (a fixed-length plan: N).
    fn check_length(&self, length: usize) -> Result<()> {
        let real = self.lengths.iter().copied().max().unwrap_or(0);
        let (n, fixed) = (self.plan.info.seq, self.plan.info.fixed_length);
        if length < real || length > n || (fixed && length != n) {
            let takes = if fixed {
                format!("exactly {n}")
            } else {
                format!("at most {n}")
            };
            return Err(Error::input(
                InputKind::Range,
                format!("length {length}: the call has a row of {real} positions and the plan takes {takes}"),
            ));
        }
        Ok(())
    }

    /// Checks `rows` rows of input (values and lengths) and the output buffers.
    fn check<T: Copy + Into<i64>>(
        &mut self,
        input: &Input<'_, T>,
        out: &Outputs,
        rows: usize,
    ) -> Result<()> {
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

    /// The buffers' lengths at full capacity (before a [`Call`] takes its rows).
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
                return Err(Error::input(
                    crate::error::InputKind::Shape,
                    format!(
                        "{name} has {got} values, the plan takes batch×N{} = {want}",
                        if name == "inputs_embeds" {
                            "×hidden"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    fn tokens_len(&self) -> usize {
        self.plan.info.batch * self.plan.info.seq
    }

    fn hidden_len(&self) -> usize {
        self.tokens_len() * self.plan.info.hidden
    }

    fn expect_flavour(&self, f: Flavour) -> Result<()> {
        if self.plan.info.flavour != f {
            return Err(Error::input(
                crate::error::InputKind::Unsupported,
                format!(
                    "this is an {} plan, the input is for an {f} plan (Input::{})",
                    self.plan.info.flavour,
                    match self.plan.info.flavour {
                        Flavour::Ids => "Ids",
                        Flavour::Embeds => "Embeds",
                    }
                ),
            ));
        }
        Ok(())
    }

    fn check_mask_types<T: Copy + Into<i64>>(
        &mut self,
        mask: &[T],
        types: &[T],
        n: usize,
    ) -> Result<()> {
        self.mask_lengths(mask, n)?;
        if self.plan.info.token_types {
            check_tokens("token_type_ids", types, n, self.plan.info.type_vocab_size)?;
        } else if types.iter().any(|t| int(*t) != 0) {
            return Err(Error::input(
                InputKind::Unsupported,
                "this graph takes no token_type_ids: it cannot tell a text pair's second \
                 segment (give all zeros, or no token types)",
            ));
        } else if !types.is_empty() {
            check_tokens("token_type_ids", types, n, 1)?;
        }
        Ok(())
    }

    /// One pass over the mask: every value 0 or 1, and each row's real length (its last 1,
    /// + 1) into `self.lengths`; a row without a 1 is an error.
    fn mask_lengths<T: Copy + Into<i64>>(&mut self, mask: &[T], n: usize) -> Result<()> {
        if mask.len() != n {
            return Err(Error::input(
                InputKind::Shape,
                format!(
                    "attention_mask has {} values, the plan takes batch×N = {n}",
                    mask.len()
                ),
            ));
        }
        self.lengths.clear();
        for (row, m) in mask.chunks(self.plan.info.seq).enumerate() {
            let mut last = 0;
            for (j, v) in m.iter().enumerate() {
                match int(*v) {
                    0 => {}
                    1 => last = j + 1,
                    x => {
                        let at = row * m.len() + j;
                        return Err(Error::input(
                            InputKind::Range,
                            format!("attention_mask[{at}] = {x} is out of range 0..2"),
                        ));
                    }
                }
            }
            if last == 0 {
                return Err(Error::input(
                    InputKind::EmptyRow,
                    format!("attention_mask row {row} is all zeros: no token to attend to"),
                ));
            }
            self.lengths.push(last);
        }
        Ok(())
    }

    fn check_outputs(&self, out: &Outputs) -> Result<()> {
        let specs = &self.plan.info.outputs;
        let same_names = out.specs.len() == specs.len()
            && out.specs.iter().zip(specs).all(|(a, b)| a.name == b.name);
        if !same_names {
            return Err(Error::input(
                crate::error::InputKind::Shape,
                "the output buffers were made for another plan (use Plan::outputs)",
            ));
        }
        for (spec, v) in specs.iter().zip(&out.values) {
            let got = v.as_ref().map_or(spec.len(), Vec::len);
            if got != spec.len() {
                return Err(Error::input(
                    crate::error::InputKind::Shape,
                    format!(
                        "{} buffer has {got} values, the plan writes {} (use Plan::outputs)",
                        spec.name,
                        spec.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn check_embeds(embeds: &[f32], want: usize) -> Result<()> {
    if embeds.len() != want {
        return Err(Error::input(
            crate::error::InputKind::Shape,
            format!(
                "inputs_embeds has {} values, the plan takes batch×N×hidden = {want}",
                embeds.len()
            ),
        ));
    }
    if let Some(i) = embeds.iter().position(|v| !v.is_finite()) {
        return Err(Error::input(
            crate::error::InputKind::NotFinite,
            format!(
                "inputs_embeds[{i}] is {} (every value must be finite)",
                embeds[i]
            ),
        ));
    }
    Ok(())
}

pub(super) fn int<T: Into<i64>>(v: T) -> i64 {
    v.into()
}

fn check_tokens<T: Copy + Into<i64>>(name: &str, v: &[T], len: usize, bound: usize) -> Result<()> {
    if v.len() != len {
        return Err(Error::input(
            crate::error::InputKind::Shape,
            format!(
                "{name} has {} values, the plan takes batch×N = {len}",
                v.len()
            ),
        ));
    }
    if let Some(i) = v
        .iter()
        .position(|x| int(*x) < 0 || int(*x) as u64 >= bound as u64)
    {
        return Err(Error::input(
            crate::error::InputKind::Range,
            format!("{name}[{i}] = {} is out of range 0..{bound}", int(v[i])),
        ));
    }
    Ok(())
}
