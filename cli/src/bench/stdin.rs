//! `--stdin`: one call per command line, for drivers that interleave engines (the protocol is
//! in the module docs of `bench`).

use super::{bench_inputs, cpu_model, tract_isa};
use crate::alloc_count::peak_rss_bytes;
use bert_edge::{Encoder, Error, Inputs, Outputs, Plan};
use std::io::{BufRead, Write};
use std::time::Instant;

/// `--stdin`: one call per command line, for drivers that interleave engines.
pub(super) fn serve_stdin(
    plan: &Plan,
    enc: &mut Encoder,
    out: &mut Outputs,
    (load_s, first_s): (f64, f64),
    threads: usize,
) -> Result<(), Error> {
    let info = plan.info();
    let (isa, kernels) = tract_isa(plan);
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let ready = serde_json::json!({
        "ready": true, "flavour": info.flavour.to_string(), "variant": info.variant.to_string(),
        "batch": info.batch, "seq": info.seq, "fixed_length": info.fixed_length,
        "hidden": info.hidden, "threads": threads, "load_s": load_s, "first_run_s": first_s, "inputs": "bert-edge bench v1",
        "peak_rss_mb": peak_rss_bytes().unwrap_or(0) as f64 / 1e6,
        "cpu": cpu_model(), "isa": isa, "kernels": kernels,
    });
    writeln!(w, "{ready}").and_then(|_| w.flush()).map_err(io)?;
    // Inputs by real length (N for a bare `run`), made on first use.
    let mut by_len: Vec<(usize, Inputs)> = vec![(info.seq, bench_inputs(plan, info.seq))];
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::Io {
            path: "stdin".into(),
            source: e,
        })?;
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("run");
        let len = match words.next().map(str::parse::<usize>) {
            None => Ok(info.seq),
            Some(Ok(l)) if (2..=info.seq).contains(&l) => Ok(l),
            Some(_) => Err(format!("length must be 2..={}", info.seq)),
        };
        let len = match len {
            Ok(l) => l,
            Err(e) => {
                writeln!(w, "{}", serde_json::json!({ "error": e })).map_err(io)?;
                w.flush().map_err(io)?;
                continue;
            }
        };
        if !by_len.iter().any(|(l, _)| *l == len) {
            by_len.push((len, bench_inputs(plan, len)));
        }
        let inputs = &by_len
            .iter()
            .find(|(l, _)| *l == len)
            .expect("just added")
            .1;
        if !answer(cmd, enc, inputs, out, &mut w)? {
            break;
        }
        w.flush().map_err(io)?;
    }
    Ok(())
}

/// Runs one command on `inputs` and writes its answer line; `false` for `quit`.
fn answer(
    cmd: &str,
    enc: &mut Encoder,
    inputs: &Inputs,
    out: &mut Outputs,
    w: &mut impl Write,
) -> Result<bool, Error> {
    match cmd {
        "run" => {
            let t = Instant::now();
            enc.run(inputs.as_input(), out)?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            writeln!(w, "{ms:.6}").map_err(io)?;
        }
        "dump" => {
            enc.run(inputs.as_input(), out)?;
            // Every output by the graph's name, in the graph's order.
            let outputs: serde_json::Map<String, serde_json::Value> = out
                .iter()
                .map(|(spec, v)| (spec.name.clone(), serde_json::json!(v)))
                .collect();
            let j = serde_json::json!({ "outputs": outputs });
            writeln!(w, "{j}").map_err(io)?;
        }
        "quit" => return Ok(false),
        other => {
            let j = serde_json::json!({"error": format!("unknown command {other:?}")});
            writeln!(w, "{j}").map_err(io)?;
        }
    }
    Ok(true)
}

/// A failed write to stdout.
fn io(e: std::io::Error) -> Error {
    Error::Io {
        path: "stdout".into(),
        source: e,
    }
}
