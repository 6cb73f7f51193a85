//! `--profile`: per-node wall time over `--reps` calls, summed by op kind, by matmul
//! geometry, and the heaviest nodes; through tract's `run_plan_with_eval`, on a second
//! state over the same optimized model.

use super::{bench_inputs, cpu_model, tract_isa, Options};
use bert_edge::unstable::{self, tract_core};
use bert_edge::{Error, Inputs, Plan};
use std::time::Instant;
use tract_core::internal::*;

/// `--profile`: wall time per node over `reps` calls, summed by op kind, by matmul
/// geometry, and the heaviest nodes.
pub(super) fn profile(plan: &Plan, o: &Options, threads: usize) -> Result<(), Error> {
    let info = plan.info();
    // A plan of any length runs at the first of --lengths (rounded to the granule), else N.
    let real = o.lengths.first().copied().unwrap_or(info.seq).min(info.seq);
    let l = plan.run_length(real);
    let inputs = bench_inputs(plan, real);
    let model = unstable::model(plan).clone();
    let splan = SimplePlan::new(model).map_err(Error::Engine)?;
    let (per_node, total) = time_nodes(&splan, plan, &inputs, l, o.reps)?;
    let reps = o.reps as f64;
    let nodes_sum: f64 = per_node.iter().sum();
    println!(
        "profile: {} {} seq {} (run at {l}) threads {}, {} reps, {:.2} ms/call wall, {:.2} ms/call in nodes",
        info.flavour,
        info.variant,
        info.seq,
        threads,
        o.reps,
        total / reps * 1e3,
        nodes_sum / reps * 1e3
    );
    let (isa, kernels) = tract_isa(plan);
    println!(
        "cpu {}; tract isa {isa}; kernels {}",
        cpu_model(),
        kernels.join(", ")
    );
    let model = splan.model();
    print_by_op(model, &per_node, reps);
    print_by_geometry(model, &per_node, reps, l);
    print_heaviest(model, &per_node, reps);
    Ok(())
}

/// The model inputs as tensors of the first `l` positions of each row, in the model's input
/// order (for `--profile`).
fn tensors(plan: &Plan, inputs: &Inputs, l: usize) -> Result<TVec<TValue>, Error> {
    let model = unstable::model(plan);
    let info = plan.info();
    let (b, n, h) = (info.batch, info.seq, info.hidden);
    let cut = |v: &[i64]| -> Vec<i64> { v.chunks(n).flat_map(|r| r[..l].to_vec()).collect() };
    let mut v = tvec![];
    for (ix, o) in model.inputs.iter().enumerate() {
        let fact = model.input_fact(ix).map_err(Error::Engine)?;
        let t = match model.node(o.node).name.as_str() {
            "attention_mask" => Tensor::from_shape(&[b, l], &cut(&inputs.attention_mask)),
            "token_type_ids" => Tensor::from_shape(&[b, l], &cut(&inputs.token_type_ids)),
            "input_ids" => Tensor::from_shape(&[b, l], &cut(&inputs.input_ids)),
            _ => {
                let e: Vec<f32> = inputs
                    .inputs_embeds
                    .chunks(n * h)
                    .flat_map(|r| r[..l * h].to_vec())
                    .collect();
                Tensor::from_shape(&[b, l, h], &e)
            }
        }
        .and_then(|t| Ok(t.cast_to_dt(fact.datum_type)?.into_owned()))
        .map_err(Error::Engine)?;
        v.push(t.into_tvalue());
    }
    Ok(v)
}

/// Seconds per node summed over `reps` calls (after one warm-up call), and the wall total.
fn time_nodes(
    splan: &Arc<TypedSimplePlan>,
    plan: &Plan,
    inputs: &Inputs,
    l: usize,
    reps: usize,
) -> Result<(Vec<f64>, f64), Error> {
    let mut state = splan.spawn().map_err(Error::Engine)?;
    let n = splan.model().nodes().len();
    let mut per_node = vec![0f64; n];
    let mut total = 0f64;
    for rep in 0..reps + 1 {
        let tv = tensors(plan, inputs, l)?;
        let mut times = vec![0f64; n];
        let t0 = Instant::now();
        state
            .run_plan_with_eval(tv, |ctx, st, node, inp| {
                let t = Instant::now();
                let r = tract_core::plan::eval(ctx, st, node, inp);
                times[node.id] += t.elapsed().as_secs_f64();
                r
            })
            .map_err(Error::Engine)?;
        if rep > 0 {
            // The first run of this second state is a warm-up.
            total += t0.elapsed().as_secs_f64();
            per_node.iter_mut().zip(&times).for_each(|(a, t)| *a += t);
        }
    }
    Ok((per_node, total))
}

