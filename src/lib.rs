//! # bert-edge
//!
//! BERT-base-chinese on small ARM boards with the [tract](https://github.com/sonos/tract)
//! engine: a plan pinned to a fixed (batch, sequence length) and optimized once, then run
//! again and again on buffers the caller owns.
//!
//! The crate has one seam. **Translate time** ([`translate`], feature `onnx`, host or
//! start-up): read a BERT ONNX export, detect its flavour (`input_ids` or `inputs_embeds`)
//! and variant (f32 / f16 / int8), pin input shapes, apply the fixes these exports need,
//! optimize. **Run time** ([`runtime`]): a [`Plan`] shared by [`Encoder`]s, each owning one
//! tract state and its input tensors; a call writes `last_hidden_state` and `pooler_output`
//! into the caller's slices and allocates nothing in this crate's code.
//!
//! ```
//! # fn main() -> Result<(), bert_edge::Error> {
//! # #[cfg(feature = "onnx")] {
//! use bert_edge::{load_onnx, Encoder, PlanOptions};
//! use std::sync::Arc;
//!
//! let plan = Arc::new(load_onnx("models/tiny/bert_ids_f32.onnx", &PlanOptions::new(8))?);
//! let mut encoder = Encoder::new(plan.clone())?;
//! // "我爱学习" as the bert-base-chinese tokenizer gives it, padded to 8.
//! let ids = [101i64, 2769, 4263, 2110, 739, 102, 0, 0];
//! let mask = [1i64, 1, 1, 1, 1, 1, 0, 0];
//! let types = [0i64; 8];
//! let mut hidden = vec![0f32; plan.hidden_len()];
//! let mut pooled = vec![0f32; plan.pooled_len()];
//! encoder.run_ids(&ids, &mask, &types, &mut hidden, &mut pooled)?;
//! assert!(pooled.iter().all(|v| v.is_finite()));
//! # }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod alloc_count;
pub mod config;
pub mod error;
pub mod runtime;
#[cfg(feature = "tokenizer")]
pub mod tokenize;
#[cfg(feature = "onnx")]
pub mod translate;

pub use config::BertConfig;
pub use error::{Error, Result};
pub use runtime::{
    load_archive, load_archive_with, save_archive, Encoder, F16Compute, Flavour, Plan, PlanInfo,
    TokenValue, Variant, WordEmbeddings,
};
#[cfg(feature = "onnx")]
pub use translate::{inspect_onnx, load_onnx, word_embeddings_from_onnx, PlanOptions};

/// Sequence length used for an ONNX export when the caller does not say (archives carry theirs).
pub const DEFAULT_SEQ: usize = 128;

/// Loads a model by file: an ONNX export (`.onnx`, needs the `onnx` feature) is translated
/// and optimized; anything else is read as a precompiled archive (`bert-edge compile`).
///
/// `seq` defaults to [`DEFAULT_SEQ`] for ONNX and must match an archive's; `variant` and
/// `flavour`, when given, are checked against (or, f32 → f16 only, converted from) the file.
pub fn load_model(
    path: impl AsRef<std::path::Path>,
    seq: Option<usize>,
    variant: Option<Variant>,
    flavour: Option<Flavour>,
) -> Result<Plan> {
    load_model_with(path, seq, variant, flavour, F16Compute::Auto)
}

/// [`load_model`] choosing what an f16 plan computes in ([`F16Compute`]; `Auto` = f32 where
/// the CPU has no f16 arithmetic, native f16 where it has).
pub fn load_model_with(
    path: impl AsRef<std::path::Path>,
    seq: Option<usize>,
    variant: Option<Variant>,
    flavour: Option<Flavour>,
    f16: F16Compute,
) -> Result<Plan> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(Error::BadModel(format!(
            "no model file at {}",
            path.display()
        )));
    }
    if path.extension().and_then(|e| e.to_str()) == Some("onnx") {
        #[cfg(feature = "onnx")]
        {
            let mut opts = PlanOptions::new(seq.unwrap_or(DEFAULT_SEQ));
            opts.variant = variant;
            opts.flavour = flavour;
            opts.f16_compute = f16;
            return load_onnx(path, &opts);
        }
        #[cfg(not(feature = "onnx"))]
        return Err(Error::BadModel(format!(
            "{}: this build has no ONNX importer (feature `onnx`); compile the model with \
             `bert-edge compile` on a host and load the archive",
            path.display()
        )));
    }
    let plan = load_archive_with(path, seq, flavour, f16)?;
    plan.expect(flavour, variant)?;
    Ok(plan)
}
