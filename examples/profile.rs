//! Per-op time profile of one plan: where a call spends its time.
//!
//!     cargo run --release --example profile -- models/base/bert_ids_int8.onnx 32
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tract_core::internal::*;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("models/tiny/bert_ids_int8.onnx");
    let seq: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let plan = bert_edge::load_model(path, Some(seq), None, None)?;
    let model = plan.model().clone();
    let runnable = model.clone().into_runnable()?;
    let mut state = runnable.spawn()?;
    let inputs: TVec<TValue> = model
        .inputs
        .iter()
        .enumerate()
        .map(|(ix, _)| {
            let f = model.input_fact(ix).unwrap();
            let mut t = Tensor::zero_dt(f.datum_type, f.shape.as_concrete().unwrap()).unwrap();
            if f.datum_type == i64::datum_type() {
                // ids 101.., mask 1, types 0: ones are valid for all three
                t.try_as_plain_ram_mut()
                    .unwrap()
                    .as_slice_mut::<i64>()
                    .unwrap()
                    .fill(1);
            }
            t.into_tvalue()
        })
        .collect();
    if std::env::var("SHOW_KERNELS").is_ok() {
        for n in model
            .nodes()
            .iter()
            .filter(|n| n.op.name() == "OptMatMul")
            .take(4)
        {
            println!("{}: {:?}", n.name, n.op.info()?);
        }
    }
    let mut times: HashMap<String, (Duration, usize)> = HashMap::new();
    for round in 0..3 {
        state.run_plan_with_eval(inputs.clone(), |ctx, op_state, node, input| {
            let t = Instant::now();
            let r = tract_core::plan::eval(ctx, op_state, node, input);
            if round > 0 {
                let e = times.entry(node.op.name().to_string()).or_default();
                e.0 += t.elapsed();
                e.1 += 1;
            }
            r
        })?;
    }
    let mut v: Vec<_> = times.into_iter().collect();
    v.sort_by(|a, b| b.1 .0.cmp(&a.1 .0));
    let total: Duration = v.iter().map(|x| x.1 .0).sum();
    println!(
        "{path} seq {seq}: {:.1} ms per call",
        total.as_secs_f64() * 1e3 / 2.0
    );
    for (op, (d, n)) in v.iter().take(12) {
        println!(
            "{:>9.2} ms {:>5.1}%  {:>4}×  {op}",
            d.as_secs_f64() * 1e3 / 2.0,
            100.0 * d.as_secs_f64() / total.as_secs_f64(),
            n / 2
        );
    }
    Ok(())
}
