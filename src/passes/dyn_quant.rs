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

/// Lanes of the min/max accumulators: enough independent chains for the compiler to keep
/// 4 (SSE2, NEON), 8 (AVX2) or 16 values per instruction busy.
const LANES: usize = 16;

/// min and max over `xs` and 0, NaN ignored: the same values as folding `f32::min` /
/// `f32::max` from 0 (min and max are exact, so the order of the fold does not matter), in
/// a form the compiler vectorizes.
#[inline(always)]
fn min_max_body(xs: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = ([0f32; LANES], [0f32; LANES]);
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let v = c[i];
            // `v < lo` is false for NaN: a NaN is skipped, as f32::min skips it.
            lo[i] = if v < lo[i] { v } else { lo[i] };
            hi[i] = if v > hi[i] { v } else { hi[i] };
        }
    }
    let (mut l, mut h) = (0f32, 0f32);
    for i in 0..LANES {
        l = l.min(lo[i]);
        h = h.max(hi[i]);
    }
    for &v in rest {
        l = l.min(v);
        h = h.max(v);
    }
    (l, h)
}

/// `y = clamp(round_ties_even(x / scale) + zp, 0, 255)`, the ONNX spec's arithmetic
/// (division, not a multiplication by 1/scale: bit-identical to tract-onnx).
#[inline(always)]
fn quantize_body(xs: &[f32], dst: &mut [u8], scale: f32, zp: i32) {
    for (y, x) in dst.iter_mut().zip(xs) {
        *y = ((round_ties_even_small(x / scale) as i32) + zp).clamp(0, 255) as u8;
    }
}

/// The same bodies compiled for AVX2 (8 lanes), chosen at run time; the baseline x86_64
/// build has SSE2 only. Same operations in the same order per element: same bits.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[target_feature(enable = "avx2")]
    pub(super) fn min_max(xs: &[f32]) -> (f32, f32) {
        super::min_max_body(xs)
    }

    /// 32 values a round with AVX2 intrinsics: divide, round to nearest even, clamp to
    /// ±2^22 (as `round_ties_even_small`), NaN to 0 (as `as i32`), add the zero point, clamp
    /// to 0..=255, pack; the tail through the scalar body.
    #[target_feature(enable = "avx2")]
    pub(super) fn quantize(xs: &[f32], dst: &mut [u8], scale: f32, zp: i32) {
        use std::arch::x86_64::*;
        const ROUND: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        let n = xs.len().min(dst.len()) / 32 * 32;
        let s = _mm256_set1_ps(scale);
        let (lo, hi) = (_mm256_set1_ps(-4_194_304.0), _mm256_set1_ps(4_194_304.0));
        let zpv = _mm256_set1_epi32(zp);
        let (zero, top) = (_mm256_setzero_si256(), _mm256_set1_epi32(255));
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let one = |x: &[f32]| {
            // SAFETY: `x` holds 8 f32 (a chunk of 32 split in four); unaligned load.
            let v = unsafe { _mm256_loadu_ps(x.as_ptr()) };
            let r = _mm256_round_ps::<ROUND>(_mm256_div_ps(v, s));
            // NaN first (max/min would turn it into a bound), then the clamp.
            let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(r, r);
            let r = _mm256_andnot_ps(nan, r);
            let r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
            let i = _mm256_add_epi32(_mm256_cvtps_epi32(r), zpv);
            _mm256_min_epi32(_mm256_max_epi32(i, zero), top)
        };
        for (x, y) in xs[..n].chunks_exact(32).zip(dst[..n].chunks_exact_mut(32)) {
            let (a, b, c, d) = (one(&x[..8]), one(&x[8..16]), one(&x[16..24]), one(&x[24..]));
            // Per 128-bit lane: a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7, then in order.
            let p = _mm256_packus_epi16(_mm256_packus_epi32(a, b), _mm256_packus_epi32(c, d));
            let p = _mm256_permutevar8x32_epi32(p, order);
            // SAFETY: `y` holds 32 bytes; unaligned store.
            unsafe { _mm256_storeu_si256(y.as_mut_ptr().cast(), p) };
        }
        super::quantize_body(&xs[n..], &mut dst[n..], scale, zp)
    }
}

