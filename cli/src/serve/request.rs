//! Reading a request's fields as TEI does (inputs as a string, a list, token ids or pairs;
//! `truncate`, `truncation_direction`, `prompt_name`, `normalize`, `dimensions`), and running
//! its inputs through the workers: all queued at once or none (429), results in order, with
//! TEI's timing headers.

use super::types::{Done, Failure, Item, Shared, Text, Truncation, Work};
use bert_edge::tokenize::Side;
use serde_json::Value;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc::{self, SyncSender};
use std::time::Instant;

/// Extra response headers.
pub(super) type Headers = Vec<(&'static str, String)>;

/// The JSON body, an object (400 if it is not JSON at all, 422 if not an object).
pub(super) fn object(body: &[u8]) -> Result<Value, Failure> {
    // from_slice checks UTF-8 (and rejects lone surrogates in escapes).
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Failure::new(400, format!("malformed JSON: {e}")))?;
    if !v.is_object() {
        return Err(Failure::validation("the body must be a JSON object"));
    }
    Ok(v)
}

/// An optional boolean field.
pub(super) fn flag(v: &Value, key: &str) -> Result<Option<bool>, Failure> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Failure::validation(format!(
            "\"{key}\" must be true or false"
        ))),
    }
}

/// An optional string field.
pub(super) fn string<'a>(v: &'a Value, key: &str) -> Result<Option<&'a str>, Failure> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Failure::validation(format!("\"{key}\" must be a string"))),
    }
}

/// An optional count field, 1..=max.
pub(super) fn count(v: &Value, key: &str, max: usize) -> Result<Option<usize>, Failure> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(n) => n
            .as_u64()
            .filter(|n| (1..=max as u64).contains(n))
            .map(|n| Some(n as usize))
            .ok_or_else(|| {
                Failure::validation(format!("\"{key}\" must be an integer from 1 to {max}"))
            }),
    }
}

/// `truncate` (default `--auto-truncate`) and `truncation_direction` (`right` | `left`).
pub(super) fn truncation(shared: &Shared, v: &Value) -> Result<Truncation, Failure> {
    let side = match string(v, "truncation_direction")? {
        None => Side::Right,
        Some("right" | "Right") => Side::Right,
        Some("left" | "Left") => Side::Left,
        Some(s) => {
            return Err(Failure::validation(format!(
                "\"truncation_direction\" must be \"right\" or \"left\", not {s:?}"
            )))
        }
    };
    Ok(Truncation {
        allow: flag(v, "truncate")?.unwrap_or(shared.config.auto_truncate),
        side,
    })
}

/// What a field accepts (for messages).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Accept {
    /// Strings and token-id arrays; `[a, b]` pairs as list items (`/embed`, `/v1/embeddings`).
    TextsOrIds,
    /// Strings only (`/tokenize`, `/ner`, `/fill-mask`).
    Texts,
    /// TEI's `/predict`: a string, an `[a, b]` pair, or a list of `[a]` / `[a, b]` items.
    TextsOrPairs,
    /// `/classify`: a string or a list whose items are strings or `[a, b]` pairs.
    TextsAndPairs,
}

/// A field's inputs: a string, a list of them, token ids (a list of integers, or a list of
/// such lists), or pairs, as `accept` allows; 400 when empty (TEI's "Empty").
pub(super) fn inputs(v: Option<&Value>, field: &str, accept: Accept) -> Result<Vec<Text>, Failure> {
    let want = match accept {
        Accept::TextsOrIds => "a string, a list of strings or [string, string] pairs, or token ids",
        Accept::Texts => "a string or a list of strings",
        Accept::TextsOrPairs => "a string, a [string, string] pair, or a list of them",
        Accept::TextsAndPairs => "a string, or a list of strings or [string, string] pairs",
    };
    let bad = |what: String| Failure::validation(format!("\"{field}\"{what} must be {want}"));
    let ids = |a: &[Value]| -> Option<Vec<u32>> {
        a.iter()
            .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
            .collect()
    };
    let one = |i: Option<usize>, x: &Value| -> Result<Text, Failure> {
        let at = i.map_or(String::new(), |i| format!("[{i}]"));
        match x {
            Value::String(s) => Ok(Text::One(s.clone())),
            Value::Array(a) if accept == Accept::TextsOrIds && !a.is_empty() => {
                match a.as_slice() {
                    [Value::String(s), Value::String(t)] if i.is_some() => {
                        Ok(Text::Pair(s.clone(), t.clone()))
                    }
                    _ => ids(a).map(Text::Ids).ok_or_else(|| bad(at)),
                }
            }
            Value::Array(a) if matches!(accept, Accept::TextsOrPairs | Accept::TextsAndPairs) => {
                match a.as_slice() {
                    [Value::String(s)] => Ok(Text::One(s.clone())),
                    [Value::String(s), Value::String(t)] => Ok(Text::Pair(s.clone(), t.clone())),
                    _ => Err(bad(at)),
                }
            }
            _ => Err(bad(at)),
        }
    };
    match v {
        None | Some(Value::Null) => Err(Failure::validation(format!("missing \"{field}\""))),
        Some(Value::Array(a)) if a.is_empty() => {
            Err(Failure::new(400, format!("\"{field}\" cannot be empty")))
        }
        // One list of token ids, or one [a, b] pair: a single input.
        Some(Value::Array(a)) if accept == Accept::TextsOrIds && a.iter().all(Value::is_number) => {
            Ok(vec![one(None, v.unwrap())?])
        }
        Some(Value::Array(a))
            if accept == Accept::TextsOrPairs && a.len() == 2 && a.iter().all(Value::is_string) =>
        {
            Ok(vec![one(None, v.unwrap())?])
        }
        Some(Value::Array(a)) => a.iter().enumerate().map(|(i, x)| one(Some(i), x)).collect(),
        Some(x) => Ok(vec![one(None, x)?]),
    }
}

