//! Reads a sentence-transformers model's post-processing from its files, beside the export or
//! one level up (the hub's `onnx/model.onnx` layout):
//!
//! - `modules.json`: the module list (`Transformer`, `Pooling` at its path, `Normalize`);
//! - `<pooling path>/config.json` (`1_Pooling/config.json`): one `pooling_mode_*` set, and
//!   `include_prompt`;
//! - `config_sentence_transformers.json`: `prompts`, `default_prompt_name`;
//! - `sentence_bert_config.json`: `max_seq_length` (for a note when N is shorter).
//!
//! A module bert-edge does not run (`Dense`, a second pooling, …) is recorded, and asking for
//! the model's own embedding then fails instead of silently giving another.

use crate::error::{Error, Result};
use crate::runtime::{Pooling, SentenceConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};

const PREFIX: &str = "sentence_transformers.models.";

/// The directory holding the model's sentence-transformers files: the export's own, else its
/// parent. `None` if neither has any.
fn locate(model: &Path) -> Option<PathBuf> {
    let dir = model.parent()?;
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let has = |d: &Path| {
        [
            "modules.json",
            "1_Pooling/config.json",
            "config_sentence_transformers.json",
        ]
        .iter()
        .any(|f| d.join(f).is_file())
    };
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .find(|d| has(d))
        .map(Path::to_path_buf)
}

fn read_json(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::bad_model(format!("{}: not valid JSON: {e}", path.display())))?;
    match v {
        Value::Object(o) => Ok(o),
        // modules.json is a list: wrapped so callers read one shape.
        Value::Array(a) => Ok([("modules".to_string(), Value::Array(a))]
            .into_iter()
            .collect()),
        _ => Err(Error::bad_model(format!(
            "{}: not a JSON object",
            path.display()
        ))),
    }
}

/// The sentence-transformers config of the export at `model` (`hidden`: the graph's hidden
/// size, which the pooling config must agree with). `Ok(None)`: no such files.
pub(crate) fn read(model: &Path, hidden: usize) -> Result<Option<SentenceConfig>> {
    let Some(dir) = locate(model) else {
        return Ok(None);
    };
    let mut c = SentenceConfig::default();
    let mut sources = Vec::new();
    let modules = dir.join("modules.json");
    let mut pooling_dir = Some(dir.join("1_Pooling"));
    if modules.is_file() {
        sources.push(modules.display().to_string());
        pooling_dir = None;
        let list = read_json(&modules)?;
        let list = list
            .get("modules")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::bad_model(format!("{}: not a list of modules", modules.display()))
            })?;
        for m in list {
            let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
            let path = m.get("path").and_then(Value::as_str).unwrap_or_default();
            match ty.strip_prefix(PREFIX) {
                Some("Transformer") => {}
                Some("Pooling") if pooling_dir.is_none() => pooling_dir = Some(dir.join(path)),
                Some("Normalize") => c.normalize = true,
                _ => c.unsupported.push(ty.to_string()),
            }
        }
    }
    if let Some(p) = pooling_dir
        .map(|d| d.join("config.json"))
        .filter(|p| p.is_file())
    {
        sources.push(p.display().to_string());
        read_pooling(&p, hidden, &mut c)?;
    }
    let cfg = dir.join("config_sentence_transformers.json");
    if cfg.is_file() {
        sources.push(cfg.display().to_string());
        read_prompts(&cfg, &mut c)?;
    }
    let bert = dir.join("sentence_bert_config.json");
    if bert.is_file() {
        let o = read_json(&bert)?;
        c.max_seq_length = o
            .get("max_seq_length")
            .and_then(Value::as_u64)
            .map(|v| v as usize);
    }
    c.source = sources.join(", ");
    Ok(Some(c))
}

