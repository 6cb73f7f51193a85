//! How to load a plan: [`LoadOptions`] (a builder) and [`F16Compute`].

use super::{Flavour, Variant};

/// Sequence capacity N used for an ONNX export when the options do not say (archives carry
/// theirs).
///
/// ```
/// assert_eq!(bert_edge::DEFAULT_SEQ, 128);
/// ```
pub const DEFAULT_SEQ: usize = 128;

/// Default granule: a call on a plan of any length runs at its real length rounded up to a
/// multiple of this (lengths below it as they are): fewer distinct lengths to keep input
/// tensors for, at most granule − 1 padding positions computed. int8 plans run at the exact
/// length whatever the granule.
///
/// ```
/// assert_eq!(bert_edge::DEFAULT_GRANULE, 8);
/// ```
pub const DEFAULT_GRANULE: usize = 8;

/// How [`crate::Plan::load`] builds a plan. Every setting is optional: an ONNX export gets
/// batch 1 and a plan of any length up to [`DEFAULT_SEQ`] and keeps its own flavour and
/// variant; an archive keeps the shapes it was compiled for, and a setting that disagrees
/// with it is an error.
///
/// ```
/// use bert_edge::{F16Compute, LoadOptions, Variant};
/// let opts = LoadOptions::new()
///     .seq(512) // buffers of 512 positions; each call runs at its own length
///     .granule(16)
///     .batch(1)
///     .threads(2)
///     .variant(Variant::F16)
///     .f16_compute(F16Compute::Native);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub(crate) seq: Option<usize>,
    pub(crate) fixed_length: Option<bool>,
    pub(crate) granule: Option<usize>,
    pub(crate) threads: Option<usize>,
    pub(crate) batch: Option<usize>,
    pub(crate) flavour: Option<Flavour>,
    pub(crate) variant: Option<Variant>,
    pub(crate) hidden_size: Option<usize>,
    pub(crate) f16_compute: F16Compute,
    pub(crate) fixes: Fixes,
    pub(crate) config: Option<std::path::PathBuf>,
    pub(crate) tokenizer: Option<std::path::PathBuf>,
    pub(crate) tune: super::tuning::Tune,
}

impl LoadOptions {
    /// Everything taken from the file (ONNX: batch 1, any length up to [`DEFAULT_SEQ`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sequence capacity N: every call's token rows are N long (ONNX: the plan's bound, at
    /// most the model's positions; archive: must match). A plan of any length (the default)
    /// runs each call at its real length; a [`LoadOptions::fixed_length`] plan at N.
    pub fn seq(mut self, seq: usize) -> Self {
        self.seq = Some(seq);
        self
    }

    /// `true`: pin the plan to exactly N positions (every call computes all N, padding
    /// included: the plans of bert-edge before 0.2). `false` (the default for an ONNX
    /// export): the sequence axis is a tract symbol `S ≤ N`, the weights are packed once, and
    /// each call runs at L = its longest real row rounded up to the granule
    /// ([`crate::Plan::run_length`]). An archive keeps
    /// what it was compiled with; asking for the other is an error.
    pub fn fixed_length(mut self, fixed: bool) -> Self {
        self.fixed_length = Some(fixed);
        self
    }

    /// Granule of a plan of any length: a call runs at its real length rounded up to a
    /// multiple of `g`, lengths below `g` as they are (default [`DEFAULT_GRANULE`]; 1 =
    /// always exactly the real length). An int8 plan always runs at the exact length: its
    /// dynamic quantization ranges must come from the real tokens only.
    pub fn granule(mut self, g: usize) -> Self {
        self.granule = Some(g);
        self
    }

