//! Filling the input tensors of a run from the caller's rows (and filler rows).

use super::validate::int;
use crate::error::{Error, Result};
use half::f16;
use std::sync::Arc;
use tract_core::internal::*;

/// A run's geometry: `batch` rows of capacity `n` positions, run at length `l` ≤ n, of which
/// the first `real` come from the caller (the rest are one-token filler rows,
/// [`Encoder::run_with`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Rows {
    pub(super) batch: usize,
    pub(super) real: usize,
    pub(super) n: usize,
    pub(super) l: usize,
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

pub(super) fn fill_embeds(
    arc: &mut Arc<Tensor>,
    embeds: &[f32],
    rows: Rows,
    hidden: usize,
) -> Result<()> {
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
pub(super) fn fill_tokens<T: Copy + Into<i64>>(
    arc: &mut Arc<Tensor>,
    v: &[T],
    rows: Rows,
    first: i64,
) -> Result<()> {
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

/// [`fill_tokens`] into an integer tensor narrower than i64. Values were range-checked
/// against the plan's bounds; a graph whose integer type
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
        Some(x) => Err(Error::input(
            crate::error::InputKind::Range,
            format!(
                "token value {x} does not fit the graph's {:?} input",
                D::datum_type()
            ),
        )),
        None => Ok(()),
    }
}
