//! Pass (applied to every optimized plan, ONNX or archive): fold constant chains whose
//! *intermediate* is large but whose result is small.
//!
//! Why: onnxruntime's dynamic int8 export feeds each `MatMulInteger` weight through a chain
//! that tract lowers to `Cast(i8 → i32)` + `Reduce<Sum>` (the weights' column sums, for the
//! zero-point correction). tract's own constant propagation refuses the first step because
//! the i32 copy is 4× the weight (over its folding budget), so for the big FFN matmuls the
//! sums were recomputed on every call: ~240 ms and ~46k allocations per call on the base
//! model. How: start where tract stops, and walk the single-successor chain evaluating it
//! until the value is no bigger than the constants it came from, then replace that node by
//! the constant. Only the chain's final value is kept; the large intermediate is dropped.
//! tract creates these chains while *optimizing* (`…b_as_i32` Cast + column-sum Reduce for
//! each quantized EinSum), so the column sums are folded by a pass inside tract's codegen
//! session (`FoldPass`) and the general walk runs once on the optimized model: on the base
//! int8 plan it took a call from ~30 s (85 M weights cast to i32 every call) to the figures
//! in docs/journal/ (performance).

use tract_core::internal::*;
use tract_core::ops::dummy::Dummy;
use tract_core::ops::konst::Const;
use tract_core::ops::source::TypedSource;

fn mem(values: &[TValue]) -> u64 {
    values
        .iter()
        .map(|t| (t.datum_type().size_of() * t.volume()) as u64)
        .sum()
}

/// Every foldable chain: (last node of the chain, its value), one per last node. With
/// `sums_only`, just the int8 column sums (cheap to find and to compute, safe to look for in
/// the middle of tract's passes).
fn find_chains(model: &TypedModel, sums_only: bool) -> TractResult<Vec<(usize, TVec<TValue>)>> {
    let mut found: Vec<(usize, TVec<TValue>)> = vec![];
    for &id in &model.eval_order()? {
        let node = model.node(id);
        if node.op_is::<Const>() || node.op_is::<TypedSource>() || node.op_is::<Dummy>() {
            continue;
        }
        let facts = model.node_input_facts(id)?;
        if facts.is_empty() || !facts.iter().all(|f| f.konst.is_some()) {
            continue;
        }
        // The int8 column sums: Cast(i8 → i32) then Reduce<Sum>, summed straight from the
        // i8 weight (no 4× i32 copy), whatever their size: under tract's budget its PropConst
        // would fold them too, through the i32 copy (~0.1 s of an int8 base load).
        let hit = if let Some((succ, sums)) = i8_column_sums(model, node, &facts)? {
            Some((succ, tvec![sums.into_tvalue()]))
        } else if sums_only {
            None
        } else {
            walk_chain(model, node, &facts)?
        };
        if let Some((at, value)) = hit {
            if !found.iter().any(|(f, _)| *f == at) {
                found.push((at, value));
            }
        }
    }
    Ok(found)
}

/// From `node` (all inputs constant), whose output is over tract's folding budget: evaluate
/// it and its single successors until the value is back within the budget. The node where
/// that happens and its value, or `None` (within budget from the start, or never back).
fn walk_chain(
    model: &TypedModel,
    node: &TypedNode,
    facts: &[&TypedFact],
) -> TractResult<Option<(usize, TVec<TValue>)>> {
    let size = |f: &TypedFact| f.mem_size().as_i64().unwrap_or(i64::MAX) as u64;
    let budget: u64 = facts
        .iter()
        .map(|f| size(f))
        .sum::<u64>()
        .max(tract_core::optim::CONST_FOLD_MEM_BUDGET);
    // Only worth evaluating where tract gave up: a step whose output is over budget.
    if node.outputs.iter().map(|o| size(&o.fact)).sum::<u64>() <= budget {
        return Ok(None);
    }
    let inputs: TVec<TValue> = facts
        .iter()
        .map(|f| f.konst.clone().unwrap().into_tvalue())
        .collect();
    let Ok(Some(mut res)) = node.op.eval_out_of_plan(inputs) else {
        return Ok(None);
    };
    let mut cur = node;
    while mem(&res) > budget {
        let Some(succ) = model.single_succ(cur.id)? else {
            return Ok(None);
        };
        let Some(r) = eval_successor(model, cur, succ, &res)? else {
            return Ok(None);
        };
        res = r;
        cur = succ;
    }
    Ok((cur.id != node.id).then_some((cur.id, res)))
}

