use crate::LADatum;

#[macro_use]
pub mod fuse;
#[macro_use]
pub mod frame;
#[macro_use]
pub mod packed_packed;
#[macro_use]
pub mod q_scale;
#[macro_use]
pub mod store;
#[macro_use]
pub mod strided;

#[cfg(test)]
macro_rules! test_mmm_kernel {
    (f16, $ker:expr) => {
        test_mmm_kernel_f16!($ker);
    };
    (f32, $ker:expr) => {
        test_mmm_kernel_f32!($ker);
    };
    (f64, $ker:expr) => {
        test_mmm_kernel_f64!($ker);
    };
    (i32, $ker:expr) => {
        test_mmm_kernel_i32!($ker);
    };
}

#[macro_export]
macro_rules! test_mmm_kernel_f16 {
    ($ker: expr) => {
        mmm_packed_packed_tests!(&*$ker, f16f16:0);
        mmm_frame_tests!(&*$ker, f16, f16, f16, f16);
        mmm_kernel_fuse_tests!(&*$ker, f16, f16);
        mmm_store_test!(&*$ker, f16);
    };
}

#[macro_export]
macro_rules! test_mmm_kernel_f32 {
    ($ker: expr) => {
        mmm_packed_packed_tests!(&*$ker, f32f32:0);
        mmm_frame_tests!(&*$ker, f32, f32, f32, f32);
        mmm_kernel_fuse_tests!(&*$ker, f32, f32);
        mmm_store_test!(&*$ker, f32);
    };
}

#[macro_export]
macro_rules! test_mmm_kernel_f64 {
    ($ker:expr) => {
        mmm_packed_packed_tests!(&*$ker, f64f64:0);
        mmm_frame_tests!(&*$ker, f64, f64, f64, f64);
        mmm_kernel_fuse_tests!(&*$ker, f64, f64);
        mmm_store_test!(&*$ker, f64);
    };
}

#[macro_export]
macro_rules! test_mmm_kernel_i32 {
    ($ker: expr) => {
        mmm_packed_packed_tests!(&*$ker, i32i32:0);
        mmm_kernel_fuse_tests!(&*$ker, i32, i32);
        mmm_frame_tests!(&*$ker, i32, i32, i32, i32);
        mmm_q_scale_tests!(&*$ker);
        mmm_store_test!(&*$ker, i32);
    };
}

/// bert-edge addition (PATCHED.md, changes 4 and 5): exactness tests for the byte-multiplying
/// int8 kernels over `PackedI8K16` (two i8*i8 products per i16 lane). tract's generated tests
/// draw i8 values from -5..5; these cover the full range, -128 in one, both or neither operand,
/// and the sums closest to i16 overflow. `$ker` is the kernel's static, in the calling module.
#[cfg(test)]
macro_rules! i8k16_exactness_tests {
    ($ker:ident) => {
        mod exactness {
            use super::*;
            use crate::frame::mmm::kernel::MatMatMulKer;
            use crate::frame::mmm::tests::packed_packed::PackedPackedProblem;

            fn lcg(seed: u64, n: usize, lo: i32, hi: i32) -> Vec<f32> {
                let mut s = seed;
                (0..n)
                    .map(|_| {
                        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (lo + ((s >> 33) % ((hi - lo + 1) as u64)) as i32) as f32
                    })
                    .collect()
            }

            fn check(m: usize, k: usize, n: usize, a: Vec<f32>, b: Vec<f32>) {
                assert_eq!((a.len(), b.len()), (m * k, k * n));
                let ker = &*$ker;
                let pb = PackedPackedProblem::frame(ker, 1, m, n, a, b);
                let expected = pb.reference().unwrap();
                let found = pb.run().unwrap();
                let found = found.try_as_plain_ram().unwrap().as_slice::<i32>().unwrap().to_vec();
                let expected =
                    expected.try_as_plain_ram().unwrap().as_slice::<i32>().unwrap().to_vec();
                assert_eq!(found, expected);
            }

            #[test]
            fn runs_here() {
                // the suite is run under a CPU model that has the kernel's instructions
                assert!($ker.runnable(), "{} cannot run on this CPU", $ker.name());
            }

            #[test]
            fn full_range_both_sides() {
                // -128 on both sides: the one-product-per-lane loop
                for (m, k, n) in [(9, 37, 7), (4, 16, 2), (4, 16, 4), (5, 1, 3), (13, 100, 11)] {
                    check(m, k, n, lcg(1, m * k, -128, 127), lcg(2, k * n, -128, 127));
                }
            }

            #[test]
            fn symmetric_weights_full_range_activations() {
                // A in -127..127: the two-products-per-lane loop (odd and even block counts),
                // B full range, and the reverse
                for (m, k, n) in [(9, 37, 7), (8, 64, 8), (13, 100, 11), (4, 48, 2)] {
                    check(m, k, n, lcg(3, m * k, -127, 127), lcg(4, k * n, -128, 127));
                    check(m, k, n, lcg(5, m * k, -128, 127), lcg(6, k * n, -127, 127));
                }
            }

            #[test]
            fn extremes() {
                let (m, k, n) = (8, 48, 8);
                // every product (-128)*(-128) = 16384: two in a lane would wrap
                check(m, k, n, vec![-128.0; m * k], vec![-128.0; k * n]);
                // (+-127)*(-128): the fast loop's largest sums, +-32512 per lane
                check(m, k, n, vec![-127.0; m * k], vec![-128.0; k * n]);
                check(m, k, n, vec![127.0; m * k], vec![-128.0; k * n]);
                check(m, k, n, vec![-128.0; m * k], vec![127.0; k * n]);
            }

            #[test]
            fn one_min_in_one_panel() {
                // A's second panel (rows 4..8) holds the only -128s, at k = 17 and 25: the two
                // products of one i16 lane. Panels are flagged one by one.
                let (m, k, n) = (8, 32, 4);
                let mut a = vec![-127.0; m * k];
                a[5 * k + 17] = -128.0;
                a[5 * k + 25] = -128.0;
                check(m, k, n, a, vec![-128.0; k * n]);
            }
        }
    };
}

pub fn display_error<TC: LADatum>(v: &[TC], expected: &[TC], m: usize, n: usize) {
    if v != expected {
        for ixm in 0..m {
            print!("|");
            for ixn in 0..n {
                use nu_ansi_term::Color::*;
                let f = v[ixm * n + ixn];
                let e = expected[ixm * n + ixn];
                let color = if f != e { Red.bold() } else { Green.into() };
                print!("{}|", color.paint(format!("{f:5}")));
            }
            print!("  #  ");
            for ixn in 0..n {
                print!("{:5} ", expected[ixm * n + ixn]);
            }
            println!();
        }
    }
}
