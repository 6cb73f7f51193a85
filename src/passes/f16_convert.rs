//! tract's own f32 → f16 conversion of an f32 graph (the second f16 route).
//!
//! Two things make a plain conversion wrong for BERT exports:
//! - the extended attention mask is `(1 - mask) * finfo(f32).min`; `-3.4e38` becomes `-inf`
//!   in f16 and `0 * -inf` is NaN on every real token. So f32 constants beyond f16's range
//!   are first clamped to ±65504 (onnxconverter-common clamps this one to -1e4 for the same
//!   reason); after the softmax's max-subtraction a -65504 logit still weighs exactly 0.
//! - LayerNorm-style reductions and Softmax sum many terms and lose too much in half
//!   precision: `Reduce` and `Softmax` nodes stay in f32.
//!
//! Inputs and outputs stay f32, like the onnxconverter-common route (`keep_io_types`).

use tract_core::floats::FloatPrecisionTranslator;
use tract_core::internal::*;
use tract_core::ops::konst::Const;
use tract_core::ops::nn::{Reduce, Softmax};
use tract_core::transform::ModelTransform;

const F16_MAX: f32 = 65504.0;

/// Clamps f32 constants to the f16 range; returns how many constants were changed.
pub(crate) fn clamp_constants(model: &mut TypedModel) -> TractResult<usize> {
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

/// Whether a node is converted to f16: everything but the reductions (the LayerNorm's
/// mean and variance: tract 0.23.9 decomposes LayerNormalization into `Reduce` ops) and the
/// softmax.
fn to_f16(node: &TypedNode) -> bool {
    !(node.op_is::<Reduce>() || node.op_is::<Softmax>())
}

/// Converts `model` in place.
pub fn apply(model: &mut TypedModel) -> TractResult<()> {
    clamp_constants(model)?;
    FloatPrecisionTranslator::with_filter(f32::datum_type(), f16::datum_type(), to_f16)
        .transform(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_core::ops::math;

    /// BERT's extended attention mask: `(1 - mask) * f32::MIN` added to the scores.
    fn mask_model() -> TractResult<TypedModel> {
        let mut model = TypedModel::default();
        let mask = model.add_source("mask", f32::fact([1, 4]))?;
        let scores = model.add_source("scores", f32::fact([1, 4]))?;
        let one = model.add_const("one", tensor2(&[[1f32]]))?;
        let min = model.add_const("min", tensor2(&[[f32::MIN]]))?;
        let inv = model.wire_node("inv", math::sub(), &[one, mask])?[0];
        let ext = model.wire_node("ext", math::mul(), &[inv, min])?[0];
        let y = model.wire_node("add", math::add(), &[scores, ext])?[0];
        model.select_output_outlets(&[y])?;
        Ok(model)
    }

    fn run(model: TypedModel) -> TractResult<Vec<f32>> {
        let dt = |ix: usize| -> TractResult<DatumType> { Ok(model.input_fact(ix)?.datum_type) };
        let mask = tensor2(&[[1f32, 1.0, 0.0, 0.0]])
            .cast_to_dt(dt(0)?)?
            .into_owned();
        let scores = tensor2(&[[0.5f32, -1.0, 2.0, 0.25]])
            .cast_to_dt(dt(1)?)?
            .into_owned();
        let inputs = tvec![mask.into_tvalue(), scores.into_tvalue()];
        let out = model.into_runnable()?.run(inputs)?;
        let out = out[0].cast_to::<f32>()?;
        Ok(out.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
    }

    /// A plain f32 → f16 conversion turns `f32::MIN` into -inf, and `0 × -inf` makes the real
    /// tokens' scores NaN; with the clamp they stay finite and padding stays hugely negative.
    #[test]
    fn the_mask_survives_the_conversion() -> TractResult<()> {
        let mut plain = mask_model()?;
        FloatPrecisionTranslator::new(f32::datum_type(), f16::datum_type())
            .transform(&mut plain)?;
        assert!(
            run(plain)?[0].is_nan(),
            "expected the unclamped conversion to give NaN"
        );
        let mut model = mask_model()?;
        apply(&mut model)?;
        let out = run(model)?;
        assert_eq!(&out[..2], &[0.5, -1.0]);
        assert!(out[2] <= -65000.0 && out[3] <= -65000.0, "{out:?}");
        Ok(())
    }

    #[test]
    fn reductions_and_softmax_stay_f32() -> TractResult<()> {
        use tract_core::ops::nn::Reducer;
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 4]))?;
        let r = model.wire_node("sum", Reduce::new(tvec![1], Reducer::Sum), &[x])?[0];
        let y = model.wire_node("add", math::add(), &[x, r])?[0];
        model.select_output_outlets(&[y])?;
        apply(&mut model)?;
        let sum = model.nodes().iter().find(|n| n.op_is::<Reduce>()).unwrap();
        assert_eq!(sum.outputs[0].fact.datum_type, f32::datum_type());
        let add = model.node(model.outputs[0].node);
        assert!(to_f16(add) && !to_f16(sum));
        Ok(())
    }
}
