//! [`Plan::load`]: the one place that sees both sides of the seam. The file's first bytes
//! say what it is: an archive goes to the run-time side's reader (`runtime::archive`), an ONNX
//! export to the importer (`translate`, feature `onnx`).

use crate::error::{Error, Result};
use crate::runtime::{archive, memory_check, tokenizer_file};
use crate::{LoadOptions, Plan};
use std::path::Path;

impl Plan {
    /// Loads a model: an ONNX export (translated and optimized; needs the `onnx` feature) or a
    /// precompiled archive written by [`crate::compile`], told apart by the file's content.
    ///
    /// ```
    /// # #[cfg(feature = "onnx")] {
    /// use bert_edge::{LoadOptions, Plan};
    /// let plan = Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?;
    /// assert_eq!(plan.info().hidden, 64);
    /// # }
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Plan> {
        let path = path.as_ref();
        crate::error::guard("loading the model", || match sniff(path)? {
            Format::Archive => {
                memory_check::check(path, false)?;
                let mut plan = archive::load(path, opts)?;
                // Given or beside the archive: it wins over the bundled one.
                let file = tokenizer_file::find(opts.tokenizer.as_deref(), path)?;
                let bundled = plan.tokenizer.take().map(|t| t.bundled_in(path));
                plan.tokenizer = file.or(bundled);
                Ok(plan)
            }
            #[cfg(feature = "onnx")]
            Format::Onnx => {
                memory_check::check(path, true)?;
                crate::translate::load_onnx(path, opts)
            }
            #[cfg(not(feature = "onnx"))]
            Format::Onnx => Err(Error::bad_model(format!(
                "{}: not a bert-edge archive, and this build has no ONNX importer (feature \
                 `onnx`): compile the model with `bert-edge compile` on a host",
                path.display()
            ))),
        })
    }
}

enum Format {
    Onnx,
    Archive,
}

/// ONNX (protobuf) or archive (tar, or gzip-compressed tar), from the first bytes.
fn sniff(path: &Path) -> Result<Format> {
    use std::io::Read;
    let mut head = Vec::with_capacity(262);
    std::fs::File::open(path)
        .and_then(|f| f.take(262).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let tar = head.get(257..262) == Some(b"ustar".as_slice());
    Ok(if gzip || tar {
        Format::Archive
    } else {
        Format::Onnx
    })
}
