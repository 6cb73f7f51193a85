//! Pass: ONNX `DynamicQuantizeLinear` (f32 → u8, scale, zero point) as `DynQuantU8`, an op
//! that lives on the run-time side and has an NNEF form.
//!
//! Why: onnxruntime's dynamic int8 export quantizes every matmul's activations at run time
//! with `DynamicQuantizeLinear`. tract implements it in tract-onnx (the importer a device
//! build leaves out) and has no NNEF serializer for it, so int8 plans could not be
//! precompiled. The translate side swaps tract-onnx's op for this one; the arithmetic is the
//! ONNX spec's, written exactly as tract-onnx 0.23.9 does it (`x / scale`, ties to even), so
//! outputs are bit-identical. The arithmetic's SIMD kernels are in [`crate::kernels`].
//!
//! One difference from the spec, on purpose (issue #29): the range is taken over the real
//! tokens' positions only. The spec's range spans the whole tensor, so the positions a plan
//! pads a text with (to N, or to the granule) moved every quantized value of the text: the
//! same text got another embedding beside other texts or in another plan. With the attention
//! mask as a second input and the tensor's sequence axes known (`seq_axes`, found while the
//! sequence length is a symbol: [`mark_sequence_axes`]), the range covers positions below the
//! real length L only; on a tensor of exactly L positions that is the spec's range.

use crate::kernels::{min_max, quantize, scale_and_zero_point, scale_and_zero_point_of};
use tract_nnef::internal::*;
use tract_nnef::ser::ints;

/// Dynamic u8 quantization of an f32 tensor over its range (including 0) at the positions of
/// the real tokens: `seq_axes` holds (axis, values a position) of each axis that runs over
/// the sequence; the second input is the attention mask `[batch, S]`, whose last 1 gives the
/// real length. Without either, the whole tensor's range.
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq)]
pub struct DynQuantU8 {
    /// (axis, values per position) of the axes of length `values · S`.
    pub seq_axes: TVec<(usize, usize)>,
}

/// The real length of a mask `[batch, S]` of any integer type: the last nonzero position + 1
/// over all rows (an int8 plan runs rows one by one, so there is one).
fn real_length(mask: &Tensor) -> TractResult<usize> {
    let mask = mask.cast_to::<i64>()?;
    let m = mask.try_as_plain_ram()?;
    let m = m.as_slice::<i64>()?;
    let s = mask.shape().last().copied().unwrap_or(1).max(1);
    Ok(m.chunks(s)
        .map(|row| row.iter().rposition(|v| *v != 0).map_or(0, |p| p + 1))
        .max()
        .unwrap_or(0))
}