/// The quantizer with NEON intrinsics (baseline on aarch64): 16 values a round, the same
/// steps as the AVX2 version (divide, round to nearest even with `frintn`, NaN to 0, clamp to
/// ±2^22, convert, add the zero point, clamp to 0..=255, narrow); the tail through the scalar
/// body. min/max stay in the portable body, which the compiler vectorizes for NEON.
#[cfg(target_arch = "aarch64")]
mod neon {
    pub(super) fn quantize(xs: &[f32], dst: &mut [u8], scale: f32, zp: i32) {
        use std::arch::aarch64::*;
        let n = xs.len().min(dst.len()) / 16 * 16;
        // SAFETY: NEON is part of the aarch64 baseline; every load reads 4 f32 of a chunk of
        // 16 and every store writes the 16 bytes of a chunk of 16.
        unsafe {
            let s = vdupq_n_f32(scale);
            let (lo, hi) = (vdupq_n_f32(-4_194_304.0), vdupq_n_f32(4_194_304.0));
            let zpv = vdupq_n_s32(zp);
            let (zero, top) = (vdupq_n_s32(0), vdupq_n_s32(255));
            let one = |x: *const f32| {
                let r = vrndnq_f32(vdivq_f32(vld1q_f32(x), s));
                // NaN to 0 first (as `as i32` does), then the clamp.
                let r = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(r), vceqq_f32(r, r)));
                let r = vminq_f32(vmaxq_f32(r, lo), hi);
                let i = vaddq_s32(vcvtq_s32_f32(r), zpv);
                vminq_s32(vmaxq_s32(i, zero), top)
            };
            for (x, y) in xs[..n].chunks_exact(16).zip(dst[..n].chunks_exact_mut(16)) {
                let p = x.as_ptr();
                let (a, b, c, d) = (one(p), one(p.add(4)), one(p.add(8)), one(p.add(12)));
                // values are in 0..=255: the saturating narrows are exact
                let ab = vcombine_u16(vqmovun_s32(a), vqmovun_s32(b));
                let cd = vcombine_u16(vqmovun_s32(c), vqmovun_s32(d));
                vst1q_u8(y.as_mut_ptr(), vcombine_u8(vqmovn_u16(ab), vqmovn_u16(cd)));
            }
        }
        super::quantize_body(&xs[n..], &mut dst[n..], scale, zp)
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

fn min_max(xs: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { avx2::min_max(xs) };
    }
    min_max_body(xs)
}

fn quantize(xs: &[f32], dst: &mut [u8], scale: f32, zp: u8) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { avx2::quantize(xs, dst, scale, zp as i32) };
    }
    #[cfg(target_arch = "aarch64")]
    return neon::quantize(xs, dst, scale, zp as i32);
    #[allow(unreachable_code)]
    quantize_body(xs, dst, scale, zp as i32)
}

fn scale_and_zero_point(xs: &[f32]) -> (f32, u8) {
    let (min, max) = min_max(xs);
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
    use super::*;

    /// The quantizer as it was written first (and as tract-onnx does it): the reference.
    fn reference(xs: &[f32]) -> (Vec<u8>, f32, u8) {
        let (min, max) = xs
            .iter()
            .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let scale = (max - min) / 255.0;
        let zp = (-min / scale).round_ties_even().clamp(0.0, 255.0) as u8;
        let q = xs
            .iter()
            .map(|x| ((x / scale).round_ties_even() as i32 + zp as i32).clamp(0, 255) as u8)
            .collect();
        (q, scale, zp)
    }

    fn fast(xs: &[f32]) -> (Vec<u8>, f32, u8) {
        let (scale, zp) = scale_and_zero_point(xs);
        let mut q = vec![0u8; xs.len()];
        quantize(xs, &mut q, scale, zp);
        (q, scale, zp)
    }

    /// xorshift: deterministic inputs without a dependency.
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed.max(1);
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    #[test]
    fn vectorized_quantizer_is_bit_identical_to_the_reference() {
        let mut next = rng(0x5eed);
        let mut cases: Vec<Vec<f32>> = vec![
            vec![],
            vec![0.0; 37],
            vec![-0.0; 16],
            vec![3.5; 33],
            vec![-2.0, -1.0, -0.5],
            (0..255).map(|i| i as f32).collect(), // scale 1: every value a tie-free integer
            (0..512).map(|i| i as f32 * 0.5 - 64.0).collect(),
            // exact ties: range [0, 255] (scale 1) with every half step, range [-255, 0]
            // (scale 1, zero point 255), range [0, 510] (scale 2) with odd values
            (0..=510).map(|i| i as f32 * 0.5).collect(),
            (0..=510).map(|i| i as f32 * -0.5).collect(),
            (0..=510).map(|i| i as f32).collect(),
            vec![1e-40, -1e-40, 1e-38, 0.0, 5e-45], // subnormals
            vec![3.0e38, -3.0e38, 1.0],
            vec![f32::NAN, 1.0, -2.0, f32::NAN, 0.5], // NaN skipped by min/max
            // NaN, ties and huge values inside the 32-wide vector path too
            (0..96)
                .map(|i| match i % 7 {
                    0 => f32::NAN,
                    1 => (i as f32) * 0.5,
                    2 => -1e30,
                    _ => i as f32 - 20.0,
                })
                .collect(),
            (0..64).map(|i| (i as f32 - 32.0) * 0.5).collect(),
        ];
        for len in [1usize, 15, 16, 17, 31, 100, 768, 3072 + 5] {
            for spread in [1e-3f32, 1.0, 30.0, 1e4] {
                cases.push(
                    (0..len)
                        .map(|_| ((next() % 2_000_001) as f32 / 1e6 - 1.0) * spread)
                        .collect(),
                );
            }
            // all positive / all negative (the range still includes 0)
            cases.push((0..len).map(|i| 1.0 + i as f32 * 0.01).collect());
            cases.push((0..len).map(|i| -1.0 - i as f32 * 0.37).collect());
        }
        for xs in &cases {
            let (a, b) = (reference(xs), fast(xs));
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "scale of {xs:?}");
            assert_eq!(a.2, b.2, "zero point of {xs:?}");
            assert_eq!(a.0, b.0, "values of {} inputs", xs.len());
        }
    }

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
