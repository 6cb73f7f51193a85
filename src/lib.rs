//! # bert-edge
//!
//! BERT-base-chinese on small ARM boards with the [tract](https://github.com/sonos/tract)
//! engine: a plan optimized once for any sequence length up to N, then run again and again on
//! buffers the caller owns, each call at its real length.
//!
//! The crate has one seam. **Translate time** (feature `onnx`, host or start-up): read a
//! BERT ONNX export, detect its flavour (`input_ids` or `inputs_embeds`) and variant
//! (f32 / f16 / int8), set input shapes (the sequence axis a symbol up to N), apply the rewrites these exports need
//! (`src/passes/`, one file per rewrite with its reason and test), optimize — or write a precompiled archive with [`compile`]. **Run time**:
//! a [`Plan`] shared by [`Encoder`]s, each owning one tract state and its input tensors; a
//! call writes the outputs into the caller's [`Outputs`] and allocates nothing in this
//! crate's code. [`Plan::load`] takes either an ONNX file or an archive.
//!
//! ```
//! # #[cfg(feature = "onnx")] {
//! use bert_edge::{Encoder, Input, LoadOptions, Plan};
//! use std::sync::Arc;
//!
//! let plan = Arc::new(Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?);
//! let mut encoder = Encoder::new(plan.clone())?; // one per worker thread
//! let mut out = plan.outputs(); // caller-owned, sized by the plan
//! // "我爱学习" as the bert-base-chinese tokenizer gives it, padded to 8.
//! let ids = [101i64, 2769, 4263, 2110, 739, 102, 0, 0];
//! let mask = [1i64, 1, 1, 1, 1, 1, 0, 0];
//! let types = [0i64; 8];
//! encoder.run(Input::Ids { input_ids: &ids, attention_mask: &mask, token_type_ids: &types }, &mut out)?;
//! assert!(out.pooler_output().is_some_and(|p| p.iter().all(|v| v.is_finite())));
//! # }
//! # Ok::<(), bert_edge::Error>(())
//! ```
#![deny(missing_docs)]
// House rule (issue #31): no function over 60 lines (clippy.toml), checked by clippy in CI.
#![warn(clippy::too_many_lines)]

pub mod error;
pub mod heads;
mod kernels;
mod load;
mod passes;
mod runtime;
#[cfg(feature = "tokenizer")]
pub mod tokenize;
#[cfg(feature = "onnx")]
mod translate;
pub mod unstable;

pub use error::{Error, Result};
pub use runtime::tuning;
pub use runtime::{
    Call, Encoder, F16Compute, Flavour, Input, Inputs, LoadOptions, OutputInfo, Outputs, Plan,
    PlanInfo, Role, SentenceConfig, Task, Variant, WordEmbeddings, DEFAULT_GRANULE, DEFAULT_SEQ,
};
#[cfg(feature = "onnx")]
pub use translate::compile;
