//! One small typed error at the library boundary.
//!
//! Callers match on the kind: bad input (their buffers), bad model (the file they
//! pointed at), or an engine failure (tract itself). The message says what and why.

use std::fmt;

/// What went wrong, at the level a caller can act on.
#[derive(Debug)]
pub enum Error {
    /// The caller's buffers or values are wrong (length, range, NaN, empty mask...).
    BadInput(String),
    /// The model file is missing, unreadable, not a BERT export, or not the asked variant.
    BadModel(String),
    /// tract failed while translating or running a model that looked valid.
    Engine(anyhow::Error),
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn bad_input(msg: impl Into<String>) -> Self {
        Error::BadInput(msg.into())
    }
    pub(crate) fn bad_model(msg: impl Into<String>) -> Self {
        Error::BadModel(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadInput(m) => write!(f, "bad input: {m}"),
            Error::BadModel(m) => write!(f, "bad model: {m}"),
            Error::Engine(e) => write!(f, "engine error: {e:#}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Engine(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Engine(e)
    }
}