fn print_by_op(model: &TypedModel, per_node: &[f64], reps: f64) {
    let nodes_sum: f64 = per_node.iter().sum();
    let mut by_op: HashMap<String, (f64, usize)> = HashMap::new();
    for node in model.nodes() {
        let e = by_op.entry(node.op.name().to_string()).or_default();
        e.0 += per_node[node.id];
        e.1 += 1;
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    println!("{:>10} {:>6} {:>6}  op", "ms/call", "%", "nodes");
    for (op, (t, count)) in &ops {
        if *t / reps * 1e3 < 0.005 {
            continue;
        }
        println!(
            "{:>10.3} {:>6.1} {:>6}  {op}",
            t / reps * 1e3,
            100.0 * t / nodes_sum,
            count
        );
    }
}

/// An optimized matmul's geometry and kernels ("m:768 k:3072 n:128 [fma_mmm_f32_16x6]") and
/// its multiply-adds per call (k × every output element, batched products included). In a
/// plan of any length the sequence symbol `S` is taken at `n_max` (what `--profile` runs).
fn matmul_geometry(model: &TypedModel, node: &TypedNode, n_max: usize) -> Option<(String, f64)> {
    use tract_core::ops::matmul::optimized::OptMatMul;
    let op = node.op_as::<OptMatMul>()?;
    let k = op.guess_k()?;
    let kernels: Vec<&str> = op.mmm.iter().map(|m| m.name()).collect();
    let label = format!("m:{} k:{k} n:{} {kernels:?}", op.m(), op.n());
    let mut at = SymbolValues::default();
    if let Some(s) = model.symbols.get("S") {
        at.set(&s, n_max as i64);
    }
    let outputs = model.outlet_fact(OutletId::new(node.id, 0)).ok()?;
    let outputs = outputs
        .shape
        .eval_to_usize(&at)
        .ok()?
        .iter()
        .product::<usize>() as f64;
    Some((label, k.to_i64().ok()? as f64 * outputs))
}

fn print_by_geometry(model: &TypedModel, per_node: &[f64], reps: f64, n_max: usize) {
    let nodes_sum: f64 = per_node.iter().sum();
    let mut by_geometry: Vec<(String, f64, usize, f64)> = Vec::new(); // label, s, nodes, MACs
    for node in model.nodes() {
        let Some((label, macs)) = matmul_geometry(model, node, n_max) else {
            continue;
        };
        match by_geometry.iter_mut().find(|g| g.0 == label) {
            Some(g) => {
                g.1 += per_node[node.id];
                g.2 += 1;
            }
            None => by_geometry.push((label, per_node[node.id], 1, macs)),
        }
    }
    if by_geometry.is_empty() {
        return;
    }
    by_geometry.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("matmuls by geometry (GMAC/s = multiply-adds per second inside the op):");
    println!(
        "{:>10} {:>6} {:>6} {:>8}  geometry",
        "ms/call", "%", "nodes", "GMAC/s"
    );
    for (label, t, count, macs) in &by_geometry {
        println!(
            "{:>10.3} {:>6.1} {:>6} {:>8.1}  {label}",
            t / reps * 1e3,
            100.0 * t / nodes_sum,
            count,
            macs * *count as f64 * reps / t / 1e9
        );
    }
}

fn print_heaviest(model: &TypedModel, per_node: &[f64], reps: f64) {
    let nodes_sum: f64 = per_node.iter().sum();
    let mut heavy: Vec<usize> = (0..per_node.len()).collect();
    heavy.sort_by(|a, b| per_node[*b].total_cmp(&per_node[*a]));
    println!("heaviest nodes:");
    for &id in heavy.iter().take(25) {
        let node = model.node(id);
        let fact = model
            .outlet_fact(OutletId::new(id, 0))
            .map(|f| format!("{f:?}"))
            .unwrap_or_default();
        println!(
            "{:>10.3} {:>6.1}  #{id} {} ({}) -> {fact}",
            per_node[id] / reps * 1e3,
            100.0 * per_node[id] / nodes_sum,
            node.name,
            node.op.name()
        );
        // The op's own description (kernel choice, geometry), first lines only.
        for line in node.op.info().unwrap_or_default().iter().take(4) {
            let line: String = line.chars().take(160).collect();
            println!("{:>18}{line}", "");
        }
    }
}