/// `1_Pooling/config.json`: exactly one `pooling_mode_*` (several concatenate vectors, which
/// bert-edge does not do: recorded as unsupported).
fn read_pooling(path: &Path, hidden: usize, c: &mut SentenceConfig) -> Result<()> {
    let o = read_json(path)?;
    let bad = |what: String| Error::bad_model(format!("{}: {what}", path.display()));
    if let Some(d) = o.get("word_embedding_dimension").and_then(Value::as_u64) {
        if d as usize != hidden {
            return Err(bad(format!(
                "word_embedding_dimension {d}, but the graph's hidden size is {hidden}: these \
                 files belong to another model"
            )));
        }
    }
    let modes = [
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_max_tokens", Pooling::Max),
        ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
        ("pooling_mode_weightedmean_tokens", Pooling::WeightedMean),
        ("pooling_mode_lasttoken", Pooling::LastToken),
    ];
    let on: Vec<Pooling> = modes
        .iter()
        .filter(|(k, _)| o.get(*k).and_then(Value::as_bool) == Some(true))
        .map(|(_, p)| *p)
        .collect();
    match on.as_slice() {
        [p] => c.pooling = Some(*p),
        [] => {}
        more => c
            .unsupported
            .push(format!("concatenated poolings {more:?}")),
    }
    if let Some(v) = o.get("include_prompt") {
        c.include_prompt = v
            .as_bool()
            .ok_or_else(|| bad("include_prompt must be true or false".into()))?;
    }
    Ok(())
}

/// `config_sentence_transformers.json`: `prompts` (name → text) and `default_prompt_name`.
fn read_prompts(path: &Path, c: &mut SentenceConfig) -> Result<()> {
    let o = read_json(path)?;
    let bad = |what: &str| Error::bad_model(format!("{}: {what}", path.display()));
    if let Some(p) = o.get("prompts").filter(|p| !p.is_null()) {
        let p = p
            .as_object()
            .ok_or_else(|| bad("prompts must be an object"))?;
        for (name, text) in p {
            let text = text
                .as_str()
                .ok_or_else(|| bad("each prompt must be a string"))?;
            c.prompts.push((name.clone(), text.to_string()));
        }
    }
    match o.get("default_prompt_name") {
        None | Some(Value::Null) => {}
        Some(Value::String(d)) => {
            c.prompt(d)
                .map_err(|_| bad("default_prompt_name names no prompt"))?;
            c.default_prompt_name = Some(d.clone());
        }
        Some(_) => return Err(bad("default_prompt_name must be a string")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn reads_the_hub_layout_one_level_up() {
        let dir = std::env::temp_dir().join(format!("bert-edge-st-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(
            &dir,
            "modules.json",
            r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
            {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
        );
        write(
            &dir,
            "1_Pooling/config.json",
            r#"{"word_embedding_dimension": 64, "pooling_mode_cls_token": false,
            "pooling_mode_mean_tokens": true, "include_prompt": false}"#,
        );
        write(
            &dir,
            "config_sentence_transformers.json",
            r#"{"prompts": {"query": "q: "}, "default_prompt_name": "query"}"#,
        );
        write(
            &dir,
            "sentence_bert_config.json",
            r#"{"max_seq_length": 256}"#,
        );
        let model = dir.join("onnx/model.onnx");
        let c = read(&model, 64).unwrap().unwrap();
        assert_eq!(c.pooling, Some(Pooling::Mean));
        assert!(c.normalize && !c.include_prompt && c.unsupported.is_empty());
        assert_eq!(c.prompts, [("query".to_string(), "q: ".to_string())]);
        assert_eq!(c.default_prompt_name.as_deref(), Some("query"));
        assert_eq!(c.max_seq_length, Some(256));
        // Another model's pooling config: refused, naming both sizes.
        let e = read(&model, 384).unwrap_err().to_string();
        assert!(e.contains("64") && e.contains("384"), "{e}");
        // A Dense module bert-edge does not run: recorded, not dropped.
        write(
            &dir,
            "modules.json",
            r#"[{"path":"2_Dense","type":"sentence_transformers.models.Dense"}]"#,
        );
        let c = read(&model, 64).unwrap().unwrap();
        assert_eq!(c.unsupported, ["sentence_transformers.models.Dense"]);
        assert_eq!(c.pooling, None, "modules.json names no Pooling module");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read(&model, 64).unwrap().is_none());
    }
}
