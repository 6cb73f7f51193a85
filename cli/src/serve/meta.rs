//! TEI's routes that run no model: `/tokenize`, `/decode`, `/info`; and `POST /`, which TEI
//! routes by the model's kind.

use super::api;
use super::http::Reply;
use super::request::{self, flag, string, Accept};
use super::types::{Failure, Item, Shared, Text};
use bert_edge::{Task, Variant};
use serde_json::{json, Value};
use std::sync::mpsc::SyncSender;

/// `POST /tokenize`: `[[{id, text, special, start, stop}]]`, untruncated; byte offsets, and
/// for a special token its name and no offsets, as TEI answers.
pub(super) fn tokenize(shared: &Shared, v: &Value) -> Result<Reply, Failure> {
    let texts = request::inputs(v.get("inputs"), "inputs", Accept::Texts)?;
    if texts.len() > shared.config.max_items {
        return Err(Failure::validation(format!(
            "batch size {} > maximum allowed batch size {}",
            texts.len(),
            shared.config.max_items
        )));
    }
    let max = shared.config.max_text_bytes;
    if let Some((i, _)) = texts
        .iter()
        .enumerate()
        .find(|(_, t)| matches!(t, Text::One(s) if s.len() > max))
    {
        return Err(Failure::new(
            413,
            format!("input {i} is longer than {max} bytes"),
        ));
    }
    let special = flag(v, "add_special_tokens")?.unwrap_or(true);
    let prompt = shared
        .model
        .prompt(string(v, "prompt_name")?)?
        .map_or("", |p| &p.text);
    let tok = &shared.model.tokenizer;
    let mut all = Vec::with_capacity(texts.len());
    for t in request::with_prompt(texts, prompt)? {
        let Text::One(t) = t else { continue };
        let pieces = tok.pieces(&t, special)?;
        let tokens: Vec<Value> = pieces
            .into_iter()
            .map(|p| match p.span {
                Some((a, b)) => json!({"id": p.id, "text": t.get(a..b).unwrap_or(&p.token),
                                       "special": false, "start": a, "stop": b}),
                None => json!({"id": p.id, "text": p.token, "special": p.special,
                               "start": null, "stop": null}),
            })
            .collect();
        all.push(tokens);
    }
    Reply::json(&all, Vec::new())
}

/// `POST /decode`: `{ids: [u32] | [[u32]], skip_special_tokens?}` → `[string]`.
pub(super) fn decode(shared: &Shared, v: &Value) -> Result<Reply, Failure> {
    let bad =
        || Failure::validation("\"ids\" must be a list of token ids, or a list of such lists");
    let lists: Vec<&Vec<Value>> = match v.get("ids") {
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_array) => {
            a.iter().filter_map(Value::as_array).collect()
        }
        Some(Value::Array(a)) => vec![a],
        _ => return Err(bad()),
    };
    let skip = flag(v, "skip_special_tokens")?.unwrap_or(true);
    let vocab = shared.model.tokenizer.vocab_size();
    let mut out = Vec::with_capacity(lists.len());
    for l in lists {
        let ids: Option<Vec<u32>> = l
            .iter()
            .map(|x| x.as_u64().filter(|&i| i < vocab as u64).map(|i| i as u32))
            .collect();
        let ids = ids.ok_or_else(|| {
            Failure::validation(format!(
                "\"ids\" must be token ids below the vocabulary size {vocab}"
            ))
        })?;
        out.push(shared.model.tokenizer.decode(&ids, skip)?);
    }
    Reply::json(&out, Vec::new())
}

/// `GET /info`: TEI's fields.
pub(super) fn info(shared: &Shared) -> Result<Reply, Failure> {
    let (m, c) = (&shared.model, &shared.config);
    let labels = || {
        let id2label: serde_json::Map<String, Value> = m
            .info
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), json!(l)))
            .collect();
        let label2id: serde_json::Map<String, Value> = m
            .info
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), json!(i)))
            .collect();
        json!({"id2label": id2label, "label2id": label2id})
    };
    let model_type = match m.task() {
        Task::TextClassification if m.is_reranker() => json!({"reranker": labels()}),
        Task::TextClassification | Task::TokenClassification => json!({"classifier": labels()}),
        Task::FillMask => json!({"embedding": {"pooling": "splade"}}),
        _ => json!({"embedding": {"pooling": m.embedding.as_ref().map(|e| e.pooling.to_string())}}),
    };
    let dtype = match m.info.variant {
        Variant::F32 => "float32",
        Variant::F16 => "float16",
        _ => "int8",
    };
    let body = json!({
        "model_id": m.name, "model_sha": null, "model_dtype": dtype, "served_model_name": m.name,
        "model_type": model_type, "max_concurrent_requests": c.handlers,
        "max_input_length": c.max_input_length, "max_batch_tokens": c.batch * m.info.seq,
        "max_batch_requests": c.batch, "max_client_batch_size": c.max_items,
        "auto_truncate": c.auto_truncate, "tokenization_workers": c.workers,
        "version": env!("CARGO_PKG_VERSION"), "sha": null, "docker_label": null,
        "prompts": m.prompts.iter().map(|p| &p.name).collect::<Vec<_>>(),
    });
    Reply::json(&body, Vec::new())
}

/// `POST /`: what TEI routes there for this model: `/rerank` (a cross-encoder), `/predict`
/// (a classifier), `/embed_sparse` (a masked-LM: SPLADE), `/similarity` (an embedding model
/// asked `{"inputs": {"source_sentence", "sentences"}}`), else `/embed`.
pub(super) fn root(shared: &Shared, jobs: &SyncSender<Item>, v: &Value) -> Result<Reply, Failure> {
    let m = &shared.model;
    match m.task() {
        Task::TextClassification if m.is_reranker() && v.get("query").is_some() => {
            api::rerank(shared, jobs, v)
        }
        Task::TextClassification => api::predict(shared, jobs, v),
        Task::FillMask => api::embed_sparse(shared, jobs, v),
        _ if v.get("inputs").is_some_and(Value::is_object) => api::similarity(shared, jobs, v),
        _ => api::embed(shared, jobs, v),
    }
}
