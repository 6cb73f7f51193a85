//! Hugging Face text-embeddings-inference's routes (its `router/src/http/server.rs` is the
//! reference): `/embed`, `/embed_all`, `/embed_sparse`, `/predict`, `/rerank`,
//! `/similarity`, `/tokenize`, `/decode`, `/info`, and `POST /` routed by the model's task.

use super::http::Reply;
use super::request::{self, count, flag, string, Accept};
use super::types::{Failure, Item, Shared, Text, Work};
use bert_edge::{Role, Task};
use serde_json::{json, Value};
use std::sync::mpsc::SyncSender;

type Jobs<'a> = &'a SyncSender<Item>;

/// Values one `/embed_all` answer may hold (4 M: ~40 MB of JSON).
const EMBED_ALL_VALUES: usize = 4 << 20;

/// 4xx naming the routes this model serves, when it cannot serve `route`.
fn cannot(shared: &Shared, route: &str) -> Failure {
    let m = &shared.model;
    let mut can = vec!["/tokenize", "/decode", "/info"];
    if m.embedding.is_some() {
        can.extend(["/embed", "/similarity", "/v1/embeddings"]);
    }
    if m.info.output(Role::HiddenStates).is_some() {
        can.push("/embed_all");
    }
    match m.task() {
        Task::TextClassification if m.is_reranker() => {
            can.extend(["/rerank", "/predict", "/classify"])
        }
        Task::TextClassification => can.extend(["/predict", "/classify"]),
        Task::TokenClassification => can.push("/ner"),
        Task::FillMask => can.extend(["/embed_sparse", "/fill-mask"]),
        _ => {}
    }
    Failure::new(
        424,
        format!(
            "this {} model cannot serve {route}; it serves {}",
            m.task(),
            can.join(", ")
        ),
    )
}

/// The inputs of `field` with the request's prompt (`prompt_name`, else the model's default)
/// in front; the prompt's token count for the pooling.
fn prompted(
    shared: &Shared,
    v: &Value,
    field: &str,
    accept: Accept,
) -> Result<(Vec<Text>, usize), Failure> {
    let texts = request::inputs(v.get(field), field, accept)?;
    let prompt = shared.model.prompt(string(v, "prompt_name")?)?;
    match prompt {
        Some(p) => Ok((request::with_prompt(texts, &p.text)?, p.tokens)),
        None => Ok((texts, 0)),
    }
}

/// Scales to unit L2 norm after keeping the first `dims` values (Matryoshka, as TEI does).
pub(super) fn finish_vector(mut v: Vec<f32>, dims: Option<usize>, normalize: bool) -> Vec<f32> {
    if let Some(d) = dims {
        v.truncate(d);
    }
    if normalize {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            v.iter_mut().for_each(|x| *x /= n);
        }
    }
    v
}

/// The pooled vectors of `v[field]` (`/embed`, `/similarity`, `/v1/embeddings`), each cut to
/// `dimensions` and normalized as asked; also the response headers and token count.
pub(super) fn vectors(
    shared: &Shared,
    jobs: Jobs,
    v: &Value,
    field: &str,
) -> Result<(Vec<Vec<f32>>, request::Headers, usize), Failure> {
    if shared.model.embedding.is_none() {
        return Err(cannot(shared, "embeddings"));
    }
    let normalize = flag(v, "normalize")?.unwrap_or(shared.config.normalize);
    let dims = count(v, "dimensions", shared.model.info.hidden)?;
    let (texts, skip) = prompted(shared, v, field, Accept::TextsOrIds)?;
    let trunc = request::truncation(shared, v)?;
    let (out, headers) = request::run_all(shared, jobs, texts, Work::Embed { skip }, trunc)?;
    let tokens = out.iter().map(|d| d.tokens).sum();
    let vecs = out
        .into_iter()
        .map(|d| finish_vector(d.values, dims, normalize))
        .collect();
    Ok((vecs, headers, tokens))
}

/// `POST /embed`: `[[f32]]`, one vector per input.
pub(super) fn embed(shared: &Shared, jobs: Jobs, v: &Value) -> Result<Reply, Failure> {
    let (vecs, headers, _) = vectors(shared, jobs, v, "inputs")?;
    Reply::json(&vecs, headers)
}

