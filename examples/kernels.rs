//! Which matrix-multiply kernels does tract pick on *this* CPU, and do they compute right?
//!
//! tract-linalg chooses its ARM kernels at run time (ISA probe: `/proc/cpuinfo` `Features`
//! for fp16 / armv7 NEON, `getauxval(AT_HWCAP*)` for SVE and dotprod, `CPU part` for the
//! per-core cost models). Under qemu-user the answer depends on the `-cpu` model and on qemu's
//! version (7.2 shows the *host's* /proc/cpuinfo), so CI runs this to prove what the tests
//! exercised rather than assume it.
//!
//! ```text
//! cargo run --example kernels [--target T] -- [--expect-f32 PREFIX] [--expect-f16 PREFIX]
//! ```
//!
//! It prints the probed ISA, the dispatch tiers, the kernel the dispatcher prefers for
//! BERT-base shapes, then builds tiny tract-core plans (f32 and f16 GEMM/GEMV against constant
//! weights, as a Linear layer is), optimizes them, prints the kernel each `OptMatMul` was given,
//! runs it and checks it against a naive reference. `--expect-*` make it exit non-zero when the
//! kernel chosen for the optimized f32 / f16 GEMM does not start with PREFIX (e.g. `arm64simd_`,
//! `arm64fp16_`, `armv7neon_`, `sve_`) — that is how `scripts/test-all.sh` asserts each
//! emulated CPU model drives the kernels a real Raspberry Pi would.
//!
//! Only tract-core (and the tract-linalg it re-exports) is used, so the example builds with
//! `--no-default-features` too.

use tract_core::internal::*;
use tract_core::ops::einsum::EinSum;
use tract_core::ops::matmul::optimized::OptMatMul;
use tract_core::tract_linalg;
use tract_linalg::MmmDispatch;

/// BERT-base: hidden 768, FFN 3072, a 128-token sequence; n=1 is the one-token GEMV.
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("qkv/out proj 768x768 @ seq128", 768, 768, 128),
    ("ffn up 3072x768 @ seq128", 3072, 768, 128),
    ("gemv 768x768 @ 1 token", 768, 768, 1),
];

fn main() -> TractResult<()> {
    let mut expect_f32: Option<String> = None;
    let mut expect_f16: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--expect-f32" => expect_f32 = args.next(),
            "--expect-f16" => expect_f16 = args.next(),
            other => bail!("unknown argument {other:?} (use --expect-f32 P / --expect-f16 P)"),
        }
    }

    let isa = tract_linalg::isa::native();
    println!("target_arch      : {}", std::env::consts::ARCH);
    println!("isa (probed+env) : {:?}  nickname={}", isa, isa.nickname());
    println!("has_fp16         : {}", tract_linalg::has_fp16());
    for knob in [
        "TRACT_CPU_ISA",
        "TRACT_CPU_ARM32_NEON",
        "TRACT_CPU_AARCH64_KIND",
        "TRACT_SVE_DISABLE",
    ] {
        if let Ok(v) = std::env::var(knob) {
            println!("env {knob}={v}");
        }
    }
    let dispatch = MmmDispatch::native();
    let tiers: Vec<&str> = dispatch.tiers().iter().map(|t| t.name).collect();
    println!("tiers            : {}", tiers.join(" > "));
    let runnable: Vec<&str> = dispatch.runnable().iter().map(|k| k.name()).collect();
    println!(
        "runnable kernels : {} ({})",
        runnable.len(),
        runnable.join(" ")
    );

    println!("dispatcher preference (accumulator, m x k x n):");
    for dt in [DatumType::F32, DatumType::F16, DatumType::I32] {
        for (label, m, k, n) in SHAPES {
            let pick = dispatch
                .preferred_kernel(dt, Some(*m), Some(*k), Some(*n))
                .map(|k| k.name().to_string())
                .unwrap_or_else(|| "-".into());
            println!("  {dt:?} {label:<32} -> {pick}");
        }
    }

    println!("optimized plans (what actually runs):");
    let mut picked_f32 = None;
    let mut picked_f16 = None;
    for (label, m, k, n) in SHAPES {
        let (m, k, n) = (*m, *k, *n);
        let f32_kernel = run_linear::<f32>(m, k, n, 1e-3)?;
        println!("  F32 {label:<32} -> {f32_kernel}");
        let f16_kernel = run_linear::<f16>(m, k, n, 2e-2)?;
        println!("  F16 {label:<32} -> {f16_kernel}");
        if n > 1 {
            picked_f32.get_or_insert(f32_kernel);
            picked_f16.get_or_insert(f16_kernel);
        }
    }

    let mut ok = true;
    for (what, expect, got) in [
        ("f32", &expect_f32, &picked_f32),
        ("f16", &expect_f16, &picked_f16),
    ] {
        if let (Some(expect), Some(got)) = (expect, got) {
            if got.starts_with(expect.as_str()) {
                println!("expect {what} kernel {expect}*: ok ({got})");
            } else {
                println!("expect {what} kernel {expect}*: MISMATCH, got {got}");
                ok = false;
            }
        }
    }
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

