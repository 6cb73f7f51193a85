//! Run time: a plan already built, fixed-length buffers in, caller-owned buffers out.
//!
//! Nothing here imports ONNX: a device build links only this side (plus tract-core and
//! tract-nnef for precompiled archives).

pub(crate) mod archive;
mod embeddings;
mod encoder;
mod info;
mod input_cache;
mod io;
mod kinds;
mod load_memory;
pub(crate) mod memory_check;
pub(crate) mod optimize;
mod options;
mod plan;
mod properties;
mod sentence;
mod shapes;
mod signature;
mod threads;
pub(crate) mod tokenizer_file;
pub mod tuning;

pub use embeddings::WordEmbeddings;
pub use encoder::{Call, Encoder};
pub use info::PlanInfo;
pub use io::{Input, Inputs, Outputs};
pub use kinds::{Flavour, Variant};
pub(crate) use load_memory::LoadMemory;
pub use options::{F16Compute, Fixes, LoadOptions, DEFAULT_GRANULE, DEFAULT_SEQ};
pub use plan::Plan;
pub use sentence::{Pooling, SentenceConfig};
#[cfg(feature = "onnx")]
pub(crate) use shapes::{read_outputs, SEQ_SYMBOL};
#[cfg(feature = "onnx")]
pub(crate) use signature::task_of;
pub use signature::{OutputInfo, Role, Task};

use crate::error::{Error, Result};
use std::path::Path;

/// Writes `path` through a temporary file beside it: `write` fills the file, which is then
/// synced, renamed over `path`, and the directory synced. A crash, a kill or a full disk at
/// any point leaves the old `path` (or none) and at most a stray `*.partial` file, never a
/// truncated `path`.
pub(crate) fn atomic_write(
    path: &Path,
    write: impl FnOnce(std::fs::File) -> Result<std::fs::File>,
) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let file = write(file)?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        // Makes the rename itself durable; not every filesystem allows opening a directory.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
