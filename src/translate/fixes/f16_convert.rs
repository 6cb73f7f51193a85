//! tract's own f32 → f16 conversion of an f32 graph (the second f16 route).
//!
//! Two things make a plain conversion wrong for BERT exports:
//! - the extended attention mask is `(1 - mask) * finfo(f32).min`; `-3.4e38` becomes `-inf`
//!   in f16 and `0 * -inf` is NaN on every real token. So f32 constants beyond f16's range
//!   are first clamped to ±65504 (onnxconverter-common clamps this one to -1e4 for the same
//!   reason); after the softmax's max-subtraction a -65504 logit still weighs exactly 0.
//! - LayerNorm-style reductions and Softmax sum many terms and lose too much in half
//!   precision: nodes whose op name says so stay in f32.
//!
//! Inputs and outputs stay f32, like the onnxconverter-common route (`keep_io_types`).

use tract_core::floats::FloatPrecisionTranslator;
use tract_core::internal::*;
use tract_core::ops::konst::Const;
use tract_core::transform::ModelTransform;

const F16_MAX: f32 = 65504.0;

/// Clamps f32 constants to the f16 range; returns how many constants were changed.
fn clamp_constants(model: &mut TypedModel) -> TractResult<usize> {
    let mut patch = TypedModelPatch::default();
    let mut count = 0;
    for node in model.nodes() {
        let Some(k) = node.op_as::<Const>() else {
            continue;
        };
        let t = k.val();
        if t.datum_type() != f32::datum_type() {
            continue;
        }
        let view = t.try_as_plain_ram()?;
        let values = view.as_slice::<f32>()?;
        if values.iter().all(|v| v.abs() <= F16_MAX) {
            continue;
        }
        let mut clamped = t.as_ref().clone();
        clamped
            .try_as_plain_ram_mut()?
            .as_slice_mut::<f32>()?
            .iter_mut()
            .for_each(|v| {
                *v = v.clamp(-F16_MAX, F16_MAX);
            });
        let wire = patch.add_const(format!("{}.f16_range", node.name), clamped)?;
        patch.shunt_outside(model, node.id.into(), wire)?;
        count += 1;
    }
    patch.apply(model)?;
    Ok(count)
}

/// Converts `model` in place.
pub fn apply(model: &mut TypedModel) -> TractResult<()> {
    clamp_constants(model)?;
    let keep_f32 = |node: &TypedNode| {
        let op = node.op.name();
        !(op.contains("Reduce") || op.contains("Softmax") || op.contains("LayerNorm"))
    };
    FloatPrecisionTranslator::with_filter(f32::datum_type(), f16::datum_type(), keep_f32)
        .transform(model)
}
