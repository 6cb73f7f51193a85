// bert-edge addition (PATCHED.md, change 5): int8 GEMM for armv7 NEON (32-bit Raspberry Pi
// OS on a Pi 2/3/4), the 32-bit twin of arm64simd_mmm_i32_4x4_smull.
//
// The published `armv7neon_mmm_i32_8x4` sign-extends both sides to i16 (`vmovl.s8`) and
// multiplies with `vmlal.s16` by scalar: 4 multiply-adds an instruction, plus the widening.
// This kernel multiplies bytes: per (row, column) and block of 16 k,
//
//     vmull.s8   t, a_lo, b_lo     // k 0..7, one i8*i8 product per i16 lane
//     vmlal.s8   t, a_hi, b_hi     // + k 8..15: two products per i16 lane
//     vpadal.s16 acc, t            // pairs of i16 lanes added into i32
//
// 16 multiply-adds in 3 instructions. The inner product is assembly
// (arm32/armv7neon/armv7neon_i8k16_4x2.S.j2: 32-bit NEON intrinsics are unstable in Rust),
// called once per tile; the epilogue is tract's generic kernel (`kernel_with`). The tile is
// 4x2 because armv7 has 16 q registers: 8 accumulators, 4 A rows, 2 B columns, 2 products.
//
// Exactness: as for the aarch64 kernel (see its header). Two products in an i16 lane overflow
// only if both are (-128)*(-128); `PackedI8K16` flags each panel holding a -128, and when both
// panels are flagged the kernel takes the `_single` loop, one product per lane.
use crate::pack::PackedI8K16;

const MR: usize = 4;
const NR: usize = 2;

#[cfg(target_arch = "arm")]
mod asm {
    extern_kernel!(fn armv7neon_i8k16_4x2_pairs(pa: *const u8, pb: *const u8, blocks: usize, ab: *mut i32) -> isize);
    extern_kernel!(fn armv7neon_i8k16_4x2_single(pa: *const u8, pb: *const u8, blocks: usize, ab: *mut i32) -> isize);
}

/// The 4x2 i32 inner product of one A panel (`PackedI8K16::new(4)`) and one B panel
/// (`PackedI8K16::new(2)`), added into `ab`.
#[cfg(target_arch = "arm")]
unsafe fn add_mat_mul_i8k16(pa: *const u8, pb: *const u8, k: usize, ab: &mut [[i32; NR]; MR]) {
    let blocks = k.div_ceil(16);
    if blocks == 0 {
        return;
    }
    // `ab` is row-major [[i32; NR]; MR]: the layout the assembly adds its sums into
    let ab = ab.as_mut_ptr() as *mut i32;
    unsafe {
        let both_min = *pa != 0 && *pb != 0;
        let (a, b) = (pa.add(PackedI8K16::HEADER), pb.add(PackedI8K16::HEADER));
        if both_min {
            asm::armv7neon_i8k16_4x2_single(a, b, blocks, ab);
        } else {
            asm::armv7neon_i8k16_4x2_pairs(a, b, blocks, ab);
        }
    }
}

#[cfg(not(target_arch = "arm"))]
unsafe fn add_mat_mul_i8k16(_: *const u8, _: *const u8, _: usize, _: &mut [[i32; NR]; MR]) {
    unreachable!("armv7neon_mmm_i32_4x2_smull: not built for this target arch")
}

// With a symbolic n (plans of any length) no tier answers on armv7, and without the boost
// tract would take the vmlal.s16 8x4 among the kernels `retain_best` keeps.
i8k16_kernel! { arm; add_mat_mul_i8k16 => armv7neon_mmm_i32_4x2_smull(4, 2)
    knob(crate::knobs::TRACT_ARM32_I8_SMULL_DISABLE) isa(ArmNeon) }

#[cfg(test)]
i8k16_exactness_tests!(armv7neon_mmm_i32_4x2_smull);
