//! The quantizer with NEON intrinsics (baseline on aarch64): 16 values a round, the same
//! steps as the AVX2 version (divide, round to nearest even with `frintn`, NaN to 0, clamp to
//! ±2^22, convert, add the zero point, clamp to 0..=255, narrow); the tail through the scalar
//! body. min/max stay in the portable body, which the compiler vectorizes for NEON.

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
    super::portable::quantize_body(&xs[n..], &mut dst[n..], scale, zp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn neon_quantizer_matches_the_reference() {
        let portable = super::super::portable::min_max_body;
        crate::kernels::reference::check(portable, super::quantize);
    }
}
