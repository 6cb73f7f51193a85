//! The same bodies compiled for AVX2 (8 lanes), chosen at run time; the baseline x86_64
//! build has SSE2 only. Same operations in the same order per element: same bits.

/// Whether this CPU has AVX2 (the functions below may be called only then).
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[target_feature(enable = "avx2")]
pub(super) fn min_max(xs: &[f32]) -> (f32, f32) {
    super::portable::min_max_body(xs)
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
    super::portable::quantize_body(&xs[n..], &mut dst[n..], scale, zp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn avx2_kernels_match_the_reference() {
        if !super::available() {
            eprintln!("this CPU has no AVX2: the AVX2 kernels are not tested here");
            return;
        }
        crate::kernels::reference::check(
            // SAFETY: the CPU has AVX2 (checked above).
            |xs| unsafe { super::min_max(xs) },
            // SAFETY: as above.
            |xs, dst, scale, zp| unsafe { super::quantize(xs, dst, scale, zp) },
        );
    }
}
