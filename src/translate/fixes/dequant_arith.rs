//! Fix: express `DequantizeLinearF32` as `Cast → Sub → Mul`, so int8 plans serialize.
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

/// Swaps tract-onnx's `DynamicQuantizeLinearU8` for [`crate::runtime::DynQuantU8`] (same
/// arithmetic, but serializable and free of tract-onnx); returns how many.
pub fn swap_dynamic_quantize(model: &mut TypedModel) -> TractResult<usize> {
    let ids: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op.name() == "DynamicQuantizeLinearU8")
        .map(|n| n.id)
        .collect();
    for &id in &ids {
        model.node_mut(id).op = Box::new(crate::runtime::DynQuantU8);
    }
    Ok(ids.len())
}
