//! Graph fixes these exports need under tract 0.23.9, one file each with its reason.

pub mod dequant_arith;
pub mod f16_convert;
pub mod f16_gemm;

/// Which fixes the plan builder applies. All on by default; a test turns one off to show
/// what breaks without it.
#[derive(Debug, Clone, Copy)]
pub struct Fixes {
    /// Ignore the `value_info` the f16/int8 converters leave behind: their symbolic
    /// shapes (`batch`, `sequence`) clash with pinned input shapes ("Impossible to unify
    /// Sym(batch) with Val(1)").
    pub ignore_value_info: bool,
    /// Make the f16 graph's `Gemm` (pooler dense) stay f16 (see `f16_gemm`).
    pub f16_gemm: bool,
    /// Fold the int8 weights' column sums into constants once (see `runtime/fold.rs`).
    pub fold_int8_sums: bool,
}

impl Default for Fixes {
    fn default() -> Self {
        Fixes {
            ignore_value_info: true,
            f16_gemm: true,
            fold_int8_sums: true,
        }
    }
}
