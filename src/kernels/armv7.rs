//! The min/max and quantizer loops in NEON assembly for 32-bit ARM (armv7 Pi OS): Rust's
//! 32-bit NEON intrinsics are unstable, and the armv7 target's baseline has no NEON, so the
//! code is assembled on its own (`.fpu neon`) and called only when the CPU has NEON.
//!
//! armv7 NEON differs from the scalar VFP reference in three ways, each handled so the
//! results stay bit-identical:
//! - **subnormals are flushed to zero**, and min/max of a NaN is NaN: the NEON min/max is used
//!   only when it comes out with `lo < 0 < hi` (then both are normal numbers taken from the
//!   input, and a flushed subnormal or a NaN cannot have changed them); otherwise the scalar
//!   body runs again over the whole tensor.
//! - **no division**: `y' = x · fl(1/scale)` (the reciprocal from one VFP division) instead
//!   of `fl(x / scale)`. The two differ by less than `|y|·1.5·2^-23`, under 2^-14 where the
//!   output is not saturated (|y| ≤ 257). Rounding both to the nearest integer gives the same
//!   result unless `y'` lies within 2^-12 of a half-integer: such a chunk of 16 (ties
//!   included; ~1 % of chunks) is done by the scalar body instead. Used only for a normal
//!   scale in [2^-64, 2^64], so the reciprocal and the products that matter stay normal (an
//!   input flushed to 0 would have quantized to 0 anyway).
//! - **no round-to-nearest-even conversion**: the same 1.5·2^23 addition as
//!   `round_ties_even_small` (NEON always rounds to nearest even), a truncating convert of the
//!   now-integral value (NaN converts to 0, as `as i32` does), a saturating add of the zero
//!   point and saturating narrows to 0..=255.

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
            super::portable::quantize_body(
                &xs[done..done + 16],
                &mut dst[done..done + 16],
                scale,
                zp,
            );
            done += 16;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    /// The armv7 NEON paths run on a NEON CPU (qemu cortex-a15 in CI), take the chunks they
    /// should and hand near-ties to the scalar body.
    #[test]
    fn armv7_neon_paths_run_and_hand_near_ties_back() {
        assert!(
            super::has_neon(),
            "this armv7 CPU has no NEON: the NEON paths went untested"
        );
        let mut next = crate::kernels::reference::rng(7);
        let xs: Vec<f32> = (0..1024)
            .map(|_| (next() % 2_000_001) as f32 / 1e6 - 1.0)
            .collect();
        let (lo, hi) = crate::kernels::portable::min_max_body(&xs);
        assert_eq!(super::min_max(&xs), Some((lo, hi)));
        // all positive (min is the 0 the range starts from): left to the scalar body
        assert_eq!(super::min_max(&[1.0; 32]), None);
        // values a quarter step off the grid of a scale that is not a power of two, the
        // range's ends first; one exact tie in the chunk at 48
        let (lo, hi) = (-1.0f32, 1.55f32);
        let mut xs = vec![lo, hi];
        xs.extend((2..1024).map(|i| ((i % 240) as f32 - 90.0 + 0.25) * ((hi - lo) / 255.0)));
        let (scale, zp) = crate::kernels::scale_and_zero_point(&xs);
        xs[50] = 3.5 * scale;
        let mut q = vec![0u8; xs.len()];
        // SAFETY: NEON present (asserted above); 1024 values in and out.
        let done = unsafe {
            super::bert_edge_armv7_quantize(
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
        assert_eq!(q[..48], crate::kernels::reference::reference(&xs).0[..48]);
        assert!(
            q[..48].iter().any(|&v| v != q[0]),
            "a constant output would prove little"
        );
    }
}
