//! A translated model (ONNX or archive alike) → an optimized runnable [`Plan`].

use super::options::LoadOptions;
use super::tuning::{self, Table, Tune};
use super::{Plan, PlanInfo, Variant};
use crate::error::{Error, Result};
use tract_core::internal::*;

impl Plan {
    /// Makes a runnable plan from a translated (decluttered, inputs pinned) model, ONNX or
    /// archive alike: widens f16 to f32 if `f16` says so, optimizes for the CPU at hand, folds
    /// the constant chains tract leaves (`fold_int8_sums`, see [`crate::passes::fold`]).
    pub(crate) fn from_translated(
        mut model: TypedModel,
        info: PlanInfo,
        opts: &LoadOptions,
        fold_int8_sums: bool,
    ) -> Result<Plan> {
        let tokenizer = super::tokenizer_file::read_property(&model)?;
        let parameters = model
            .nodes()
            .iter()
            .filter_map(|n| n.op_as::<tract_core::ops::konst::Const>())
            .map(|c| c.val().len())
            .filter(|n| *n > 1)
            .sum();
        prepare(&mut model, opts)?;
        // The matmul kernels: measured now, or read from the archive or the cache, or tract's.
        let lengths = tuning::lengths_for(info.seq, info.fixed_length);
        let tuned = match opts.tune {
            Tune::Measure => Some(tuning::measure(&model, &lengths, fold_int8_sums)?),
            _ => None,
        };
        let recorded = super::archive::string_property(&model, tuning::RECORD_KEY);
        let table = Table::new(&opts.tune, recorded.as_deref(), tuned.as_ref(), &lengths);
        let (done, kernels) = table.apply(|| optimize(&mut model, fold_int8_sums));
        done.map_err(Error::Engine)?;
        if let Tune::Force(k) = &opts.tune {
            check_forced(k, &kernels)?;
        }
        // The counts were checked (`LoadOptions::check`) before translating or reading.
        let mut plan = Plan::from_optimized(model, info)?;
        plan.tokenizer = tokenizer;
        plan.parameters = parameters;
        plan.kernels = kernels;
        plan.tuning = tuned;
        // int8: every call at its exact length. Dynamic quantization takes each tensor's range
        // over all the positions it is given, so a padded position would change the answer
        // (docs/reference/design.md "int8 and padding"); the granule is a speed knob for f32/f16.
        plan.granule = match plan.info.variant {
            Variant::Int8 => 1,
            _ => opts.granule_or_default(),
        };
        plan.threads = opts.threads.unwrap_or(1);
        Ok(plan)
    }
}

/// Measures the kernels of a translated model as [`Plan::from_translated`] would (same f16
/// widening, decluttered), for `bert-edge compile --tune` to record in the archive.
pub(crate) fn measure_translated(
    model: &TypedModel,
    info: &PlanInfo,
    opts: &LoadOptions,
    fold: bool,
) -> Result<tuning::Tuning> {
    let mut model = model.clone();
    prepare(&mut model, opts)?;
    let lengths = tuning::lengths_for(info.seq, info.fixed_length);
    tuning::measure(&model, &lengths, fold)
}

/// What optimization starts from: f16 widened to f32 if `opts` says so, decluttered.
fn prepare(model: &mut TypedModel, opts: &LoadOptions) -> Result<()> {
    if opts.f16_compute.widens() {
        crate::passes::widen_f16::widen_to_f32(model).map_err(Error::Engine)?;
    }
    model.declutter().map_err(Error::Engine)
}

/// `into_optimized()` of a decluttered model, with the int8 column-sum fold as the codegen's
/// first pass and its general walk after (`fold`, see [`crate::passes::fold`]).
pub(crate) fn optimize(model: &mut TypedModel, fold: bool) -> TractResult<()> {
    use crate::passes::fold as f;
    let mut codegen = tract_core::optim::Optimizer::codegen();
    if fold {
        codegen.add_pass(0, Box::<f::FoldPass>::default());
    }
    model.optimize_with_session(&mut codegen.session())?;
    if fold {
        f::apply(model)?;
    }
    Ok(())
}

/// A forced kernel must have run at least one matmul: never a silent fallback to the rules.
fn check_forced(kernel: &str, kernels: &[tuning::KernelChoice]) -> Result<()> {
    if kernels.iter().any(|k| k.kernel == kernel) {
        return Ok(());
    }
    let mut all: Vec<&str> = kernels
        .iter()
        .flat_map(|k| k.candidates.iter().map(String::as_str))
        .collect();
    all.sort_unstable();
    all.dedup();
    Err(Error::BadOptions(format!(
        "kernel {kernel} can run none of this plan's matmuls on this CPU; the candidates are: {}",
        all.join(", ")
    )))
}
