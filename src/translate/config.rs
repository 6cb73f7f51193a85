//! The export's Hugging Face `config.json`: what a classifier's labels are called
//! (`id2label`), whether its scores are independent (`problem_type`), and the vocabulary size
//! (for an embeds graph, which has no word-embedding table to read it from).

use crate::error::{Error, Result};
use crate::runtime::{OutputInfo, Role};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What bert-edge takes from `config.json`.
#[derive(Debug, Default)]
pub(crate) struct ModelConfig {
    /// `id2label` in index order, if the file has one.
    pub labels: Option<Vec<String>>,
    /// `problem_type == "multi_label_classification"`.
    pub multi_label: bool,
    /// `vocab_size`.
    pub vocab_size: Option<usize>,
}

/// The config to read: the one asked for, else `config.json` beside the model, else none.
pub(crate) fn locate(explicit: Option<&Path>, model: &Path) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let beside = model.parent()?.join("config.json");
    beside.is_file().then_some(beside)
}

/// Reads `path`; every problem is a `BadModel` error naming the file.
pub(crate) fn read(path: &Path) -> Result<ModelConfig> {
    let bad = |what: String| Error::bad_model(format!("{}: {what}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    let labels = match obj.get("id2label") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(labels_in_order(map).map_err(bad)?),
        Some(other) => return Err(bad(format!("id2label must be an object, not {other}"))),
    };
    let multi_label =
        obj.get("problem_type").and_then(Value::as_str) == Some("multi_label_classification");
    let vocab_size = obj
        .get("vocab_size")
        .and_then(Value::as_u64)
        .map(|v| v as usize);
    Ok(ModelConfig {
        labels,
        multi_label,
        vocab_size,
    })
}

/// `{"0": "O", "1": "B-PER", …}` → `["O", "B-PER", …]`; the keys must be exactly 0..n.
fn labels_in_order(
    map: &serde_json::Map<String, Value>,
) -> std::result::Result<Vec<String>, String> {
    let mut labels = vec![None; map.len()];
    for (k, v) in map {
        let ix: usize = k
            .parse()
            .map_err(|_| format!("id2label key {k:?} is not a class index"))?;
        let slot = labels.get_mut(ix).ok_or_else(|| {
            format!(
                "id2label key {ix} is out of range: {} labels must be keyed 0..{}",
                map.len(),
                map.len()
            )
        })?;
        let label = v
            .as_str()
            .ok_or_else(|| format!("id2label[{k}] must be a string, not {v}"))?;
        *slot = Some(label.to_string());
    }
    // n keys, each a distinct index below n (a JSON object has no duplicate keys): all filled.
    Ok(labels.into_iter().flatten().collect())
}

/// The labels of the graph's classification logits: the config's `id2label`, which must have
/// one label per logit, else Hugging Face's defaults `LABEL_0`, `LABEL_1`, …. Empty for a
/// graph without classification logits.
pub(crate) fn labels_for(
    outputs: &[OutputInfo],
    config: &ModelConfig,
    origin: Option<&Path>,
) -> Result<Vec<String>> {
    let logits = outputs
        .iter()
        .find(|o| matches!(o.role, Some(Role::SequenceLogits | Role::TokenLogits)));
    let Some(logits) = logits else {
        return Ok(Vec::new());
    };
    let n = logits.width();
    match &config.labels {
        Some(l) if l.len() == n => Ok(l.clone()),
        Some(l) => Err(Error::bad_model(format!(
            "{}: id2label has {} labels, the graph's {} output has {n} classes: this config \
             is not the one of this export (give the right one with --config)",
            origin.map_or("config.json".into(), |p| p.display().to_string()),
            l.len(),
            logits.name
        ))),
        None => Ok((0..n).map(|i| format!("LABEL_{i}")).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> serde_json::Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn labels_are_read_in_index_order() {
        let l = labels_in_order(&map(r#"{"1": "正面", "0": "负面"}"#)).unwrap();
        assert_eq!(l, ["负面", "正面"]);
        assert!(labels_in_order(&map(r#"{"0": "a", "2": "b"}"#)).is_err());
        assert!(labels_in_order(&map(r#"{"x": "a"}"#)).is_err());
        assert!(labels_in_order(&map(r#"{"0": 3}"#)).is_err());
    }
}
