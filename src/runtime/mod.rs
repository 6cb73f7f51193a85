//! Run time: a plan already built, fixed-length buffers in, caller-owned buffers out.
//!
//! Nothing here imports ONNX: a device build links only this side (plus tract-core and
//! tract-nnef for precompiled archives).

mod archive;
mod dyn_quant;
mod embeddings;
mod encoder;
mod f16_compute;
pub mod fold;
mod load_memory;
mod nnef_ext;
mod plan;

pub use archive::{load_archive, load_archive_with, nnef, save_archive, TRACT_VERSION};
pub use dyn_quant::DynQuantU8;
pub use embeddings::WordEmbeddings;
pub use encoder::{Encoder, TokenValue};
pub use f16_compute::{widen_to_f32, F16Compute};
pub(crate) use load_memory::LoadMemory;
pub use plan::{Flavour, Plan, PlanInfo, Variant};
