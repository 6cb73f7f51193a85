//! **Unstable**: tract-facing internals, for the CLI's `info`/`bench --profile`, tests and
//! experiments. Everything here may change with any tract upgrade (tract's own types appear
//! in these signatures); nothing else in the crate exposes a tract type.
//!
//! ```
//! # #[cfg(feature = "onnx")] {
//! use bert_edge::{unstable, LoadOptions, Plan};
//! let plan = Plan::load("models/tiny/bert_ids_int8.onnx", &LoadOptions::new().seq(8))?;
//! assert!(unstable::model(&plan).nodes().iter().any(|n| n.op.name() == "DynQuantU8"));
//! # }
//! # Ok::<(), bert_edge::Error>(())
//! ```

pub use crate::passes::dyn_quant::DynQuantU8;
pub use crate::runtime::Fixes;
#[cfg(feature = "onnx")]
pub use crate::translate::{inspect_onnx, translate_onnx, OnnxFacts};
pub use tract_core;

use crate::error::Result;
use crate::{Plan, PlanInfo};
use std::path::Path;
use tract_core::prelude::TypedModel;

/// The tract version this crate is built against; archives record it.
pub const TRACT_VERSION: &str = crate::runtime::archive::TRACT_VERSION;

/// The optimized tract model behind a plan (op histogram, facts, profiling).
pub fn model(plan: &Plan) -> &TypedModel {
    plan.runnable.model()
}

/// The matmul kernels a plan runs (tract-linalg names: "arm64simd_mmm_i32_4x4_smull", …),
/// sorted, without repeats.
pub fn matmul_kernels(plan: &Plan) -> Vec<String> {
    use tract_core::ops::matmul::optimized::OptMatMul;
    let mut kernels: Vec<String> = model(plan)
        .nodes()
        .iter()
        .filter_map(|n| n.op_as::<OptMatMul>())
        .flat_map(|op| op.mmm.iter().map(|m| m.name().to_string()))
        .collect();
    kernels.sort();
    kernels.dedup();
    kernels
}

/// tract's NNEF framework with every registry a bert-edge archive needs.
pub fn nnef() -> tract_nnef::framework::Nnef {
    crate::runtime::archive::nnef()
}

/// Writes a translated model (from [`translate_onnx`]) as an archive, as `compile` does.
pub fn save_archive(model: &TypedModel, path: impl AsRef<Path>) -> Result<()> {
    crate::runtime::archive::save_archive(model, path.as_ref())
}

/// Optimizes a translated model into a plan, as a load does (with the column-sum fold).
pub fn plan_from_translated(
    model: TypedModel,
    info: PlanInfo,
    opts: &crate::LoadOptions,
) -> Result<Plan> {
    opts.check()?;
    Plan::from_translated(model, info, opts, true)
}
