//! `BertConfig`: the fields of a HuggingFace `config.json` this crate needs.
//!
//! Mirrors `transformers.BertConfig`; read from the file, never duplicated as constants.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// The architecture numbers of a BERT model, as in its `config.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    /// Size of the word-piece vocabulary (21128 for bert-base-chinese).
    pub vocab_size: usize,
    /// Width of every hidden state (768 for bert-base-chinese).
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Longest sequence the position table covers (512).
    pub max_position_embeddings: usize,
    /// Number of token types (segments A/B: 2).
    pub type_vocab_size: usize,
    /// Epsilon of every LayerNorm.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Id of `[PAD]`.
    #[serde(default)]
    pub pad_token_id: u32,
}

fn default_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// Reads a `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::bad_model(format!("cannot read config {}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| Error::bad_model(format!("{}: {e}", path.display())))
    }

    /// Parses the text of a `config.json`.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::bad_model(format!("invalid BERT config: {e}")))
    }
}