/// `POST /embed_all`: every real token's hidden state, `[[[f32]]]`.
pub(super) fn embed_all(shared: &Shared, jobs: Jobs, v: &Value) -> Result<Reply, Failure> {
    if shared.model.info.output(Role::HiddenStates).is_none() {
        return Err(cannot(shared, "/embed_all"));
    }
    let (texts, _) = prompted(shared, v, "inputs", Accept::TextsOrIds)?;
    // Every token's vector is N × hidden values an input: bounded so that one request's answer
    // stays in the tens of MB (a Pi has 1 to 8 GB).
    let per_input = shared.config.max_input_length * shared.model.info.hidden;
    let most = (EMBED_ALL_VALUES / per_input.max(1)).max(1);
    if texts.len() > most {
        return Err(Failure::validation(format!(
            "/embed_all answers up to {per_input} values an input: at most {most} inputs a request"
        )));
    }
    let trunc = request::truncation(shared, v)?;
    let (out, headers) = request::run_all(shared, jobs, texts, Work::Tokens, trunc)?;
    let h = shared.model.info.hidden;
    let all: Vec<Vec<&[f32]>> = out.iter().map(|d| d.values.chunks(h).collect()).collect();
    Reply::json(&all, headers)
}

/// `POST /embed_sparse`: SPLADE weights of a fill-mask export, `[[{index, value}]]` (value > 0).
pub(super) fn embed_sparse(shared: &Shared, jobs: Jobs, v: &Value) -> Result<Reply, Failure> {
    if shared.model.task() != Task::FillMask {
        return Err(cannot(shared, "/embed_sparse"));
    }
    let (texts, _) = prompted(shared, v, "inputs", Accept::TextsOrIds)?;
    let trunc = request::truncation(shared, v)?;
    let (out, headers) = request::run_all(shared, jobs, texts, Work::Sparse, trunc)?;
    let sparse: Vec<Vec<Value>> = out
        .iter()
        .map(|d| {
            let nz = d.values.iter().enumerate().filter(|(_, w)| **w > 0.0);
            nz.map(|(index, value)| json!({"index": index, "value": value}))
                .collect()
        })
        .collect();
    Reply::json(&sparse, headers)
}

/// Softmax (several labels) or sigmoid (one label, or a multi-label model) of `logits`, as
/// TEI scores them; the logits as they are with `raw`.
fn scores(shared: &Shared, logits: &[f32], raw: bool) -> Vec<f32> {
    let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
    if raw {
        logits.to_vec()
    } else if logits.len() == 1 || shared.model.info.multi_label {
        logits.iter().map(|x| sigmoid(*x)).collect()
    } else {
        let m = logits.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b));
        let e: Vec<f32> = logits.iter().map(|x| (x - m).exp()).collect();
        let sum: f32 = e.iter().sum();
        e.iter().map(|x| x / sum).collect()
    }
}

/// The sequence logits of `texts`, each through [`scores`].
fn classify(
    shared: &Shared,
    jobs: Jobs,
    v: &Value,
    texts: Vec<Text>,
    route: &str,
) -> Result<(Vec<Vec<f32>>, request::Headers), Failure> {
    if shared.model.info.output(Role::SequenceLogits).is_none() {
        return Err(cannot(shared, route));
    }
    let raw = flag(v, "raw_scores")?.unwrap_or(false);
    let trunc = request::truncation(shared, v)?;
    let (out, headers) = request::run_all(shared, jobs, texts, Work::Logits, trunc)?;
    Ok((
        out.iter().map(|d| scores(shared, &d.values, raw)).collect(),
        headers,
    ))
}

/// `POST /predict`: `[{score, label}]` (best first) for a text or a pair, a list of them for
/// a batch.
pub(super) fn predict(shared: &Shared, jobs: Jobs, v: &Value) -> Result<Reply, Failure> {
    let field = v.get("inputs");
    let texts = request::inputs(field, "inputs", Accept::TextsOrPairs)?;
    let single = match field {
        Some(Value::Array(a)) => a.len() <= 2 && a.iter().all(Value::is_string),
        _ => true,
    };
    let (all, headers) = classify(shared, jobs, v, texts, "/predict")?;
    let labels = &shared.model.info.labels;
    let ranked: Vec<Vec<Value>> = all
        .iter()
        .map(|s| {
            let mut p: Vec<(usize, f32)> = s.iter().copied().enumerate().collect();
            p.sort_by(|a, b| b.1.total_cmp(&a.1));
            p.iter()
                .map(|(i, s)| json!({"score": s, "label": labels.get(*i)}))
                .collect()
        })
        .collect();
    if single {
        Reply::json(&ranked[0], headers)
    } else {
        Reply::json(&ranked, headers)
    }
}

