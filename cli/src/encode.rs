//! `bert-edge encode`: JSON Lines in, one JSON line out per line in (same order).

use crate::{CliError, ModelArgs};
use bert_edge::heads::{Embedding, Pooling};
use bert_edge::tokenize::BertTokenizer;
use bert_edge::{Encoder, Flavour, Inputs, Outputs, Plan};
use serde_json::{json, Map, Value};
use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

pub struct Options {
    hidden_states: bool,
    pooling: Option<Pooling>,
    normalize: Option<bool>,
}

impl Options {
    pub fn parse(args: &mut pico_args::Arguments) -> Result<Self, String> {
        let (on, off) = (
            args.contains("--normalize"),
            args.contains("--no-normalize"),
        );
        if on && off {
            return Err("--normalize and --no-normalize contradict each other".into());
        }
        Ok(Options {
            hidden_states: args.contains("--hidden-states"),
            pooling: crate::opt_parse(args, "--pooling")?,
            normalize: (on || off).then_some(on),
        })
    }
}

/// The sentence embedding a command gives for `plan` (flags first, then the model's own
/// files, then the stated default), announced on stderr with its reason.
pub(crate) fn embedding_for(
    plan: &Plan,
    pooling: Option<Pooling>,
    normalize: Option<bool>,
) -> Result<Option<Embedding>, CliError> {
    let e = Embedding::resolve(plan.info(), pooling, normalize).map_err(CliError::from)?;
    if let Some(e) = &e {
        eprintln!("bert-edge: embedding: {}", e.why);
    }
    let st = plan.info().sentence.as_ref();
    if let Some(max) = st
        .and_then(|s| s.max_seq_length)
        .filter(|m| *m > plan.info().seq)
    {
        eprintln!(
            "bert-edge: note: the model takes texts of up to {max} tokens, this plan cuts them at \
             {} (--seq {max} to match; answers say \"truncated\")",
            plan.info().seq
        );
    }
    Ok(e)
}

/// The plan's tokenizer; `None` (with a note) if it has none, so that token-id lines still work.
fn tokenizer_or_note(plan: &Plan) -> Result<Option<BertTokenizer>, CliError> {
    match plan.tokenizer() {
        None => {
            eprintln!(
                "bert-edge: no tokenizer.json beside the model or one directory up (--tokenizer \
                 FILE): only input_ids / inputs_embeds lines will work"
            );
            Ok(None)
        }
        Some((origin, _)) => {
            eprintln!("bert-edge: tokenizer: {origin}");
            BertTokenizer::for_plan(plan)
                .map(Some)
                .map_err(CliError::from)
        }
    }
}

pub fn run(m: &ModelArgs, opts: &Options) -> Result<ExitCode, CliError> {
    let plan = Arc::new(m.load().map_err(CliError::from)?);
    crate::jsonl::check_batch(&plan)?;
    let embedding = embedding_for(&plan, opts.pooling, opts.normalize)?;
    let tokenizer = tokenizer_or_note(&plan)?;
    let mut encoder = Encoder::new(plan.clone()).map_err(CliError::from)?;
    // Allocated once, reused for every line.
    let (mut inputs, mut outputs) = (plan.inputs(), plan.outputs());
    let mut vector = vec![0f32; plan.info().hidden];
    crate::jsonl::lines("encoded", |line| {
        let tok = tokenizer.as_ref();
        let done = one_line(line, &plan, tok, &mut encoder, &mut inputs, &mut outputs)?;
        let mut reply = render(&plan, &inputs, done.tokens, &outputs, opts.hidden_states);
        reply["truncated"] = json!(done.truncated);
        if let Some(e) = &embedding {
            let (mask, row) = (&inputs.attention_mask, (0, done.prompt_tokens));
            e.pool_into(&outputs, mask, row, e.normalize, &mut vector)
                .map_err(|e| e.to_string())?;
            reply["embedding"] = json!(vector);
        }
        Ok(reply)
    })
}

/// What [`one_line`] ran.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    /// Real tokens (special tokens and any prompt included).
    pub tokens: usize,
    /// The text (or pair) had more tokens than the plan's N and was cut.
    pub truncated: bool,
    /// Positions taken by `[CLS]` and the prompt (0 without a prompt): what a pooling
    /// leaves out when the model's `include_prompt` is false, as sentence-transformers does.
    pub prompt_tokens: usize,
}

