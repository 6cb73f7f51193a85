//! bert-edge's own SIMD code, one file per instruction set, each checked against the scalar
//! reference in [`reference`] by a test beside it. Today: the int8 activation quantizer of
//! `DynQuantU8` ([`crate::passes::dyn_quant`]): the min and max of a tensor (and 0), then
//! `y = clamp(round_ties_even(x / scale) + zp, 0, 255)`, bit-identical to tract-onnx.
//!
//! | file | instruction set | used |
//! |---|---|---|
//! | `portable.rs` | none (the compiler vectorizes for the target's baseline) | fallback, and every tail |
//! | `avx2.rs` | x86_64 AVX2 | when the CPU has it (checked at run time) |
//! | `neon.rs` | aarch64 NEON intrinsics | always (NEON is aarch64's baseline) |
//! | `armv7.rs` | 32-bit ARM NEON assembly | when the CPU has NEON (`HWCAP_NEON`) |

#[cfg(all(target_arch = "arm", target_os = "linux", target_env = "gnu"))]
mod armv7;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;
mod portable;

/// min and max over `xs` and 0, NaN ignored (as folding `f32::min` / `f32::max` from 0), on
/// the fastest path this CPU has.
pub(crate) fn min_max(xs: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { avx2::min_max(xs) };
    }
    #[cfg(all(target_arch = "arm", target_os = "linux", target_env = "gnu"))]
    if let Some(lo_hi) = armv7::min_max(xs) {
        return lo_hi;
    }
    portable::min_max_body(xs)
}

/// `dst[i] = clamp(round_ties_even(xs[i] / scale) + zp, 0, 255)` on the fastest path this
/// CPU has.
pub(crate) fn quantize(xs: &[f32], dst: &mut [u8], scale: f32, zp: u8) {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
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
    portable::quantize_body(xs, dst, scale, zp as i32)
}

/// The scale and zero point of `DynamicQuantizeLinear` (u8) for `xs`: its range, 0 included,
/// over 255 steps.
pub(crate) fn scale_and_zero_point(xs: &[f32]) -> (f32, u8) {
    let (min, max) = min_max(xs);
    scale_and_zero_point_of(min, max)
}

/// The scale and zero point of the range `min ≤ 0 ≤ max`.
pub(crate) fn scale_and_zero_point_of(min: f32, max: f32) -> (f32, u8) {
    let scale = (max - min) / 255.0;
    let zero_point = (-min / scale).round_ties_even().clamp(0.0, 255.0);
    (scale, zero_point as u8)
}

/// The scalar reference every kernel is tested against, and the inputs it is tested on.
#[cfg(test)]
pub(crate) mod reference {
    /// The quantizer as it was written first (and as tract-onnx does it): the reference.
    pub(crate) fn reference(xs: &[f32]) -> (Vec<u8>, f32, u8) {
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

    /// xorshift: deterministic inputs without a dependency.
    pub(crate) fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed.max(1);
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    /// Edge cases (empty, constant, ties, subnormals, huge values, NaN), random tensors of
    /// every length around the vector widths, and near-ties.
    pub(crate) fn cases() -> Vec<Vec<f32>> {
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
        cases
    }

    /// Asserts that one instruction set's `min_max` and `quantize` give the reference's bits
    /// (scale, zero point, values) on every case.
    pub(crate) fn check(
        min_max: impl Fn(&[f32]) -> (f32, f32),
        quantize: impl Fn(&[f32], &mut [u8], f32, i32),
    ) {
        for xs in &cases() {
            let (q, scale, zp) = reference(xs);
            let (lo, hi) = min_max(xs);
            let s = (hi - lo) / 255.0;
            assert_eq!(s.to_bits(), scale.to_bits(), "scale of {xs:?}");
            let mut got = vec![0u8; xs.len()];
            quantize(xs, &mut got, scale, zp as i32);
            assert_eq!(got, q, "values of {} inputs", xs.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reference::{cases, reference};
    use super::*;

    fn fast(xs: &[f32]) -> (Vec<u8>, f32, u8) {
        let (scale, zp) = scale_and_zero_point(xs);
        let mut q = vec![0u8; xs.len()];
        quantize(xs, &mut q, scale, zp);
        (q, scale, zp)
    }

    /// The dispatched path (the one `DynQuantU8` runs on this CPU).
    #[test]
    fn vectorized_quantizer_is_bit_identical_to_the_reference() {
        for xs in &cases() {
            let (a, b) = (reference(xs), fast(xs));
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "scale of {xs:?}");
            assert_eq!(a.2, b.2, "zero point of {xs:?}");
            assert_eq!(a.0, b.0, "values of {} inputs", xs.len());
        }
    }
}