/// y = W·x with W [m,k] constant (a Linear layer's weight) and x [k,n] the input; returns the
/// kernel name(s) of the optimized OptMatMul, after checking sampled rows against a naive loop.
fn run_linear<T>(m: usize, k: usize, n: usize, tol: f32) -> TractResult<String>
where
    T: Datum + Copy + tract_core::num_traits::AsPrimitive<f32>,
    f32: tract_core::num_traits::AsPrimitive<T>,
{
    use tract_core::num_traits::AsPrimitive;
    // Deterministic small values in [-0.5, 0.5), so f16 accumulation stays well conditioned.
    // u64 arithmetic: usize is 32-bit on armv7.
    let val = |i: usize, salt: u64| -> f32 {
        ((((i as u64).wrapping_mul(2654435761) + salt * 40503) >> 7) % 1000) as f32 / 1000.0 - 0.5
    };
    let w: Vec<T> = (0..m * k).map(|i| val(i, 1).as_()).collect();
    let x: Vec<T> = (0..k * n).map(|i| val(i, 2).as_()).collect();

    let mut model = TypedModel::default();
    let wt = tensor_from(&w, &[m, k])?;
    let a = model.add_const("w", wt)?;
    let b = model.add_source("x", T::datum_type().fact([k, n]))?;
    let y = model.wire_node(
        "linear",
        EinSum::new("mk,kn->mn".parse()?, T::datum_type()),
        &[a, b],
    )?;
    model.select_output_outlets(&y)?;
    let model = model.into_optimized()?;
    let kernels: Vec<String> = model
        .nodes
        .iter()
        .filter_map(|node| node.op_as::<OptMatMul>())
        .flat_map(|op| op.mmm.iter().map(|k| k.name().to_string()))
        .collect();
    let kernels = if kernels.is_empty() {
        // Not lowered to OptMatMul (should not happen for these shapes): say what runs instead.
        let ops: Vec<String> = model
            .nodes
            .iter()
            .map(|n| n.op.name().to_string())
            .collect();
        format!("no OptMatMul: {}", ops.join(","))
    } else {
        kernels.join("+")
    };

    let plan = model.into_runnable()?;
    let out = plan.run(tvec!(tensor_from(&x, &[k, n])?.into_tvalue()))?;
    let view = out[0].try_as_plain_ram()?;
    let got = view.as_slice::<T>()?;
    // A sample of rows (every 61st) keeps the naive check cheap under qemu at opt-level 0.
    let mut worst = 0f32;
    for i in (0..m).step_by(61) {
        for j in 0..n {
            let mut acc = 0f32;
            for l in 0..k {
                acc += w[i * k + l].as_() * x[l * n + j].as_();
            }
            let g: f32 = got[i * n + j].as_();
            worst = worst.max((g - acc).abs() / (1.0 + acc.abs()));
        }
    }
    ensure!(
        worst <= tol,
        "{:?} {m}x{k}x{n} on {kernels}: relative error {worst} > {tol}",
        T::datum_type()
    );
    Ok(kernels)
}

fn tensor_from<T: Datum + Copy>(data: &[T], shape: &[usize]) -> TractResult<Tensor> {
    Ok(tract_core::ndarray::ArrayD::from_shape_vec(shape, data.to_vec())?.into())
}
