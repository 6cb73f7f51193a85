//! A translated model (ONNX or archive alike) → an optimized runnable [`Plan`].

use super::options::LoadOptions;
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
        let f16 = opts.f16_compute;
        use crate::passes::{fold, widen_f16};
        let tokenizer = super::tokenizer_file::read_property(&model)?;
        let parameters = model
            .nodes()
            .iter()
            .filter_map(|n| n.op_as::<tract_core::ops::konst::Const>())
            .map(|c| c.val().len())
            .filter(|n| *n > 1)
            .sum();
        if f16.widens() {
            widen_f16::widen_to_f32(&mut model).map_err(Error::Engine)?;
        }
        // = `into_optimized()`, with the int8 column-sum fold as the codegen's first pass.
        model.declutter().map_err(Error::Engine)?;
        let mut codegen = tract_core::optim::Optimizer::codegen();
        if fold_int8_sums {
            codegen.add_pass(0, Box::<fold::FoldPass>::default());
        }
        model
            .optimize_with_session(&mut codegen.session())
            .map_err(Error::Engine)?;
        if fold_int8_sums {
            fold::apply(&mut model).map_err(Error::Engine)?;
        }
        // The counts were checked (`LoadOptions::check`) before translating or reading.
        let mut plan = Plan::from_optimized(model, info)?;
        plan.tokenizer = tokenizer;
        plan.parameters = parameters;
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