    /// Threads each [`crate::Encoder`] of the plan runs tract's matmuls on (default 1; more
    /// needs the `multithread` feature, else [`crate::Encoder::new`] refuses). Each encoder
    /// gets a pool of its own; during a call its threads spin for the call's matmul chunks
    /// (each for as long as it finds one within 5 ms), so keep encoders × threads at or below
    /// the cores.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Batch size of every call (ONNX: pins it; archive: must match).
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = Some(batch);
        self
    }

    /// Requires an `input_ids` or an `inputs_embeds` graph.
    pub fn flavour(mut self, flavour: Flavour) -> Self {
        self.flavour = Some(flavour);
        self
    }

    /// Requires this variant. `F16` from an f32 ONNX file converts it (tract's own f32 → f16
    /// conversion); every other mismatch is an error.
    pub fn variant(mut self, variant: Variant) -> Self {
        self.variant = Some(variant);
        self
    }

    /// Requires this hidden size (e.g. from the `config.json` the caller uses).
    pub fn hidden_size(mut self, hidden: usize) -> Self {
        self.hidden_size = Some(hidden);
        self
    }

    /// The export's Hugging Face `config.json` (labels of a classifier: `id2label`,
    /// `problem_type`). Default for an ONNX file: `config.json` beside it, if there is one.
    /// An archive carries the labels it was compiled with and ignores this.
    pub fn config(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config = Some(path.into());
        self
    }

    /// The model's `tokenizer.json`. Default: `tokenizer.json` beside the model file or one
    /// directory up, else (an archive) the one `compile` bundled; never the working
    /// directory's. The plan keeps it ([`crate::Plan::tokenizer`]); `compile` bundles it.
    pub fn tokenizer(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tokenizer = Some(path.into());
        self
    }

    /// What an f16 plan computes in (default [`F16Compute::Auto`]).
    pub fn f16_compute(mut self, f16: F16Compute) -> Self {
        self.f16_compute = f16;
        self
    }

    /// How the matmul kernels are chosen (default [`Tune::Cached`](crate::tuning::Tune):
    /// a measurement made earlier on this CPU, else tract's rules). See [`crate::tuning`].
    pub fn tune(mut self, tune: super::tuning::Tune) -> Self {
        self.tune = tune;
        self
    }

    /// Which graph rewrites the ONNX import applies (all by default). Unstable: for tests that
    /// show what breaks without one.
    pub fn unstable_fixes(mut self, fixes: Fixes) -> Self {
        self.fixes = fixes;
        self
    }

    #[cfg(feature = "onnx")]
    pub(crate) fn seq_or_default(&self) -> usize {
        self.seq.unwrap_or(DEFAULT_SEQ)
    }

    /// Refuses a count of zero (sequence length, batch, granule, threads) before any work.
    pub(crate) fn check(&self) -> crate::Result<()> {
        let counts = [
            ("sequence length", self.seq),
            ("batch", self.batch),
            ("granule", self.granule),
            ("threads", self.threads),
        ];
        match counts.iter().find(|(_, v)| *v == Some(0)) {
            Some((name, _)) => Err(crate::Error::bad_options(format!(
                "{name} must be at least 1"
            ))),
            None => Ok(()),
        }
    }

    pub(crate) fn granule_or_default(&self) -> usize {
        self.granule.unwrap_or(DEFAULT_GRANULE)
    }
}

/// What an f16 plan computes in.
///
/// An f16 export halves the weights (download, flash, RAM). Whether it should also
/// *compute* in f16 depends on the CPU: a Pi 5 (cortex-a76) has f16 arithmetic and tract has
/// kernels for it; x86_64 and the Pi 4's cortex-a72 / Pi 3's a53 do not, and tract then
/// converts around every op (2× slower on x86, ~4× the instructions on a72).
///
/// ```
/// use bert_edge::F16Compute;
/// assert_eq!("auto".parse::<F16Compute>()?, F16Compute::Auto);
/// assert!(F16Compute::F32.widens());
/// assert!(!F16Compute::Native.widens());
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum F16Compute {
    /// [`F16Compute::F32`] where the running CPU has no f16 arithmetic (x86_64, cortex-a72,
    /// a53), native f16 where it has (cortex-a76 / Pi 5).
    #[default]
    Auto,
    /// Compute in f16 as the file says (tract emulates it where the CPU cannot).
    Native,
    /// Widen the f16 weights to f32 at load and compute in f32 (f32 speed, 2× the memory,
    /// accuracy at least f16's).
    F32,
}

impl F16Compute {
    /// Whether an f16 plan is widened to f32 on the running CPU.
    pub fn widens(self) -> bool {
        match self {
            F16Compute::Auto => !tract_core::internal::tract_linalg::has_fp16(),
            F16Compute::Native => false,
            F16Compute::F32 => true,
        }
    }
}

impl std::str::FromStr for F16Compute {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "auto" => Ok(F16Compute::Auto),
            "native" | "f16" => Ok(F16Compute::Native),
            "f32" => Ok(F16Compute::F32),
            _ => Err(crate::Error::bad_options(format!(
                "f16 compute must be auto, native or f32, not {s:?}"
            ))),
        }
    }
}

/// Which import-time rewrites [`crate::Plan::load`] applies. All on by default; a test turns
/// one off to show what breaks without it.
///
/// ```
/// use bert_edge::unstable::Fixes;
/// let fixes = Fixes { f16_gemm: false, ..Fixes::default() };
/// assert!(fixes.ignore_value_info);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixes {
    /// Ignore the `value_info` the f16/int8 converters leave behind: their symbolic
    /// shapes (`batch`, `sequence`) clash with pinned input shapes ("Impossible to unify
    /// Sym(batch) with Val(1)").
    pub ignore_value_info: bool,
    /// Make the f16 graph's `Gemm` (pooler dense) stay f16 (`src/passes/f16_gemm.rs`).
    pub f16_gemm: bool,
    /// Fold the int8 weights' column sums into constants once (`src/passes/fold.rs`).
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