/// The prompt a line asks for (`"prompt_name"` from the model's prompts, or a literal
/// `"prompt"`), else the model's default prompt; "" for none.
fn prompt_of<'a>(plan: &'a Plan, obj: &'a Map<String, Value>) -> Result<&'a str, String> {
    let st = plan.info().sentence.as_ref();
    match (obj.get("prompt_name"), obj.get("prompt")) {
        (Some(_), Some(_)) => Err("give \"prompt_name\" or \"prompt\", not both".into()),
        (Some(n), None) => {
            let n = n.as_str().ok_or("\"prompt_name\" must be a string")?;
            let st =
                st.ok_or("this model has no prompts (no config_sentence_transformers.json)")?;
            st.prompt(n).map_err(|e| e.to_string())
        }
        (None, Some(p)) => Ok(p.as_str().ok_or("\"prompt\" must be a string")?),
        (None, None) => match st.and_then(|s| s.default_prompt_name.as_deref()) {
            Some(d) => st.map_or(Ok(""), |s| s.prompt(d).map_err(|e| e.to_string())),
            None => Ok(""),
        },
    }
}

/// Parses one JSON line (text, ids or embeds) into `inputs`, checks and runs it into `out`;
/// what ran, or the error message the line's answer carries. Public for the `encode_line`
/// fuzz target.
pub fn one_line(
    raw: &[u8],
    plan: &Plan,
    tokenizer: Option<&BertTokenizer>,
    encoder: &mut Encoder,
    inputs: &mut Inputs,
    out: &mut Outputs,
) -> Result<Line, String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("line is not valid UTF-8: {e}"))?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
    let obj = value.as_object().ok_or("each line must be a JSON object")?;
    let flavour = plan.info().flavour;
    let real;
    let (mut truncated, mut prompt_tokens) = (false, 0);
    if let Some(t) = obj.get("text") {
        let t = t.as_str().ok_or("\"text\" must be a string")?;
        let pair = match obj.get("text_pair") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.as_str()),
            Some(_) => return Err("\"text_pair\" must be a string".into()),
        };
        let tok = tokenizer.ok_or("no tokenizer loaded (give --tokenizer FILE)")?;
        if flavour == Flavour::Embeds {
            return Err("this is an inputs_embeds model: give \"inputs_embeds\", not text".into());
        }
        let prompt = prompt_of(plan, obj)?;
        let done = if prompt.is_empty() {
            tok.encode_into(t, pair, inputs)
        } else {
            let p = tok.prompt_length(prompt, inputs.len());
            prompt_tokens = p.map_err(|e| e.to_string())?;
            tok.encode_into(&format!("{prompt}{t}"), pair, inputs)
        }
        .map_err(|e| e.to_string())?;
        (real, truncated) = (done.tokens, done.truncated);
    } else if let Some(ids) = obj.get("input_ids") {
        if flavour != Flavour::Ids {
            return Err("this is an inputs_embeds model: \"input_ids\" are not accepted".into());
        }
        real = fill_ints("input_ids", ids, &mut inputs.input_ids)?;
        fill_mask_types(obj, inputs, real)?;
    } else if let Some(rows) = obj.get("inputs_embeds") {
        if flavour != Flavour::Embeds {
            return Err("this is an input_ids model: \"inputs_embeds\" are not accepted".into());
        }
        real = fill_embeds(rows, plan.info().hidden, &mut inputs.inputs_embeds)?;
        inputs.input_ids.fill(0);
        fill_mask_types(obj, inputs, real)?;
    } else {
        return Err("a line needs \"text\", \"input_ids\" or \"inputs_embeds\"".into());
    }
    encoder
        .run(inputs.as_input(), out)
        .map_err(|e| e.to_string())?;
    Ok(Line {
        tokens: real,
        truncated,
        prompt_tokens,
    })
}

/// Copies a JSON integer array into `dst` (zero-padded); returns its length.
fn fill_ints(name: &str, v: &Value, dst: &mut [i64]) -> Result<usize, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("\"{name}\" must be an array of integers"))?;
    if arr.len() > dst.len() {
        return Err(format!(
            "\"{name}\" has {} values, the plan's sequence length is {}",
            arr.len(),
            dst.len()
        ));
    }
    for (i, (d, x)) in dst.iter_mut().zip(arr).enumerate() {
        *d = x
            .as_i64()
            .ok_or_else(|| format!("\"{name}\"[{i}] is not an integer: {x}"))?;
    }
    dst[arr.len()..].fill(0);
    Ok(arr.len())
}