/// `succ` evaluated on `cur`'s value `res` and its other inputs' constants (`None` when one
/// of those is not constant or the op cannot run out of a plan).
fn eval_successor(
    model: &TypedModel,
    cur: &TypedNode,
    succ: &TypedNode,
    res: &TVec<TValue>,
) -> TractResult<Option<TVec<TValue>>> {
    let mut ins: TVec<TValue> = tvec![];
    for (ix, inlet) in succ.inputs.iter().enumerate() {
        if inlet.node == cur.id {
            ins.push(res[inlet.slot].clone());
        } else if let Some(k) = &model.node_input_facts(succ.id)?[ix].konst {
            ins.push(k.clone().into_tvalue());
        } else {
            return Ok(None);
        }
    }
    Ok(succ.op.eval_out_of_plan(ins).ok().flatten())
}

/// `node` = Cast(const i8 → i32) whose single successor is Reduce<Sum>: the successor's id
/// and its value, computed from the i8 data with i32 accumulators (exact: what Cast +
/// Reduce<Sum> give).
fn i8_column_sums(
    model: &TypedModel,
    node: &TypedNode,
    facts: &[&TypedFact],
) -> TractResult<Option<(usize, Tensor)>> {
    use tract_core::ops::cast::Cast;
    use tract_core::ops::nn::{Reduce, Reducer};
    let is_cast = node
        .op_as::<Cast>()
        .is_some_and(|c| c.to == i32::datum_type());
    if !is_cast || facts.len() != 1 || facts[0].datum_type != i8::datum_type() {
        return Ok(None);
    }
    let Some(succ) = model.single_succ(node.id)? else {
        return Ok(None);
    };
    let Some(reduce) = succ.op_as::<Reduce>() else {
        return Ok(None);
    };
    if reduce.reducer != Reducer::Sum || succ.inputs.len() != 1 {
        return Ok(None);
    }
    let weight = facts[0].konst.as_ref().unwrap();
    let view = weight.try_as_plain_ram()?;
    let w = view.to_array_view::<i8>()?;
    // Highest axis first; insert_axis keeps the rank, so the other indices stay valid.
    let mut axes: Vec<usize> = reduce.axes.iter().copied().collect();
    axes.sort_unstable_by(|a, b| b.cmp(a));
    let Some((&first, rest)) = axes.split_first() else {
        return Ok(None);
    };
    let ax = tract_ndarray::Axis;
    let mut acc = w
        .fold_axis(ax(first), 0i32, |a, &x| a + x as i32)
        .insert_axis(ax(first));
    for &axis in rest {
        acc = acc
            .fold_axis(ax(axis), 0i32, |a, &x| a + x)
            .insert_axis(ax(axis));
    }
    let sums = acc.into_tensor();
    let expected = &succ.outputs[0].fact;
    if sums.shape() != expected.shape.as_concrete().unwrap_or(&[]) {
        return Ok(None);
    }
    Ok(Some((succ.id, sums)))
}

/// Folds every such chain of `model` (one patch); returns how many were folded.
pub fn apply(model: &mut TypedModel) -> TractResult<usize> {
    let Some((patch, folded)) = fold_patch(model, false)? else {
        return Ok(0);
    };
    patch.apply(model)?;
    model.compact()?;
    Ok(folded)
}

/// The column-sum fold as an optimizer pass, placed ahead of tract's own constant propagation
/// in the codegen passes (`Plan::from_translated`): the sums are folded as soon as codegen
/// creates them, before tract's PropConst evaluates the small ones through their i32 copy.
/// `apply` then runs once on the optimized model for whatever else is left.
#[derive(Clone, Debug, Default)]
pub struct FoldPass {
    done: bool,
}

impl tract_core::optim::TypedPass for FoldPass {
    fn reset(&mut self) -> TractResult<()> {
        self.done = false;
        Ok(())
    }
    fn next(
        &mut self,
        _session: &mut tract_core::optim::OptimizerSession,
        model: &TypedModel,
    ) -> TractResult<Option<TypedModelPatch>> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(None);
        }
        Ok(fold_patch(model, true)?.map(|(patch, _)| patch))
    }
}

