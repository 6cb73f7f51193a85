//! One small typed error at the library boundary: [`Error`] (also at the crate root), and the
//! kinds of a bad input, [`InputKind`].
//!
//! Callers match on the kind: bad input (their buffers), bad model (the file they pointed
//! at), I/O (reading or writing a file), or an engine failure (tract itself, including a
//! panic inside it, which is caught here and never crosses the crate boundary).

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// What went wrong, at the level a caller can act on.
///
/// ```
/// use bert_edge::{Error, LoadOptions, Plan};
///
/// match Plan::load("no/such/model.onnx", &LoadOptions::new()) {
///     Err(Error::Io { path, .. }) => assert!(path.ends_with("model.onnx")),
///     other => panic!("expected an I/O error, got {other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The caller's buffers or values are wrong; [`InputError::kind`] says how.
    BadInput(InputError),
    /// The options asked for do not fit: a zero count, a sequence length over the model's
    /// positions or another than an archive's, an unknown name (variant, pooling, task…).
    BadOptions(String),
    /// The model file is not a BERT export / archive, or not the asked variant or shape.
    BadModel(String),
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// tract failed (or panicked) while translating or running a model that looked valid.
    Engine(anyhow::Error),
    /// Loading the model would need more memory than the system has available (checked
    /// before the load starts, so the process is not killed halfway by the OOM killer).
    OutOfMemory {
        /// Estimated peak of the load, in MiB.
        need_mb: u64,
        /// What the system (or the cgroup) has available, in MiB.
        available_mb: u64,
    },
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// How a caller's input is wrong ([`Error::BadInput`]): match on this, not on the wording.
///
/// ```
/// use bert_edge::{error::InputKind, Encoder, Error, Input, LoadOptions, Plan};
/// let plan = std::sync::Arc::new(Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(4))?);
/// let mut out = plan.outputs();
/// let r = Encoder::new(plan)?.run(Input::Ids { input_ids: &[101i64, 2769, 102, 0], attention_mask: &[0; 4], token_type_ids: &[0; 4] }, &mut out);
/// assert!(matches!(r, Err(Error::BadInput(e)) if e.kind == InputKind::EmptyRow));
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputKind {
    /// A buffer's length does not fit the plan (batch × N, × hidden, the output buffers).
    Shape,
    /// A value outside its range: a token id, type or mask value, a row, a length, a count.
    Range,
    /// A row with no real token (its attention mask all zeros).
    EmptyRow,
    /// An `inputs_embeds` value that is NaN or infinite.
    NotFinite,
    /// Something the plan's graph cannot do: the other flavour's input, token types for a graph
    /// without them, a pooling or head whose output the graph lacks, an unknown prompt.
    Unsupported,
    /// A text a head cannot take (fill-mask without `[MASK]`).
    Text,
}

/// A [`Error::BadInput`]: its kind and what exactly is wrong.
///
/// ```
/// use bert_edge::error::{InputError, InputKind};
/// let e = InputError { kind: InputKind::Range, message: "ids[3] = 99999 is out of range".into() };
/// assert_eq!(e.to_string(), "ids[3] = 99999 is out of range");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// How the input is wrong.
    pub kind: InputKind,
    /// What exactly, for a person.
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    pub(crate) fn input(kind: InputKind, msg: impl Into<String>) -> Self {
        Error::BadInput(InputError {
            kind,
            message: msg.into(),
        })
    }
    pub(crate) fn bad_options(msg: impl Into<String>) -> Self {
        Error::BadOptions(msg.into())
    }
    pub(crate) fn bad_model(msg: impl Into<String>) -> Self {
        Error::BadModel(msg.into())
    }
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadInput(m) => write!(f, "bad input: {m}"),
            Error::BadOptions(m) => write!(f, "bad options: {m}"),
            Error::BadModel(m) => write!(f, "bad model: {m}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Engine(e) => write!(f, "engine error: {e:#}"),
            Error::OutOfMemory {
                need_mb,
                available_mb,
            } => write!(
                f,
                "out of memory: loading this model needs about {need_mb} MiB, only \
                 {available_mb} MiB are available (a Raspberry Pi 3 has 1 GB in all: use an int8 \
                 or f16 archive there)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Engine(e) => Some(e.as_ref()),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Engine(e)
    }
}

/// Runs `f`, turning a panic inside it (tract, the tokenizer) into [`Error::Engine`].
///
/// Every public entry point that calls into a dependency goes through this, so a panic
/// there never unwinds into the caller (a long-running service keeps serving). With
/// `panic = "abort"` nothing can be caught; the crate's profiles keep `unwind`.
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            Err(Error::Engine(anyhow::anyhow!("{what} panicked: {msg}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_engine_error() {
        let r: Result<()> = guard("test op", || panic!("index out of bounds"));
        match r {
            Err(Error::Engine(e)) => {
                let m = e.to_string();
                assert!(m.contains("test op panicked: index out of bounds"), "{m}");
            }
            other => panic!("expected Engine, got {other:?}"),
        }
        assert_eq!(guard("fine", || Ok(3)).unwrap(), 3);
    }
}