/// `POST /rerank`: `query` against `texts` with a cross-encoder (a one-label classifier):
/// `[{index, score, text?}]`, best first. llama.cpp's and Jina's `documents` (and `top_n`)
/// get their `{results: [{index, relevance_score, document?}]}` answer.
pub(super) fn rerank(shared: &Shared, jobs: Jobs, v: &Value) -> Result<Reply, Failure> {
    if !shared.model.is_reranker() {
        return Err(cannot(shared, "/rerank"));
    }
    let query = string(v, "query")?.ok_or_else(|| Failure::validation("missing \"query\""))?;
    let docs_style = v.get("documents").is_some();
    let field = if docs_style { "documents" } else { "texts" };
    let docs = request::inputs(v.get(field), field, Accept::Texts)?;
    let top_n = count(v, "top_n", usize::MAX)?.unwrap_or(docs.len());
    let return_text = flag(v, "return_text")?.unwrap_or(docs_style);
    let pairs = docs
        .iter()
        .map(|d| match d {
            Text::One(t) => Text::Pair(query.to_string(), t.clone()),
            other => other.clone(),
        })
        .collect();
    let (all, headers) = classify(shared, jobs, v, pairs, "/rerank")?;
    let mut ranked: Vec<(usize, f32)> = all.iter().map(|s| s[0]).enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(top_n);
    let text = |i: usize| match &docs[i] {
        Text::One(t) => Some(t.clone()),
        _ => None,
    };
    if docs_style {
        let results: Vec<Value> = ranked
            .iter()
            .map(|(i, s)| {
                let mut r = json!({"index": i, "relevance_score": s});
                if return_text {
                    r["document"] = json!({ "text": text(*i) });
                }
                r
            })
            .collect();
        let body = json!({"model": shared.model.name, "object": "list", "results": results});
        return Reply::json(&body, headers);
    }
    let ranks: Vec<Value> = ranked
        .iter()
        .map(|(i, s)| {
            let mut r = json!({"index": i, "score": s});
            if return_text {
                r["text"] = json!(text(*i));
            }
            r
        })
        .collect();
    Reply::json(&ranks, headers)
}

/// `POST /similarity`: `{inputs: {source_sentence, sentences}, parameters?}`: the cosine of
/// each sentence's embedding with the source's.
pub(super) fn similarity(shared: &Shared, jobs: Jobs, v: &Value) -> Result<Reply, Failure> {
    let inputs = v.get("inputs").filter(|i| i.is_object()).ok_or_else(|| {
        Failure::validation("\"inputs\" must be {\"source_sentence\": …, \"sentences\": […]}")
    })?;
    let source = string(inputs, "source_sentence")?
        .ok_or_else(|| Failure::validation("missing \"inputs\".\"source_sentence\""))?;
    let mut all = vec![Value::String(source.to_string())];
    match inputs.get("sentences") {
        Some(Value::Array(a)) if !a.is_empty() => all.extend(a.iter().cloned()),
        _ => {
            return Err(Failure::validation(
                "\"sentences\" must be a non-empty list of strings",
            ))
        }
    }
    let mut req = v.get("parameters").cloned().unwrap_or_else(|| json!({}));
    if !req.is_object() {
        return Err(Failure::validation("\"parameters\" must be an object"));
    }
    req["inputs"] = Value::Array(all);
    let (vecs, headers, _) = vectors(shared, jobs, &req, "inputs")?;
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (n(a) * n(b)).max(f32::MIN_POSITIVE)
    };
    let sims: Vec<f32> = vecs[1..].iter().map(|s| cos(&vecs[0], s)).collect();
    Reply::json(&sims, headers)
}
