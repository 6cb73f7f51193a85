//! Pass: ONNX `DynamicQuantizeLinear` (f32 → u8, scale, zero point) as `DynQuantU8`, an op
//! that lives on the run-time side and has an NNEF form.
//!
//! Why: onnxruntime's dynamic int8 export quantizes every matmul's activations at run time
//! with `DynamicQuantizeLinear`. tract implements it in tract-onnx (the importer a device
//! build leaves out) and has no NNEF serializer for it, so int8 plans could not be
//! precompiled. The translate side swaps tract-onnx's op for this one; the arithmetic is the
//! ONNX spec's, written exactly as tract-onnx 0.23.9 does it (`x / scale`, ties to even), so
//! outputs are bit-identical.

use tract_nnef::internal::*;

/// Dynamic u8 quantization of an f32 tensor over its whole range (including 0).
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq)]
pub struct DynQuantU8;

/// Rounds half to even like `f32::round_ties_even` for |v| < 2^22 (and passes NaN through),
/// without the libm `rintf` call that x86_64's baseline (no SSE4.1) compiles it to: adding
/// and subtracting 1.5·2^23 leaves the integer nearest v, ties to even (IEEE default
/// rounding). Quantized values lie in [-255, 255] here, far inside the exact range; larger
/// ones are clamped away by the caller's `clamp(0, 255)` either way.
#[inline(always)]
fn round_ties_even_small(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let v = v.clamp(-4_194_304.0, 4_194_304.0); // |v| <= 2^22: exact; NaN stays NaN
    (v + MAGIC) - MAGIC
}

fn scale_and_zero_point(xs: &[f32]) -> (f32, u8) {
    let (min, max) = xs
        .iter()
        .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let scale = (max - min) / 255.0;
    let zero_point = (-min / scale).round_ties_even().clamp(0.0, 255.0);
    (scale, zero_point as u8)
}

impl Op for DynQuantU8 {
    fn name(&self) -> StaticName {
        "DynQuantU8".into()
    }
    op_as_typed_op!();
}

impl EvalOp for DynQuantU8 {
    op_out_of_plan!();
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let input = input.cast_to::<f32>()?;
        let xs = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let (scale, zp) = scale_and_zero_point(xs);
        let mut dst = Tensor::zero::<u8>(input.shape())?;
        dst.try_as_plain_ram_mut()?
            .as_slice_mut::<u8>()?
            .iter_mut()
            .zip(xs)
            .for_each(|(y, x)| {
                *y = ((round_ties_even_small(x / scale) as i32) + zp as i32).clamp(0, 255) as u8
            });
        Ok(tvec!(
            dst.into_tvalue(),
            tensor0(scale).into_tvalue(),
            tensor0(zp).into_tvalue()
        ))
    }
}

impl TypedOp for DynQuantU8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut q = inputs[0].without_value();
        q.datum_type = u8::datum_type();
        Ok(tvec!(q, f32::scalar_fact(), u8::scalar_fact()))
    }
    as_op!();
}

const NAME: &str = "bert_edge_dynamic_quantize_u8";

fn dump(ast: &mut IntoAst, node: &TypedNode, _op: &DynQuantU8) -> TractResult<Option<Arc<RValue>>> {
    let input = ast.mapping[&node.inputs[0]].clone();
    Ok(Some(invocation(NAME, &[input], &[])))
}

fn load(builder: &mut ModelBuilder, invocation: &ResolvedInvocation) -> TractResult<Value> {
    let input = invocation.named_arg_as(builder, "input")?;
    builder.wire(DynQuantU8, &[input])
}

/// Adds the op's NNEF form to `registry`.
pub(crate) fn register(registry: &mut Registry) {
    registry.register_primitive(
        NAME,
        &[TypeName::Scalar.tensor().named("input")],
        &[
            ("output", TypeName::Integer.tensor()),
            ("scale", TypeName::Scalar.tensor()),
            ("zero_point", TypeName::Integer.tensor()),
        ],
        load,
    );
    registry.register_dumper(dump);
}

/// tract-onnx's op type (`ops::quant::DynamicQuantizeLinearU8`) is private in 0.23.9, so it is
/// recognised by its name and its signature (one input, three outputs: u8 data, f32 scale, u8
/// zero point). `tests/passes.rs` checks the swap finds every one in the int8 fixtures, so a
/// rename in tract fails a test instead of silently leaving tract-onnx's op in the plan.
#[cfg(feature = "onnx")]
fn is_onnx_dynamic_quantize(node: &TypedNode) -> bool {
    let o = &node.outputs;
    node.op.name() == "DynamicQuantizeLinearU8"
        && node.inputs.len() == 1
        && o.len() == 3
        && o[0].fact.datum_type == u8::datum_type()
        && o[1].fact.datum_type == f32::datum_type()
        && o[2].fact.datum_type == u8::datum_type()
}

/// Swaps tract-onnx's `DynamicQuantizeLinearU8` for [`DynQuantU8`] (same arithmetic, but
/// serializable and free of tract-onnx); returns how many.
#[cfg(feature = "onnx")]
pub fn swap_dynamic_quantize(model: &mut TypedModel) -> TractResult<usize> {
    let ids: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| is_onnx_dynamic_quantize(n))
        .map(|n| n.id)
        .collect();
    for &id in &ids {
        model.node_mut(id).op = Box::new(DynQuantU8);
    }
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::round_ties_even_small;

    #[test]
    fn magic_rounding_matches_round_ties_even() {
        // Every quarter step in the quantizer's range (ties included), then a wide sweep.
        let quarter = (-1200..=1200).map(|i| i as f32 * 0.25);
        let wide = (0..20_000).map(|i| (i as f32 - 10_000.0) * 0.731 + 0.5);
        for v in quarter.chain(wide) {
            assert_eq!(round_ties_even_small(v), v.round_ties_even(), "v = {v}");
        }
        assert!(round_ties_even_small(f32::NAN).is_nan());
        // Out of the exact range the value only has to saturate the same way.
        for v in [1e9f32, -1e9, f32::INFINITY, f32::NEG_INFINITY] {
            let q = |r: f32| (r as i32).clamp(0, 255);
            assert_eq!(
                q(round_ties_even_small(v)),
                q(v.round_ties_even()),
                "v = {v}"
            );
        }
    }
}
