//! The portable bodies: plain Rust the compiler vectorizes for the target's baseline (SSE2,
//! NEON), the fallback on every CPU and the tail of every vector path.

/// Rounds half to even like `f32::round_ties_even` for |v| < 2^22 (and passes NaN through),
/// without the libm `rintf` call that x86_64's baseline (no SSE4.1) compiles it to: adding
/// and subtracting 1.5·2^23 leaves the integer nearest v, ties to even (IEEE default
/// rounding). Quantized values lie in [-255, 255] here, far inside the exact range; larger
/// ones are clamped away by the caller's `clamp(0, 255)` either way.
#[inline(always)]
pub(super) fn round_ties_even_small(v: f32) -> f32 {
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
pub(super) fn min_max_body(xs: &[f32]) -> (f32, f32) {
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
pub(super) fn quantize_body(xs: &[f32], dst: &mut [u8], scale: f32, zp: i32) {
    for (y, x) in dst.iter_mut().zip(xs) {
        *y = ((round_ties_even_small(x / scale) as i32) + zp).clamp(0, 255) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_bodies_match_the_reference() {
        crate::kernels::reference::check(min_max_body, quantize_body);
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
