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

/// The min/max and quantizer loops in NEON assembly for 32-bit ARM (armv7 Pi OS): Rust's
/// 32-bit NEON intrinsics are unstable, and the armv7 target's baseline has no NEON, so the
/// code is assembled on its own (`.fpu neon`) and called only when the CPU has NEON.
///
/// armv7 NEON differs from the scalar VFP reference in three ways, each handled so the
/// results stay bit-identical:
/// - **subnormals are flushed to zero**, and min/max of a NaN is NaN: the NEON min/max is used
///   only when it comes out with `lo < 0 < hi` (then both are normal numbers taken from the
///   input, and a flushed subnormal or a NaN cannot have changed them); otherwise the scalar
///   body runs again over the whole tensor.
/// - **no division**: `y' = x · fl(1/scale)` (the reciprocal from one VFP division) instead
///   of `fl(x / scale)`. The two differ by less than `|y|·1.5·2^-23`, under 2^-14 where the
///   output is not saturated (|y| ≤ 257). Rounding both to the nearest integer gives the same
///   result unless `y'` lies within 2^-12 of a half-integer: such a chunk of 16 (ties
///   included; ~1 % of chunks) is done by the scalar body instead. Used only for a normal
///   scale in [2^-64, 2^64], so the reciprocal and the products that matter stay normal (an
///   input flushed to 0 would have quantized to 0 anyway).
/// - **no round-to-nearest-even conversion**: the same 1.5·2^23 addition as
///   `round_ties_even_small` (NEON always rounds to nearest even), a truncating convert of the
///   now-integral value (NaN converts to 0, as `as i32` does), a saturating add of the zero
///   point and saturating narrows to 0..=255.
#[cfg(all(target_arch = "arm", target_os = "linux", target_env = "gnu"))]
mod armv7 {
    std::arch::global_asm!(
        ".text",
        ".syntax unified",
        ".arm",
        ".arch armv7-a",
        ".fpu neon",
        // fn(xs: *const f32, n: usize (multiple of 16, > 0), out: *mut [f32; 2])
        ".p2align 2",
        ".globl bert_edge_armv7_min_max",
        ".hidden bert_edge_armv7_min_max",
        ".type bert_edge_armv7_min_max, %function",
        "bert_edge_armv7_min_max:",
        "    vmov.i32 q8, #0",
        "    vmov.i32 q9, #0",
        "    vmov.i32 q10, #0",
        "    vmov.i32 q11, #0",
        "1:",
        "    vld1.32 {{d0-d3}}, [r0]!",
        "    vld1.32 {{d4-d7}}, [r0]!",
        "    vmin.f32 q8, q8, q0",
        "    vmin.f32 q9, q9, q1",
        "    vmax.f32 q10, q10, q0",
        "    vmax.f32 q11, q11, q1",
        "    vmin.f32 q8, q8, q2",
        "    vmin.f32 q9, q9, q3",
        "    vmax.f32 q10, q10, q2",
        "    vmax.f32 q11, q11, q3",
        "    subs r1, r1, #16",
        "    bne 1b",
        "    vmin.f32 q8, q8, q9",
        "    vmax.f32 q10, q10, q11",
        "    vpmin.f32 d16, d16, d17",
        "    vpmax.f32 d20, d20, d21",
        "    vpmin.f32 d16, d16, d16",
        "    vpmax.f32 d20, d20, d20",
        "    vst1.32 {{d16[0]}}, [r2]!",
        "    vst1.32 {{d20[0]}}, [r2]",
        "    bx lr",
        ".size bert_edge_armv7_min_max, . - bert_edge_armv7_min_max",
        // fn(xs: *const f32, dst: *mut u8, n: usize (multiple of 16, > 0), zp: i32, r: f32)
        //   -> usize: values done; < n when the chunk at that index needs the scalar body.
        // r0 xs, r1 dst, r2 left, r3 zp, s0 r; r12 n. q15 r, q14 zp, q13 1.5·2^23, q12 0.5,
        // q11 2^-12; q0-q3 and q4-q7 (saved) the 16 values.
        ".p2align 2",
        ".globl bert_edge_armv7_quantize",
        ".hidden bert_edge_armv7_quantize",
        ".type bert_edge_armv7_quantize, %function",
        "bert_edge_armv7_quantize:",
        "    vpush {{d8-d15}}",
        "    mov r12, r2",
        "    vdup.32 q15, d0[0]",
        "    vdup.32 q14, r3",
        "    movw r3, #0",
        "    movt r3, #0x4b40", // 1.5 * 2^23
        "    vdup.32 q13, r3",
        "    vmov.f32 q12, #0.5",
        "    movt r3, #0x3980", // 2^-12
        "    vdup.32 q11, r3",
        "1:",
        "    vld1.32 {{d0-d3}}, [r0]!",
        "    vld1.32 {{d4-d7}}, [r0]!",
        "    vmul.f32 q0, q0, q15",
        "    vmul.f32 q1, q1, q15",
        "    vmul.f32 q2, q2, q15",
        "    vmul.f32 q3, q3, q15",
        // nearest integer, ties to even
        "    vadd.f32 q4, q0, q13",
        "    vadd.f32 q5, q1, q13",
        "    vadd.f32 q6, q2, q13",
        "    vadd.f32 q7, q3, q13",
        "    vsub.f32 q4, q4, q13",
        "    vsub.f32 q5, q5, q13",
        "    vsub.f32 q6, q6, q13",
        "    vsub.f32 q7, q7, q13",
        // | |y' - n| - 1/2 | <= 2^-12: too near a half-integer to decide here
        "    vabd.f32 q0, q0, q4",
        "    vabd.f32 q1, q1, q5",
        "    vabd.f32 q2, q2, q6",
        "    vabd.f32 q3, q3, q7",
        "    vabd.f32 q0, q0, q12",
        "    vabd.f32 q1, q1, q12",
        "    vabd.f32 q2, q2, q12",
        "    vabd.f32 q3, q3, q12",
        "    vcge.f32 q0, q11, q0",
        "    vcge.f32 q1, q11, q1",
        "    vcge.f32 q2, q11, q2",
        "    vcge.f32 q3, q11, q3",
        "    vorr q0, q0, q1",
        "    vorr q2, q2, q3",
        "    vorr q0, q0, q2",
        "    vorr d0, d0, d1",
        "    vpmax.u32 d0, d0, d0",
        "    vmov.32 r3, d0[0]",
        "    cmp r3, #0",
        "    bne 2f",
        "    vcvt.s32.f32 q4, q4",
        "    vcvt.s32.f32 q5, q5",
        "    vcvt.s32.f32 q6, q6",
        "    vcvt.s32.f32 q7, q7",
        "    vqadd.s32 q4, q4, q14",
        "    vqadd.s32 q5, q5, q14",
        "    vqadd.s32 q6, q6, q14",
        "    vqadd.s32 q7, q7, q14",
        "    vqmovun.s32 d0, q4",
        "    vqmovun.s32 d1, q5",
        "    vqmovun.s32 d2, q6",
        "    vqmovun.s32 d3, q7",
        "    vqmovn.u16 d4, q0",
        "    vqmovn.u16 d5, q1",
        "    vst1.8 {{d4-d5}}, [r1]!",
        "    subs r2, r2, #16",
        "    bne 1b",
        "2:",
        "    sub r0, r12, r2",
        "    vpop {{d8-d15}}",
        "    bx lr",
        ".size bert_edge_armv7_quantize, . - bert_edge_armv7_quantize",
    );