/// Puts `prompt` in front of every text (not token ids: they are already tokens).
pub(super) fn with_prompt(texts: Vec<Text>, prompt: &str) -> Result<Vec<Text>, Failure> {
    if prompt.is_empty() {
        return Ok(texts);
    }
    texts
        .into_iter()
        .map(|t| match t {
            Text::One(s) => Ok(Text::One(format!("{prompt}{s}"))),
            Text::Pair(a, b) => Ok(Text::Pair(format!("{prompt}{a}"), b)),
            Text::Ids(_) => Err(Failure::validation(
                "a prompt cannot go in front of token ids",
            )),
        })
        .collect()
}

/// The limits on a request's inputs, before anything is queued: count (422), bytes per input
/// (413), token ids below the vocabulary size (422).
fn check_limits(shared: &Shared, inputs: &[Text]) -> Result<(), Failure> {
    let c = &shared.config;
    let vocab = shared.model.info.vocab_size.unwrap_or(usize::MAX);
    for t in inputs {
        if let Text::Ids(ids) = t {
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
                return Err(Failure::validation(format!(
                    "token id {bad} is not below the vocabulary size {vocab}"
                )));
            }
        }
    }
    if inputs.len() > c.max_items {
        shared.counters.metrics.limit("max_client_batch_size");
        return Err(Failure::validation(format!(
            "batch size {} > maximum allowed batch size {}",
            inputs.len(),
            c.max_items
        )));
    }
    for (i, t) in inputs.iter().enumerate() {
        let len = match t {
            Text::One(a) => a.len(),
            Text::Pair(a, b) => a.len() + b.len(),
            Text::Ids(v) => 4 * v.len(),
        };
        if len > c.max_text_bytes {
            shared.counters.metrics.limit("max_text_bytes");
            return Err(Failure::new(
                413,
                format!(
                    "input {i} is {len} bytes long, at most {} allowed",
                    c.max_text_bytes
                ),
            ));
        }
    }
    Ok(())
}

/// Queues every input (all or none: 429 if the queue has no room for all) and waits for the
/// results, in order; also TEI's timing and count headers.
pub(super) fn run_all(
    shared: &Shared,
    jobs: &SyncSender<Item>,
    inputs: Vec<Text>,
    work: Work,
    truncation: Truncation,
) -> Result<(Vec<Done>, Headers), Failure> {
    let t0 = Instant::now();
    check_limits(shared, &inputs)?;
    let k = inputs.len();
    if !shared.reserve(k) {
        shared.counters.metrics.limit("queue");
        return Err(Failure::new(
            429,
            "model is overloaded: the inference queue is full, retry later",
        ));
    }
    let chars: usize = inputs.iter().map(Text::chars).sum();
    let (tx, rx) = mpsc::channel();
    for (index, input) in inputs.into_iter().enumerate() {
        let item = Item {
            input,
            work,
            truncation,
            index,
            queued: Instant::now(),
            reply: tx.clone(),
        };
        if jobs.send(item).is_err() {
            // Workers gone (cannot happen before shutdown): give back what was not queued.
            shared.counters.queued.fetch_sub(k - index, SeqCst);
            return Err(Failure::new(503, "shutting down"));
        }
    }
    drop(tx);
    let out = collect(&rx, k)?;
    let headers = timing_headers(&out, t0, chars);
    Ok((out, headers))
}

/// The `k` results, in order, or the first failure (named by its input when there are several).
fn collect(
    rx: &mpsc::Receiver<(usize, Result<Done, Failure>)>,
    k: usize,
) -> Result<Vec<Done>, Failure> {
    let mut out: Vec<Option<Done>> = (0..k).map(|_| None).collect();
    let mut first_err = None;
    for _ in 0..k {
        match rx.recv() {
            Ok((i, Ok(e))) => out[i] = Some(e),
            Ok((i, Err(f))) => {
                let msg = if k > 1 {
                    format!("input {i}: {}", f.message)
                } else {
                    f.message
                };
                first_err.get_or_insert(Failure::new(f.status, msg));
            }
            Err(_) => return Err(Failure::new(500, "internal error: a worker stopped")),
        }
    }
    match first_err {
        Some(f) => Err(f),
        None => Ok(out.into_iter().flatten().collect()),
    }
}

/// TEI's timing and count headers of a request's results.
fn timing_headers(out: &[Done], t0: Instant, chars: usize) -> Headers {
    let ms = |d: std::time::Duration| d.as_millis().to_string();
    let most = |f: fn(&Done) -> std::time::Duration| out.iter().map(f).max().unwrap_or_default();
    let total = ms(t0.elapsed());
    vec![
        ("x-compute-type", "cpu".to_string()),
        ("x-compute-time", total.clone()),
        ("x-total-time", total),
        ("x-compute-characters", chars.to_string()),
        (
            "x-compute-tokens",
            out.iter().map(|e| e.tokens).sum::<usize>().to_string(),
        ),
        ("x-queue-time", ms(most(|d| d.queue))),
        ("x-inference-time", ms(most(|d| d.inference))),
        (
            "x-truncated-inputs",
            out.iter().filter(|e| e.truncated).count().to_string(),
        ),
    ]
}
