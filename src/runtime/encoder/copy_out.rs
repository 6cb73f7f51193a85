//! Copying a run's outputs into the caller's buffers.

use super::fill::Rows;
use crate::error::{Error, Result};
use crate::runtime::io::Outputs;
use half::f16;
use tract_core::internal::*;

/// Zeroes rows `r..r + k` (of `b`) of every output: rows a call does not use.
pub(super) fn zero_rows(out: &mut Outputs, r: usize, k: usize, b: usize) {
    for v in out.values.iter_mut().flatten() {
        let per_row = v.len() / b.max(1);
        v[r * per_row..(r + k) * per_row].fill(0.0);
    }
}

/// Copies one output into the caller's buffer, widening f16. A per-token output comes as
/// `[batch, l, w]` and goes to `[batch, n, w]`, positions ≥ l zeroed; another as
/// `[batch, w]`. Filler rows are written as zeros.
pub(super) fn copy_out(value: &TValue, out: &mut [f32], per_token: bool, r: Rows) -> Result<()> {
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

/// [`copy_out`] from source elements of type `S`, each converted by `f`.
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
