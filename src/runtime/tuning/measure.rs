//! The measurement: each matmul of a plan alone, once per candidate kernel.
//!
//! For every `EinSum` node of the decluttered model, a model of that node alone (its constant
//! inputs, the weights, as constants; the others as inputs of the same facts) is optimized as a
//! plan is (so the weights are packed for the kernel, and the activations are packed per call
//! as in the plan), first by tract's rules, which says whether it is a matmul, its geometry and
//! its candidates; then once per candidate with that kernel forced, and run on the same random
//! operands at each length. A candidate's time is the median of its calls at a length, summed
//! over the lengths. One node per geometry is measured.

use super::Measurement;
use tract_core::internal::*;
use tract_core::ops::einsum::kernel_selection::choice;
use tract_core::ops::einsum::EinSum;

/// Calls timed per candidate and length: at least `MIN_CALLS`, and more until `BUDGET`
/// seconds went by, at most `MAX_CALLS`.
const MIN_CALLS: usize = 3;
const MAX_CALLS: usize = 15;
const BUDGET: f64 = 0.03;

/// Every geometry of `model`'s matmuls, measured at `lengths` (of the symbol `S`). A matmul
/// that cannot be measured alone (its operands cannot be made up) is left to tract's rules.
pub(super) fn all(
    model: &TypedModel,
    lengths: &[usize],
    fold: bool,
) -> TractResult<Vec<Measurement>> {
    let mut out: Vec<Measurement> = vec![];
    // Nodes of the same op on operands of the same types and shapes (a layer's Q, K and V, every
    // layer alike) are one geometry: each is probed once, not once a node.
    let mut probed: Vec<String> = vec![];
    for node in model.nodes() {
        if !node.op_is::<EinSum>() {
            continue;
        }
        let facts = model.node_input_facts(node.id)?;
        let operands: Vec<_> = facts
            .iter()
            .map(|f| (f.datum_type, &f.shape, f.konst.is_some()))
            .collect();
        let key = format!("{:?} {operands:?}", node.op);
        if probed.contains(&key) {
            continue;
        }
        probed.push(key);
        let Ok(alone) = extract(model, node) else {
            continue;
        };
        let (probe, seen) =
            choice::with_choices(Box::new(|_, _| None), || optimized(alone.clone(), fold));
        let ([first], Ok(_)) = (&seen[..], probe) else {
            continue;
        };
        if out.iter().any(|m| m.geometry == first.geometry) {
            continue;
        }
        if let Ok(m) = geometry(&alone, first, lengths, fold) {
            out.push(m);
        }
    }
    Ok(out)
}

/// One geometry: every candidate timed (tract's own choice first, so that a good time is known
/// early), a candidate already over [`CUT`] × the best total after its longest length is cut
/// there; the others are checked against tract's portable kernel.
fn geometry(
    alone: &TypedModel,
    first: &choice::Choice,
    lengths: &[usize],
    fold: bool,
) -> TractResult<Measurement> {
    let (operands, uses_s) = operands(alone, lengths)?;
    // The reference: tract's portable kernel (plain Rust, in the operands' own type).
    let generic = first.candidates.iter().find(|k| k.starts_with("generic"));
    let reference = outputs(forced_plan(alone, generic.cloned(), fold)?, &operands)?;
    let mut order: Vec<&String> = first.candidates.iter().collect();
    order.sort_by_key(|k| **k != first.kernel);
    let (mut seconds, mut inexact, mut cut) = (vec![], vec![], vec![]);
    for kernel in order {
        let Ok(plan) = forced_plan(alone, Some(kernel.clone()), fold) else {
            inexact.push((kernel.clone(), f64::NAN));
            continue;
        };
        let best = seconds.iter().map(|s: &(String, f64)| s.1).reduce(f64::min);
        let Ok((t, complete)) = time(plan.clone(), &operands, best) else {
            inexact.push((kernel.clone(), f64::NAN));
            continue;
        };
        if !complete {
            cut.push((kernel.clone(), t));
            continue;
        }
        // NaN (a failure or a non-finite output) is never within the tolerance.
        let got = outputs(plan, &operands);
        let error = got.map_or(f64::NAN, |got| relative_error(&reference, &got));
        match error <= TOLERANCE {
            true => seconds.push((kernel.clone(), t)),
            false => inexact.push((kernel.clone(), error)),
        }
    }
    seconds.sort_by(|a, b| a.1.total_cmp(&b.1));
    cut.sort_by(|a, b| a.1.total_cmp(&b.1));
    Ok(Measurement {
        geometry: first.geometry.clone(),
        lengths: if uses_s { lengths.to_vec() } else { vec![] },
        seconds,
        inexact,
        cut,
    })
}

/// A candidate whose time at its longest length alone is over this many times the best total
/// is not timed further (it cannot win; on a slow board this is most of a measurement's time).
const CUT: f64 = 2.0;

/// The largest difference a candidate may have from tract's portable kernel, relative to the
/// largest output magnitude: kernels differ by summation order (~1e-6 here); a kernel that
/// rounds its operands (AMX's f32 kernel computes in bf16: ~4e-3) is not a candidate.
const TOLERANCE: f64 = 1e-4;

/// The node optimized with `kernel` (tract's rules for `None`).
fn forced_plan(
    alone: &TypedModel,
    kernel: Option<String>,
    fold: bool,
) -> TractResult<Arc<TypedRunnableModel>> {
    let force: choice::Force = Box::new(move |_, _| kernel.clone());
    choice::with_choices(force, || optimized(alone.clone(), fold)).0
}