/// min and max (and 0) over the block of `xs` (of `shape`) whose sequence axes are cut to
/// their first `values · l` entries.
fn block_min_max(xs: &[f32], shape: &[usize], seq_axes: &[(usize, usize)], l: usize) -> (f32, f32) {
    let ends: TVec<usize> = (0..shape.len())
        .map(|a| match seq_axes.iter().find(|(ax, _)| *ax == a) {
            Some((_, c)) => (c * l).min(shape[a]),
            None => shape[a],
        })
        .collect();
    // Whole trailing axes make contiguous runs; the outer axes are walked index by index.
    let mut inner = shape.len();
    let mut run = 1;
    while inner > 0 && ends[inner - 1] == shape[inner - 1] {
        inner -= 1;
        run *= shape[inner];
    }
    let (lo, hi) = (&mut 0f32, &mut 0f32);
    let mut visit = |start: usize, len: usize| {
        let (a, b) = min_max(&xs[start..start + len]);
        *lo = lo.min(a);
        *hi = hi.max(b);
    };
    if inner == 0 {
        visit(0, run);
        return (*lo, *hi);
    }
    // The innermost cut axis: runs of ends[inner-1] · run values, at every outer index.
    let strides: TVec<usize> = (0..shape.len())
        .map(|a| shape[a + 1..].iter().product())
        .collect();
    let outer = &ends[..inner - 1];
    let count: usize = outer.iter().product();
    let mut idx: TVec<usize> = tvec![0; outer.len()];
    for _ in 0..count {
        let start: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        visit(start, ends[inner - 1] * run);
        for a in (0..idx.len()).rev() {
            idx[a] += 1;
            if idx[a] < outer[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    (*lo, *hi)
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
        let input = inputs[0].cast_to::<f32>()?;
        let xs = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let shape = input.shape();
        let real = match inputs.get(1) {
            Some(mask) if !self.seq_axes.is_empty() => Some(real_length(mask)?),
            _ => None,
        };
        let cut = real.filter(|l| self.seq_axes.iter().any(|(a, c)| c * l < shape[*a]));
        let (scale, zp) = match cut {
            Some(l) => {
                let (lo, hi) = block_min_max(xs, shape, &self.seq_axes, l);
                scale_and_zero_point_of(lo, hi)
            }
            None => scale_and_zero_point(xs),
        };
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

fn dump(ast: &mut IntoAst, node: &TypedNode, op: &DynQuantU8) -> TractResult<Option<Arc<RValue>>> {
    let inputs: TVec<Arc<RValue>> = node.inputs.iter().map(|i| ast.mapping[i].clone()).collect();
    let input = inputs[0].clone();
    let mask = inputs.get(1).cloned().unwrap_or_else(|| input.clone());
    let flat: TVec<usize> = op.seq_axes.iter().flat_map(|(a, c)| [*a, *c]).collect();
    Ok(Some(invocation(
        NAME,
        &[input, mask],
        &[("seq_axes", ints(&flat))],
    )))
}

fn load(builder: &mut ModelBuilder, invocation: &ResolvedInvocation) -> TractResult<Value> {
    let input = invocation.named_arg_as(builder, "input")?;
    let flat: TVec<usize> = invocation.named_arg_as(builder, "seq_axes")?;
    let seq_axes: TVec<(usize, usize)> = flat.chunks(2).map(|p| (p[0], p[1])).collect();
    if seq_axes.is_empty() {
        return builder.wire(DynQuantU8 { seq_axes }, &[input]);
    }
    let mask = invocation.named_arg_as(builder, "mask")?;
    builder.wire(DynQuantU8 { seq_axes }, &[input, mask])
}

/// Adds the op's NNEF form to `registry`.
pub(crate) fn register(registry: &mut Registry) {
    registry.register_primitive(
        NAME,
        &[
            TypeName::Scalar.tensor().named("input"),
            TypeName::Any.tensor().named("mask"),
            TypeName::Integer.array().named("seq_axes"),
        ],
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
        model.node_mut(id).op = Box::new(DynQuantU8::default());
    }
    Ok(ids.len())
}

/// Gives every [`DynQuantU8`] of `model` its sequence axes (an axis of length `c · S`, `S` the
/// plan's sequence symbol) and the attention mask (`model` input `mask`) as second input, so
/// that its range covers the real tokens only; returns how many got axes. A tensor whose
/// length depends on `S` otherwise than as `c · S` keeps the whole range (none in BERT).
#[cfg(feature = "onnx")]
pub fn mark_sequence_axes(
    model: &mut TypedModel,
    s: &Symbol,
    mask: OutletId,
) -> TractResult<usize> {
    let at = |d: &TDim, v: i64| d.eval(&SymbolValues::default().with(s, v)).to_i64().ok();
    let mut marked = 0;
    for id in 0..model.nodes().len() {
        if model.node(id).op_as::<DynQuantU8>().is_none() {
            continue;
        }
        let fact = model.outlet_fact(model.node(id).inputs[0])?.clone();
        let mut seq_axes = tvec![];
        for (axis, d) in fact.shape.iter().enumerate() {
            match (at(d, 1), at(d, 2)) {
                (Some(one), Some(two)) if one > 0 && two == 2 * one => {
                    seq_axes.push((axis, one as usize))
                }
                (Some(one), Some(two)) if one == two => {}
                _ => {
                    seq_axes.clear();
                    break;
                }
            }
        }
        if seq_axes.is_empty() {
            continue;
        }
        model.node_mut(id).op = Box::new(DynQuantU8 { seq_axes });
        model.add_edge(mask, InletId::new(id, 1))?;
        marked += 1;
    }
    Ok(marked)
}
