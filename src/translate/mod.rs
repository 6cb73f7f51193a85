//! Translate time: ONNX export → optimized, shape-pinned tract model (host, or once at start-up).
//!
//! Steps, in order: read the protobuf, check it is a BERT export and detect its flavour and
//! variant from the graph itself, parse it with tract, pin the input shapes, apply the
//! fixes these exports need (one file each under `fixes/`, with its reason), convert
//! precision if asked, declutter, optimize.

mod fixes;
mod onnx;

pub use fixes::Fixes;
pub use onnx::{
    inspect_onnx, load_onnx, translate_onnx, word_embeddings_from_onnx, OnnxFacts, PlanOptions,
};