    unsafe extern "C" {
        pub(super) fn bert_edge_armv7_min_max(xs: *const f32, n: usize, out: *mut [f32; 2]);
        pub(super) fn bert_edge_armv7_quantize(
            xs: *const f32,
            dst: *mut u8,
            n: usize,
            zp: i32,
            r: f32,
        ) -> usize;
    }

    /// NEON in the kernel's hardware capabilities (`HWCAP_NEON`).
    pub(super) fn has_neon() -> bool {
        static NEON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        // SAFETY: getauxval has no preconditions.
        *NEON.get_or_init(|| unsafe { libc::getauxval(libc::AT_HWCAP) } & (1 << 12) != 0)
    }

    /// min and max over `xs` and 0, or None when the NEON result cannot be trusted (see the
    /// module's comment); the caller then runs the scalar body.
    pub(super) fn min_max(xs: &[f32]) -> Option<(f32, f32)> {
        let n = xs.len() / 16 * 16;
        if n == 0 || !has_neon() {
            return None;
        }
        let mut out = [0f32; 2];
        // SAFETY: NEON present; reads n ≤ xs.len() values, writes the 2 of `out`.
        unsafe { bert_edge_armv7_min_max(xs.as_ptr(), n, &mut out) };
        let (lo, hi) = xs[n..]
            .iter()
            .fold((out[0], out[1]), |(l, h), &v| (l.min(v), h.max(v)));
        (lo < 0.0 && hi > 0.0).then_some((lo, hi))
    }

