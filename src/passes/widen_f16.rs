//! Pass: widen an f16 plan to f32 at load ([`crate::F16Compute`] decides where).
//!
//! An f16 export halves the weights (download, flash, RAM). Whether it should also *compute*
//! in f16 depends on the CPU: a Pi 5 (cortex-a76) has f16 arithmetic and tract has kernels
//! for it. Without it (x86_64; the Pi 4's cortex-a72 and the Pi 3's a53) tract converts
//! around every op: a base f16 plan ran at half the f32 speed on x86 (seq 32: 172 vs 88 ms),
//! and the tiny f16 plan costs 2.2 M instructions per call under qemu cortex-a72 against
//! 0.57 M for f32. With `F16Compute::F32` the plan widens the f16 weights to f32 once at
//! load and computes in f32: f32 speed, accuracy at least as good (the weights keep their f16
//! values), for the f32 plan's memory. `Auto` does that exactly where the CPU has no f16
//! arithmetic; `Native` keeps f16 (half the memory) whatever the cost.

use tract_core::floats::FloatPrecisionTranslator;
use tract_core::internal::*;
use tract_core::ops::cast::Cast;
use tract_core::transform::ModelTransform;

/// Whether any node of `model` outputs f16.
pub(crate) fn has_f16(model: &TypedModel) -> bool {
    let f16_dt = f16::datum_type();
    model
        .nodes()
        .iter()
        .any(|n| n.outputs.iter().any(|o| o.fact.datum_type == f16_dt))
}

/// Widens every f16 tensor of a typed (not yet optimized) model to f32: tract's precision
/// translator turns f16 sources, casts, operating types and constants into f32 (a constant
/// becomes `Const(f16) → Cast(f32)`), then each such cast of a constant is replaced by the f32
/// constant itself (exact: every f16 value is an f32 value), so no per-call Cast is left —
/// tract's own constant folding leaves casts alone when they double a tensor's size. Returns
/// whether anything was f16.
///
/// One patch per constant: applying it drops the f16 source (tract collects the dead
/// `Const → Cast` pair), so the load never holds all weights in both precisions — one patch
/// for all of them made the base f16 archive's heap peak at 611 MB (204 MB f16 + 407 MB f32)
/// instead of the f32 plan's ~425 MB.
pub fn widen_to_f32(model: &mut TypedModel) -> TractResult<bool> {
    let f16_dt = f16::datum_type();
    if !has_f16(model) {
        return Ok(false);
    }
    FloatPrecisionTranslator::new(f16_dt, f32::datum_type()).transform(model)?;
    let widening_casts: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op_as::<Cast>().is_some_and(|c| c.to == f32::datum_type()))
        .map(|n| n.id)
        .collect();
    for id in widening_casts {
        let node = model.node(id);
        if node.inputs.len() != 1 {
            continue;
        }
        let input = model.outlet_fact(node.inputs[0])?;
        let Some(k) = &input.konst else {
            continue;
        };
        if k.datum_type() != f16_dt || !k.is_plain_ram() {
            continue;
        }
        let wide = k.cast_to::<f32>()?.into_owned();
        let mut patch = TypedModelPatch::default();
        let wire = patch.add_const(format!("{}.f32", node.name), wide)?;
        patch.shunt_outside(model, id.into(), wire)?;
        patch.apply(model)?;
    }
    model.compact()?;
    Ok(true)
}