fn fold_patch(
    model: &TypedModel,
    sums_only: bool,
) -> TractResult<Option<(TypedModelPatch, usize)>> {
    let chains = find_chains(model, sums_only)?;
    if chains.is_empty() {
        return Ok(None);
    }
    let mut patch = TypedModelPatch::default();
    for (id, values) in &chains {
        let node = model.node(*id);
        for (ix, v) in values.iter().enumerate() {
            let wire = patch.add_const(
                format!("{}.folded.{ix}", node.name),
                v.clone().into_arc_tensor(),
            )?;
            patch.shunt_outside(model, OutletId::new(*id, ix), wire)?;
        }
    }
    Ok(Some((patch, chains.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_core::ops::cast::cast;
    use tract_core::ops::nn::{Reduce, Reducer};

    /// `x [1, n] + column sums of a constant i8 [k, n] weight`, the sums as the int8 export
    /// leaves them: Cast(i8 → i32) then Reduce<Sum>.
    fn column_sums_model(k: usize, n: usize) -> TractResult<TypedModel> {
        let w: Vec<i8> = (0..k * n)
            .map(|i| ((i * 31 % 255) as i32 - 127) as i8)
            .collect();
        let mut model = TypedModel::default();
        let x = model.add_source("x", i32::fact([1, n]))?;
        let weight = model.add_const("w", Tensor::from_shape(&[k, n], &w)?)?;
        let wide = model.wire_node("cast", cast(i32::datum_type()), &[weight])?[0];
        let sums = model.wire_node("sums", Reduce::new(tvec![0], Reducer::Sum), &[wide])?[0];
        let out = model.wire_node("add", tract_core::ops::math::add(), &[x, sums])?[0];
        model.select_output_outlets(&[out])?;
        Ok(model)
    }

    /// The int8 pattern at base-model size: an i8 weight whose i32 copy is over tract's
    /// folding budget, reduced to its column sums. tract leaves Cast + Reduce to run on every
    /// call; the fix leaves one small constant with the same value.
    #[test]
    fn folds_column_sums_through_a_large_cast() -> TractResult<()> {
        let n = 3072;
        let mut model = column_sums_model(768, n)?.into_decluttered()?;
        let live = |m: &TypedModel| {
            m.nodes()
                .iter()
                .filter(|n| n.op_is::<Reduce>() || n.op.name() == "Cast")
                .count()
        };
        assert_eq!(
            live(&model),
            2,
            "tract alone is expected to keep the chain (budget)"
        );
        let input = tvec![Tensor::zero::<i32>(&[1, n])?.into_tvalue()];
        let before = model.clone().into_runnable()?.run(input.clone())?;
        assert_eq!(apply(&mut model)?, 1);
        assert_eq!(live(&model), 0, "the chain must be folded");
        let after = model.into_runnable()?.run(input)?;
        assert_eq!(before[0], after[0]);
        Ok(())
    }

    /// The same chain, under the budget this time (tract's PropConst would fold it through
    /// the i32 copy): as the codegen session's first pass, `FoldPass` folds it first, straight
    /// from the i8 data, with the same result.
    #[test]
    fn fold_pass_takes_the_sums_inside_codegen() -> TractResult<()> {
        let (k, n) = (64, 48);
        let input = tvec![Tensor::from_shape(&[1, n], &vec![1i32; n])?.into_tvalue()];
        let reference = column_sums_model(k, n)?
            .into_optimized()?
            .into_runnable()?
            .run(input.clone())?;

        let mut model = column_sums_model(k, n)?;
        let mut codegen = tract_core::optim::Optimizer::codegen();
        codegen.add_pass(0, Box::<FoldPass>::default());
        codegen.session().optimize(&mut model)?;
        assert!(
            model.nodes().iter().any(|n| n.name.ends_with(".folded.0")),
            "the sums must be folded by FoldPass, not by tract"
        );
        let ours = model.into_runnable()?.run(input)?;
        assert_eq!(reference[0], ours[0]);
        Ok(())
    }
}
