//! Pass: express `DequantizeLinearF32` as `Cast → Sub → Mul`, so int8 plans serialize.
//!
//! Why: onnxruntime's quantizer stores the embedding tables as int8 and dequantizes after
//! the `Gather`; tract 0.23.9 turns that into `DequantizeLinearF32`, which has no NNEF form,
//! so `bert-edge compile` of an int8 export failed with "No serializer found". The same
//! arithmetic with plain ops (`(f32(x) - zero_point) * scale`, exact for 8-bit integers)
//! serializes and gives bit-identical values. Applied to every int8 plan, so an archive and
//! its ONNX source run the same graph.

use tract_core::internal::*;
use tract_core::ops::cast::cast;
use tract_core::ops::math;
use tract_core::ops::quant::DequantizeLinearF32;

/// Rewrites every `DequantizeLinearF32` of `model`; returns how many.
pub fn apply(model: &mut TypedModel) -> TractResult<usize> {
    let mut count = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(op) = node.op_as::<DequantizeLinearF32>() else {
            continue;
        };
        let (scale, zero) = (op.scale, op.zero_point as f32);
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let rank = patch.outlet_fact(x)?.rank();
        let name = &node.name;
        let x = patch.wire_node(format!("{name}.as_f32"), cast(f32::datum_type()), &[x])?[0];
        let z = patch.add_const(
            format!("{name}.zero_point"),
            tensor0(zero).broadcast_into_rank(rank)?,
        )?;
        let s = patch.add_const(
            format!("{name}.scale"),
            tensor0(scale).broadcast_into_rank(rank)?,
        )?;
        let x = patch.wire_node(format!("{name}.centered"), math::sub(), &[x, z])?[0];
        let x = patch.wire_node(format!("{name}.scaled"), math::mul(), &[x, s])?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), x)?;
        patch.apply(model)?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `u8 table → DequantizeLinearF32`, as tract-onnx types onnxruntime's quantized
    /// embedding tables.
    fn dequant_model() -> TractResult<TypedModel> {
        let mut model = TypedModel::default();
        let x = model.add_source("x", u8::fact([2, 3]))?;
        let op = DequantizeLinearF32 {
            scale: 0.05,
            zero_point: 128,
        };
        let y = model.wire_node("deq", op, &[x])?[0];
        model.select_output_outlets(&[y])?;
        Ok(model)
    }

    /// Without the pass the model has no NNEF form (no archive); with it, it serializes and
    /// computes the same values bit for bit.
    #[test]
    fn dequantize_becomes_serializable_arithmetic() -> TractResult<()> {
        let model = dequant_model()?;
        let err = crate::runtime::archive::nnef()
            .write_to_tar(&model, Vec::new())
            .unwrap_err();
        assert!(format!("{err:?}").contains("No serializer"), "{err:?}");
        let input =
            tvec![Tensor::from_shape(&[2, 3], &[0u8, 1, 127, 128, 200, 255])?.into_tvalue()];
        let before = model.clone().into_runnable()?.run(input.clone())?;
        let mut rewritten = model;
        assert_eq!(apply(&mut rewritten)?, 1);
        assert!(!rewritten
            .nodes()
            .iter()
            .any(|n| n.op_is::<DequantizeLinearF32>()));
        crate::runtime::archive::nnef().write_to_tar(&rewritten, Vec::new())?;
        let after = rewritten.into_runnable()?.run(input)?;
        assert_eq!(before[0], after[0]);
        Ok(())
    }
}
