//! [`PlanInfo`] as model properties (`bert_edge.*`): how an archive carries it.

use super::info::PlanInfo;
use super::shapes::read_outputs;
use super::signature::task_of;
use crate::error::{Error, Result};
use tract_core::internal::*;

/// Archive property layout version (2: outputs by role, labels, optional token types;
/// 3: plans of any length, `fixed_length`; 4: sentence-transformers config, tokenizer).
const FORMAT: i64 = 4;

impl PlanInfo {
    /// Stores the info as model properties, so a precompiled archive carries it.
    #[cfg_attr(not(feature = "onnx"), allow(dead_code))] // written at translate time only
    pub(crate) fn write_properties(&self, model: &mut TypedModel) {
        let p = |v: i64| Arc::new(tensor0(v));
        let props = &mut model.properties;
        let k = |s: &str| format!("{}{s}", Self::PROPERTY_PREFIX);
        props.insert(k("flavour"), Arc::new(tensor0(self.flavour.to_string())));
        props.insert(k("variant"), Arc::new(tensor0(self.variant.to_string())));
        props.insert(k("batch"), p(self.batch as i64));
        props.insert(k("seq"), p(self.seq as i64));
        props.insert(k("fixed_length"), p(self.fixed_length as i64));
        props.insert(k("hidden"), p(self.hidden as i64));
        props.insert(
            k("vocab_size"),
            p(self.vocab_size.map(|v| v as i64).unwrap_or(-1)),
        );
        props.insert(k("type_vocab_size"), p(self.type_vocab_size as i64));
        props.insert(k("token_types"), p(self.token_types as i64));
        props.insert(k("multi_label"), p(self.multi_label as i64));
        // Each label as the hex of its UTF-8 bytes, comma-separated: NNEF's string literals
        // do not keep every character (a "\n" reads back as "n").
        let hex: Vec<String> = self.labels.iter().map(|l| to_hex(l.as_bytes())).collect();
        props.insert(k("labels"), Arc::new(tensor0(hex.join(","))));
        if let Some(st) = &self.sentence {
            props.insert(k("sentence"), Arc::new(tensor0(st.encode())));
        }
        props.insert(k("format"), p(FORMAT));
    }

    /// Reads what [`PlanInfo::write_properties`] stored.
    pub(crate) fn from_properties(model: &TypedModel) -> Result<Self> {
        let props = Properties(model);
        let (int, text) = (|n: &str| props.int(n), |n: &str| props.text(n));
        let format = int("format")?;
        if !(2..=FORMAT).contains(&format) {
            return Err(Error::bad_model(
                "archive made by an incompatible bert-edge version",
            ));
        }
        let vocab = int("vocab_size")?;
        let labels = decode_labels(&text("labels")?)?;
        let (batch, seq, hidden) = (
            int("batch")? as usize,
            int("seq")? as usize,
            int("hidden")? as usize,
        );
        let vocab_size = (vocab > 0).then_some(vocab as usize);
        let outputs = read_outputs(model, (batch, seq, hidden), vocab_size)?;
        Ok(PlanInfo {
            flavour: text("flavour")?
                .parse()
                .map_err(|_| Error::bad_model("bad flavour property"))?,
            variant: text("variant")?
                .parse()
                .map_err(|_| Error::bad_model("bad variant property"))?,
            batch,
            seq,
            // Format 2 archives are all pinned.
            fixed_length: format < 3 || int("fixed_length")? != 0,
            hidden,
            vocab_size,
            type_vocab_size: int("type_vocab_size")? as usize,
            token_types: int("token_types")? != 0,
            task: task_of(&outputs)?,
            outputs,
            labels,
            multi_label: int("multi_label")? != 0,
            sentence: match props.get("sentence") {
                Ok(_) => Some(super::SentenceConfig::decode(&text("sentence")?)?),
                Err(_) => None,
            },
        })
    }
}

/// The `bert_edge.*` properties of an archive's model, read one by one.
struct Properties<'a>(&'a TypedModel);

impl Properties<'_> {
    fn get(&self, name: &str) -> Result<&Arc<Tensor>> {
        self.0
            .properties
            .get(&format!("{}{name}", PlanInfo::PROPERTY_PREFIX))
            .ok_or_else(|| {
                Error::bad_model(format!(
                    "archive lacks the bert-edge property {name:?}: not made by `bert-edge compile`"
                ))
            })
    }

    fn int(&self, name: &str) -> Result<i64> {
        self.get(name)?
            .cast_to_scalar::<i64>()
            .map_err(|e| Error::bad_model(format!("property {name}: {e}")))
    }

    fn text(&self, name: &str) -> Result<String> {
        self.get(name)?
            .try_as_plain_ram()
            .and_then(|v| v.to_scalar::<String>().cloned())
            .map_err(|e| Error::bad_model(format!("property {name}: {e}")))
    }
}

/// Bytes as lowercase hex: how a property keeps text NNEF's string literals would not
/// (a "\n" reads back as "n"): labels, the sentence-transformers config, the tokenizer.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut hex = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// What [`to_hex`] wrote; `None` if `hex` is not that.
pub(crate) fn from_hex(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}

/// The labels property: each label as the hex of its UTF-8 bytes, comma-separated.
fn decode_labels(labels: &str) -> Result<Vec<String>> {
    labels
        .split(',')
        .filter(|_| !labels.is_empty())
        .map(|h| from_hex(h).and_then(|b| String::from_utf8(b).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::bad_model("bad labels property"))
}