    /// Quantizes what it can and returns how many leading values it did (a multiple of 16).
    pub(super) fn quantize(xs: &[f32], dst: &mut [u8], scale: f32, zp: i32) -> usize {
        let n = xs.len().min(dst.len()) / 16 * 16;
        let normal = (5.421_011e-20..=1.844_674_4e19).contains(&scale); // [2^-64, 2^64]
        if n == 0 || !normal || !has_neon() {
            return 0;
        }
        let r = 1.0 / scale;
        let mut done = 0;
        while done < n {
            // SAFETY: NEON present; reads/writes the n - done values from `done` on.
            done += unsafe {
                bert_edge_armv7_quantize(
                    xs[done..].as_ptr(),
                    dst[done..].as_mut_ptr(),
                    n - done,
                    zp,
                    r,
                )
            };
            if done < n {
                // a chunk too near a tie: the scalar body decides it
                super::quantize_body(&xs[done..done + 16], &mut dst[done..done + 16], scale, zp);
                done += 16;
            }
        }
        n
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
    #[cfg(all(target_arch = "arm", target_os = "linux", target_env = "gnu"))]
    if let Some(lo_hi) = armv7::min_max(xs) {
        return lo_hi;
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
    #[cfg(all(target_arch = "arm", target_os = "linux", target_env = "gnu"))]
    let (xs, dst) = {
        let done = armv7::quantize(xs, dst, scale, zp as i32);
        (&xs[done..], &mut dst[done..])
    };
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
        // Near-ties at a scale that is not a power of two: (k + 1/2 + j·2^-18)·scale, with the
        // range's ends first so the tensor's scale is that one (armv7 decides these chunks
        // with the scalar body; every other path must round them the same).
        for (lo, hi) in [(-1.7f32, 2.3f32), (-0.031, 0.0123), (-97.0, 3.0)] {
            let scale = (hi - lo) / 255.0;
            let mut xs = vec![lo, hi];
            for k in -40..40 {
                for j in -6..=6 {
                    xs.push((k as f32 + 0.5 + j as f32 * 2f32.powi(-18)) * scale);
                }
            }
            cases.push(xs);
        }
        for xs in &cases {
            let (a, b) = (reference(xs), fast(xs));
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "scale of {xs:?}");
            assert_eq!(a.2, b.2, "zero point of {xs:?}");
            assert_eq!(a.0, b.0, "values of {} inputs", xs.len());
        }
    }

    /// The armv7 NEON paths run on a NEON CPU (qemu cortex-a15 in CI), take the chunks they
    /// should and hand near-ties to the scalar body.
    #[cfg(all(target_arch = "arm", target_os = "linux", target_env = "gnu"))]
    #[test]
    fn armv7_neon_paths_run_and_hand_near_ties_back() {
        assert!(
            armv7::has_neon(),
            "this armv7 CPU has no NEON: the NEON paths went untested"
        );
        let mut next = rng(7);
        let xs: Vec<f32> = (0..1024)
            .map(|_| (next() % 2_000_001) as f32 / 1e6 - 1.0)
            .collect();
        let (lo, hi) = min_max_body(&xs);
        assert_eq!(armv7::min_max(&xs), Some((lo, hi)));
        // all positive (min is the 0 the range starts from): left to the scalar body
        assert_eq!(armv7::min_max(&[1.0; 32]), None);
        // values a quarter step off the grid of a scale that is not a power of two, the
        // range's ends first; one exact tie in the chunk at 48
        let (lo, hi) = (-1.0f32, 1.55f32);
        let mut xs = vec![lo, hi];
        xs.extend((2..1024).map(|i| ((i % 240) as f32 - 90.0 + 0.25) * ((hi - lo) / 255.0)));
        let (scale, zp) = scale_and_zero_point(&xs);
        xs[50] = 3.5 * scale;
        let mut q = vec![0u8; xs.len()];
        // SAFETY: NEON present (asserted above); 1024 values in and out.
        let done = unsafe {
            armv7::bert_edge_armv7_quantize(
                xs.as_ptr(),
                q.as_mut_ptr(),
                1024,
                zp as i32,
                1.0 / scale,
            )
        };
        assert_eq!(
            done, 48,
            "the chunk holding the tie goes back to the scalar body"
        );
        assert_eq!(q[..48], reference(&xs).0[..48]);
        assert!(
            q[..48].iter().any(|&v| v != q[0]),
            "a constant output would prove little"
        );
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
