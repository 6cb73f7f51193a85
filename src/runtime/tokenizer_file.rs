//! The model's own `tokenizer.json`: the file asked for ([`crate::LoadOptions::tokenizer`]),
//! else `tokenizer.json` beside the model file or one level up (the hub's `onnx/` layout), else
//! the one an archive carries (`bert-edge compile` bundles it). Never the working directory's:
//! a tokenizer of another model gives ids that mean other words, silently.

use crate::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;
use tract_core::internal::*;

const KEY: &str = "bert_edge.tokenizer";
const ORIGIN_KEY: &str = "bert_edge.tokenizer_origin";

/// A tokenizer.json's bytes and where they came from.
#[derive(Debug, Clone)]
pub(crate) struct TokenizerFile {
    pub origin: String,
    pub json: Arc<[u8]>,
}

fn read(path: &Path) -> Result<TokenizerFile> {
    let json = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(TokenizerFile {
        origin: path.display().to_string(),
        json: json.into(),
    })
}

/// The tokenizer file for the model at `model`: `explicit` (which must exist), else
/// `tokenizer.json` beside it or one directory up; `None` if there is none.
pub(crate) fn find(explicit: Option<&Path>, model: &Path) -> Result<Option<TokenizerFile>> {
    if let Some(p) = explicit {
        return read(p).map(Some);
    }
    let dir = model.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let candidates = [
        Some(dir.join("tokenizer.json")),
        dir.parent().map(|d| d.join("tokenizer.json")),
    ];
    match candidates.into_iter().flatten().find(|p| p.is_file()) {
        Some(p) => read(&p).map(Some),
        None => Ok(None),
    }
}

/// Stores `t` in the model's properties (hex: NNEF string literals do not keep every
/// character), so an archive written from the model carries it.
#[cfg_attr(not(feature = "onnx"), allow(dead_code))] // written at translate time only
pub(crate) fn write_property(model: &mut TypedModel, t: &TokenizerFile) {
    let hex = super::properties::to_hex(&t.json);
    model.properties.insert(KEY.into(), Arc::new(tensor0(hex)));
    let origin = t.origin.clone();
    model
        .properties
        .insert(ORIGIN_KEY.into(), Arc::new(tensor0(origin)));
}

impl TokenizerFile {
    /// Says that this one came bundled in `archive`.
    pub(crate) fn bundled_in(self, archive: &Path) -> TokenizerFile {
        TokenizerFile {
            origin: format!("bundled in {} (from {})", archive.display(), self.origin),
            json: self.json,
        }
    }
}

/// The tokenizer a model's properties carry, if any (its origin as written).
pub(crate) fn read_property(model: &TypedModel) -> Result<Option<TokenizerFile>> {
    let text = |key: &str| super::archive::string_property(model, key);
    let Some(hex) = text(KEY) else {
        return Ok(None);
    };
    let bad = || Error::bad_model("the archive's bundled tokenizer is corrupt");
    let json = super::properties::from_hex(&hex);
    Ok(Some(TokenizerFile {
        origin: text(ORIGIN_KEY).unwrap_or_default(),
        json: json.ok_or_else(bad)?.into(),
    }))
}
