//! What kind of graph a plan runs: [`Flavour`] (its first input) and [`Variant`] (its numbers).

use crate::error::{Error, Result};
use std::fmt;

/// Which first input the graph takes.
///
/// ```
/// use bert_edge::Flavour;
/// assert_eq!("embeds".parse::<Flavour>()?, Flavour::Embeds);
/// assert_eq!(Flavour::Ids.input_name(), "input_ids");
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// `input_ids` [batch, seq] int64: the graph looks up its own word embeddings.
    Ids,
    /// `inputs_embeds` [batch, seq, hidden] f32: the caller supplies the word embeddings.
    Embeds,
}

impl Flavour {
    /// The ONNX input name of the first input.
    pub fn input_name(self) -> &'static str {
        match self {
            Flavour::Ids => "input_ids",
            Flavour::Embeds => "inputs_embeds",
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavour::Ids => "ids",
            Flavour::Embeds => "embeds",
        })
    }
}

impl std::str::FromStr for Flavour {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ids" | "input_ids" => Ok(Flavour::Ids),
            "embeds" | "inputs_embeds" => Ok(Flavour::Embeds),
            _ => Err(Error::bad_options(format!(
                "unknown flavour {s:?} (ids | embeds)"
            ))),
        }
    }
}

/// The numeric variant of a plan.
///
/// ```
/// use bert_edge::Variant;
/// assert_eq!("int8".parse::<Variant>()?, Variant::Int8);
/// assert_eq!(Variant::F16.to_string(), "f16");
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Everything in f32.
    F32,
    /// Weights and arithmetic in f16 (f32 at the graph's inputs and outputs).
    F16,
    /// Dynamic int8 quantization of the matmul weights.
    Int8,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::F32 => "f32",
            Variant::F16 => "f16",
            Variant::Int8 => "int8",
        })
    }
}

impl std::str::FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Variant::F32),
            "f16" => Ok(Variant::F16),
            "int8" => Ok(Variant::Int8),
            _ => Err(Error::bad_options(format!(
                "unknown variant {s:?} (f32 | f16 | int8)"
            ))),
        }
    }
}