fn fill_mask_types(obj: &Map<String, Value>, b: &mut Inputs, real: usize) -> Result<(), String> {
    for (name, dst, default) in [
        ("attention_mask", &mut b.attention_mask, 1),
        ("token_type_ids", &mut b.token_type_ids, 0),
    ] {
        match obj.get(name) {
            None | Some(Value::Null) => {
                dst[..real].fill(default);
                dst[real..].fill(0);
            }
            Some(v) => {
                let len = fill_ints(name, v, dst)?;
                if len != real {
                    return Err(format!(
                        "\"{name}\" has {len} values, the input has {real} tokens"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn fill_embeds(v: &Value, hidden: usize, dst: &mut [f32]) -> Result<usize, String> {
    let rows = v
        .as_array()
        .ok_or("\"inputs_embeds\" must be an array of rows")?;
    let seq = dst.len() / hidden;
    if rows.len() > seq {
        return Err(format!(
            "\"inputs_embeds\" has {} rows, the plan's sequence length is {seq}",
            rows.len()
        ));
    }
    for (r, (row, d)) in rows.iter().zip(dst.chunks_mut(hidden)).enumerate() {
        let row = row
            .as_array()
            .ok_or_else(|| format!("\"inputs_embeds\"[{r}] is not an array"))?;
        if row.len() != hidden {
            return Err(format!(
                "\"inputs_embeds\"[{r}] has {} values, hidden size is {hidden}",
                row.len()
            ));
        }
        for (c, (x, y)) in d.iter_mut().zip(row).enumerate() {
            *x = y
                .as_f64()
                .ok_or_else(|| format!("\"inputs_embeds\"[{r}][{c}] is not a number"))?
                as f32;
        }
    }
    dst[rows.len() * hidden..].fill(0.0);
    Ok(rows.len())
}

/// A line's answer: the inputs, and every output the graph has under its own name: one
/// vector per row for `[batch, n]` outputs (pooler_output, sequence logits), per-token rows
/// for `[batch, seq, n]` outputs (last_hidden_state, token or masked-LM logits) with
/// `--hidden-states`.
fn render(plan: &Plan, b: &Inputs, real: usize, out: &Outputs, per_token: bool) -> Value {
    let mut o = Map::new();
    if plan.info().flavour == Flavour::Ids {
        o.insert("input_ids".into(), json!(b.input_ids));
    }
    o.insert("attention_mask".into(), json!(b.attention_mask));
    o.insert("token_type_ids".into(), json!(b.token_type_ids));
    o.insert("tokens".into(), json!(real));
    for (spec, values) in out.iter() {
        match spec.shape.len() {
            0..=2 => {
                o.insert(spec.name.clone(), json!(values));
            }
            _ if per_token => {
                let rows: Vec<&[f32]> = values.chunks(spec.width().max(1)).collect();
                o.insert(spec.name.clone(), json!(rows));
            }
            _ => {}
        }
    }
    Value::Object(o)
}

/// `embed-lookup`: text lines → `word_embeddings[ids]` rows + mask + types, as JSON lines.
#[cfg(feature = "onnx")]
pub fn lookup(m: &ModelArgs) -> Result<ExitCode, CliError> {
    let table = bert_edge::WordEmbeddings::from_onnx(&m.model).map_err(CliError::from)?;
    let tok =
        BertTokenizer::for_model_file(m.tokenizer.as_deref(), &m.model).map_err(CliError::from)?;
    if tok.vocab_size() > table.vocab_size() {
        return Err(CliError::usage(format!(
            "the tokenizer has {} tokens, the model's word embedding table {}: give the \
                 model's own (--tokenizer FILE)",
            tok.vocab_size(),
            table.vocab_size()
        )));
    }
    let h = table.hidden_size();
    let mut enc = Inputs::new(m.seq.unwrap_or(bert_edge::DEFAULT_SEQ));
    let mut rows = vec![0f32; enc.len() * h];
    let mut failed = 0;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| CliError::io(format!("reading stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut one = || -> Result<Value, String> {
            let v: Value =
                serde_json::from_str(&line).map_err(|e| format!("malformed JSON: {e}"))?;
            let text = v
                .get("text")
                .and_then(Value::as_str)
                .ok_or("a line needs \"text\"")?;
            let pair = v.get("text_pair").and_then(Value::as_str);
            let real = tok
                .encode_into(text, pair, &mut enc)
                .map_err(|e| e.to_string())?
                .tokens;
            let out = &mut rows[..real * h];
            table
                .lookup_into(&enc.input_ids[..real], out)
                .map_err(|e| e.to_string())?;
            let r: Vec<&[f32]> = out.chunks(h).collect();
            Ok(json!({
                "inputs_embeds": r,
                "attention_mask": &enc.attention_mask[..real],
                "token_type_ids": &enc.token_type_ids[..real],
            }))
        };
        let reply = one().unwrap_or_else(|e| {
            failed += 1;
            json!({ "error": e })
        });
        println!("{reply}");
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