/// The outputs at every operand set, as f64.
fn outputs(plan: Arc<TypedRunnableModel>, sets: &[TVec<TValue>]) -> TractResult<Vec<f64>> {
    let mut state = TypedSimpleState::new(&plan)?;
    let mut all = vec![];
    for set in sets {
        for t in state.run(set.clone())? {
            let t = t.cast_to::<f64>()?;
            all.extend_from_slice(t.try_as_plain_ram()?.as_slice::<f64>()?);
        }
    }
    Ok(all)
}

/// max |a − b| / max(1, max |a|); NaN (never within a tolerance) if anything is not finite or
/// the lengths differ.
fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|x| !x.is_finite()) {
        return f64::NAN;
    }
    let scale = a.iter().fold(1f64, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// `node` alone: constant inputs as constants, the others as model inputs of the same facts.
fn extract(model: &TypedModel, node: &TypedNode) -> TractResult<TypedModel> {
    let mut alone = TypedModel {
        symbols: model.symbols.clone(),
        ..TypedModel::default()
    };
    let mut wires = tvec![];
    for (ix, fact) in model.node_input_facts(node.id)?.into_iter().enumerate() {
        let name = format!("{}.input{ix}", node.name);
        wires.push(match &fact.konst {
            Some(k) => alone.add_const(name, k.clone())?,
            None => alone.add_source(name, fact.datum_type.fact(fact.shape.clone()))?,
        });
    }
    let out = alone.wire_node(&node.name, node.op.clone(), &wires)?;
    alone.select_output_outlets(&out)?;
    Ok(alone)
}

/// Optimized as a plan is (crate::runtime::optimize), runnable.
fn optimized(mut model: TypedModel, fold: bool) -> TractResult<Arc<TypedRunnableModel>> {
    crate::runtime::optimize::optimize(&mut model, fold)?;
    model.into_runnable()
}

/// The sequence symbol `S`, if the model has it.
fn symbol(model: &TypedModel) -> Option<Symbol> {
    model.symbols.get("S")
}

/// Random operands for `model`'s inputs, one set per length (one set if no input has `S`), and
/// whether an input has `S`.
fn operands(model: &TypedModel, lengths: &[usize]) -> TractResult<(Vec<TVec<TValue>>, bool)> {
    let s = symbol(model);
    let uses_s = |f: &TypedFact| {
        s.as_ref()
            .is_some_and(|s| f.shape.iter().any(|d| d.symbols().contains(s)))
    };
    let facts: Vec<TypedFact> = (0..model.inputs.len())
        .map(|ix| model.input_fact(ix).cloned())
        .collect::<TractResult<_>>()?;
    let has_s = facts.iter().any(uses_s) && !lengths.is_empty();
    let lengths: Vec<usize> = if has_s { lengths.to_vec() } else { vec![0] };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut sets = vec![];
    for &l in &lengths {
        let mut at = SymbolValues::default();
        if let Some(s) = &s {
            at.set(s, l as i64);
        }
        let mut set = tvec![];
        for f in &facts {
            let shape = f.shape.eval_to_usize(&at)?;
            set.push(random(f.datum_type, &shape, &mut seed)?.into_tvalue());
        }
        sets.push(set);
    }
    Ok((sets, has_s))
}

/// A tensor of `dt` and `shape` with pseudo-random values: within ±1 for floats (a positive
/// scalar: a scale), small for integers (a zero point of 0 for a scalar).
fn random(dt: DatumType, shape: &[usize], seed: &mut u64) -> TractResult<Tensor> {
    let n: usize = shape.iter().product();
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let scalar = n == 1;
    if dt.is_float() {
        let v: Vec<f32> = (0..n).map(|_| if scalar { 0.05 } else { next() }).collect();
        Ok(Tensor::from_shape(shape, &v)?.cast_to_dt(dt)?.into_owned())
    } else if dt.is_integer() && !dt.is_quantized() && !scalar {
        let v: Vec<i32> = (0..n).map(|_| (next() * 100.0) as i32).collect();
        Ok(Tensor::from_shape(shape, &v)?.cast_to_dt(dt)?.into_owned())
    } else {
        Tensor::zero_dt(dt, shape)
    }
}

/// Seconds: the median call at each operand set, summed, longest set first; and whether every
/// set was timed (false: cut once the sum went over [`CUT`] × `best`).
fn time(
    plan: Arc<TypedRunnableModel>,
    sets: &[TVec<TValue>],
    best: Option<f64>,
) -> TractResult<(f64, bool)> {
    let mut state = TypedSimpleState::new(&plan)?;
    let mut total = 0.0;
    for set in sets.iter().rev() {
        if best.is_some_and(|b| total > CUT * b) {
            return Ok((total, false));
        }
        state.run(set.clone())?;
        let mut calls: Vec<f64> = vec![];
        let t0 = std::time::Instant::now();
        while calls.len() < MIN_CALLS
            || (calls.len() < MAX_CALLS && t0.elapsed().as_secs_f64() < BUDGET)
        {
            let t = std::time::Instant::now();
            state.run(set.clone())?;
            calls.push(t.elapsed().as_secs_f64());
        }
        calls.sort_by(f64::total_cmp);
        total += calls[calls.len() / 2];
    }
    Ok((total, true))
}
