//! Pass: ONNX `DynamicQuantizeLinear` (f32 → u8, scale, zero point) as `DynQuantU8`, an op
//! that lives on the run-time side and has an NNEF form.
//!
//! Why: onnxruntime's dynamic int8 export quantizes every matmul's activations at run time
//! with `DynamicQuantizeLinear`. tract implements it in tract-onnx (the importer a device
//! build leaves out) and has no NNEF serializer for it, so int8 plans could not be
//! precompiled. The translate side swaps tract-onnx's op for this one; the arithmetic is the
//! ONNX spec's, written exactly as tract-onnx 0.23.9 does it (`x / scale`, ties to even), so
//! outputs are bit-identical. The arithmetic's SIMD kernels are in [`crate::kernels`].

use crate::kernels::{quantize, scale_and_zero_point};
use tract_nnef::internal::*;

/// Dynamic u8 quantization of an f32 tensor over its whole range (including 0).
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq)]
pub struct DynQuantU8;

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
        // SAFETY: u8 has no invalid bit patterns, and `quantize` writes every element.
        let mut dst = unsafe { Tensor::uninitialized::<u8>(input.shape())? };
        quantize(
            xs,
            dst.try_as_plain_ram_mut()?.as_slice_mut::<u8>()?,
            scale,
            zp,
        );
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
/// zero point). `tests/bad_input.rs` (`int8_import_swaps_in_the_serializable_quantizer`)
/// checks the swap finds every one in the int8 fixtures, so a rename in tract fails a test
/// instead of silently leaving tract-onnx's op in the plan.
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
