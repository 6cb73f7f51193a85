// bert-edge addition (PATCHED.md, change 4): int8 GEMM for aarch64 cores without FEAT_DotProd
// (Cortex-A72 / Pi 4, Cortex-A53 / Pi 3).
//
// The published `arm64simd_mmm_i32_8x8` sign-extends both sides to i16 and multiplies with
// `smlal.4s` by element: 4 multiply-adds an instruction, plus the widening. This kernel
// multiplies bytes: per (row, column) and block of 16 k,
//
//     smull  t.8h, a.8b,  b.8b     // k 0..7, one i8*i8 product per i16 lane
//     smlal2 t.8h, a.16b, b.16b    // + k 8..15: two products per i16 lane
//     sadalp acc.4s, t.8h          // pairs of i16 lanes added into i32
//
// 16 multiply-adds in 3 instructions. The four i32 lanes of each accumulator are added once
// per tile (`addp`). Both sides use `PackedI8K16` (K=16-inner, one 16-byte row per lane).
//
// Exactness. An i8*i8 product lies in [-16256, 16384]; 16384 only for (-128)*(-128). Two
// products in one i16 lane overflow only if both are 16384: any other pair sums to at most
// 16384 + 16256 = 32640 <= 32767 (and at least 2*(-16256) = -32512). `PackedI8K16` flags
// each panel holding a -128. When the A panel or the B panel is free of -128 (weights from
// symmetric quantizers lie in -127..127), no product is (-128)*(-128) and the two-product
// loop is exact. When both carry one, the kernel takes a loop with one product per i16 lane
// (`smull` / `sadalp` twice), exact for any input. Results are equal, bit for bit, to any
// exact i32 GEMM (the kernel tests compare with tract's reference).
use core::arch::aarch64::*;

use crate::pack::PackedI8K16;

const MR: usize = 4;
const NR: usize = 4;

#[inline(always)]
unsafe fn load4(p: *const i8) -> [int8x16_t; 4] {
    unsafe { [vld1q_s8(p), vld1q_s8(p.add(16)), vld1q_s8(p.add(32)), vld1q_s8(p.add(48))] }
}

/// The 4x4 i32 inner product of one A panel and one B panel (`PackedI8K16::new(4)`), added
/// into `ab` (row-major tile).
#[inline(never)]
unsafe fn add_mat_mul_i8k16(pa: *const u8, pb: *const u8, k: usize, ab: &mut [[i32; NR]; MR]) {
    unsafe {
        let both_min = *pa != 0 && *pb != 0;
        let mut a = pa.add(PackedI8K16::HEADER) as *const i8;
        let mut b = pb.add(PackedI8K16::HEADER) as *const i8;
        let mut acc = [[vdupq_n_s32(0); NR]; MR];
        if !both_min {
            let block = |acc: &mut [[int32x4_t; NR]; MR], a: *const i8, b: *const i8| {
                let av = load4(a);
                let bv = load4(b);
                for r in 0..MR {
                    for c in 0..NR {
                        let t = vmull_s8(vget_low_s8(av[r]), vget_low_s8(bv[c]));
                        let t = vmlal_high_s8(t, av[r], bv[c]);
                        acc[r][c] = vpadalq_s16(acc[r][c], t);
                    }
                }
            };
            let blocks = k.div_ceil(16);
            // two blocks a round: the loop's counter and branch once per 512 multiply-adds
            for _ in 0..blocks / 2 {
                block(&mut acc, a, b);
                block(&mut acc, a.add(16 * MR), b.add(16 * NR));
                a = a.add(32 * MR);
                b = b.add(32 * NR);
            }
            if blocks % 2 == 1 {
                block(&mut acc, a, b);
            }
        } else {
            for _ in 0..k.div_ceil(16) {
                let av = load4(a);
                let bv = load4(b);
                for r in 0..MR {
                    for c in 0..NR {
                        let lo = vmull_s8(vget_low_s8(av[r]), vget_low_s8(bv[c]));
                        let hi = vmull_high_s8(av[r], bv[c]);
                        acc[r][c] = vpadalq_s16(vpadalq_s16(acc[r][c], lo), hi);
                    }
                }
                a = a.add(16 * MR);
                b = b.add(16 * NR);
            }
        }
        for c in 0..NR {
            let x = vpaddq_s32(acc[0][c], acc[1][c]);
            let y = vpaddq_s32(acc[2][c], acc[3][c]);
            let col = vpaddq_s32(x, y); // rows 0..3 of column c
            let mut lanes = [0i32; 4];
            vst1q_s32(lanes.as_mut_ptr(), col);
            for r in 0..MR {
                ab[r][c] = ab[r][c].wrapping_add(lanes[r]);
            }
        }
    }
}

// Below the SDOT kernel's instruction-set level; where no tier answers (`neon_qmmm_i32` names
// this kernel), without the boost tract would take the SMLAL 8x8 for its larger mr.
i8k16_kernel! { aarch64; add_mat_mul_i8k16 => arm64simd_mmm_i32_4x4_smull(4, 4)
    knob(crate::knobs::TRACT_ARM64_I8_SMULL_DISABLE) }

#[cfg(test)]
i8k16_exactness_tests!(arm64simd_mmm_i32_4x4_smull);
