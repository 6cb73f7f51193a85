//! `bert-edge info`: a plan described in plain lines.

use crate::ModelArgs;
use bert_edge::{Error, Plan};

/// `bert-edge info`: what the plan is, its inputs and outputs, and what the model's files add.
pub(crate) fn info(m: &ModelArgs) -> Result<(), Error> {
    let plan = m.load()?;
    println!("file:        {}", m.model.display());
    shape(&plan);
    io(&plan)?;
    extras(&plan);
    println!("optimized plan ops:");
    for (op, n) in plan.op_histogram() {
        println!("  {n:>5}  {op}");
    }
    Ok(())
}

/// Flavour, variant, sizes, length policy, task and labels.
fn shape(plan: &Plan) {
    let i = plan.info();
    println!("flavour:     {}", i.flavour);
    println!("variant:     {}", i.variant);
    println!("batch, seq:  {}, {}", i.batch, i.seq);
    println!(
        "length:      {}",
        if i.fixed_length {
            format!("fixed: every call computes {} positions", i.seq)
        } else {
            format!(
                "any up to {}: a call runs at its longest real row (e.g. 6 tokens -> {})",
                i.seq,
                plan.run_length(6)
            )
        }
    );
    println!("hidden:      {}", i.hidden);
    match i.vocab_size {
        Some(v) => println!("vocab:       {v}"),
        None => println!("vocab:       (embeds graph: no word-embedding table)"),
    }
    println!("type vocab:  {}", i.type_vocab_size);
    println!("task:        {}", i.task);
    if !i.labels.is_empty() {
        println!(
            "labels:      {}{}",
            i.labels.join(", "),
            if i.multi_label {
                " (multi-label: sigmoid scores)"
            } else {
                ""
            }
        );
    }
}

/// The graph's inputs and outputs, and its parameter count.
fn io(plan: &Plan) -> Result<(), Error> {
    let i = plan.info();
    let model = bert_edge::unstable::model(plan);
    for (ix, o) in model.inputs.iter().enumerate() {
        let f = model.input_fact(ix).map_err(Error::Engine)?;
        println!("input  {ix}:    {} {f:?}", model.node(o.node).name);
    }
    for (ix, o) in i.outputs.iter().enumerate() {
        let role = o.role.map_or("(no role)".to_string(), |r| r.to_string());
        println!("output {ix}:    {} {:?} {role}", o.name, o.shape);
    }
    println!("parameters:  {}", plan.parameter_count());
    for k in plan.kernels() {
        println!(
            "matmul:      {} x{}: {} ({})",
            k.geometry, k.nodes, k.kernel, k.chosen_by
        );
    }
    Ok(())
}

/// The tokenizer, the embedding the model's files choose, and its prompts.
fn extras(plan: &Plan) {
    let i = plan.info();
    println!(
        "tokenizer:   {}",
        plan.tokenizer()
            .map_or("(none: give --tokenizer FILE)", |t| t.0)
    );
    match bert_edge::heads::Embedding::resolve(i, None, None) {
        Ok(Some(e)) => println!("embedding:   {}", e.why),
        Ok(None) => {}
        Err(e) => println!("embedding:   {e}"),
    }
    if let Some(st) = &i.sentence {
        for (name, text) in &st.prompts {
            let default = st.default_prompt_name.as_deref() == Some(name.as_str());
            println!(
                "prompt:      {name}{}: {text:?}",
                if default { " (default)" } else { "" }
            );
        }
    }
}
