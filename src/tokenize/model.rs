//! The tokenizer of a model: the plan's own `tokenizer.json` (given, beside the model, one
//! directory up, or bundled in an archive), checked against the model's vocabulary.

use super::BertTokenizer;
use crate::error::{Error, Result};
use std::path::Path;
use tokenizers::Tokenizer;

impl BertTokenizer {
    /// The tokenizer of `plan`'s model ([`crate::Plan::tokenizer`]: given, beside the model,
    /// or bundled in its archive), checked against the model: its vocabulary must fit the
    /// word-embedding table (at most the table's size, and within 128 of it: tables are
    /// padded to a multiple of 64 or 128 at most). A mismatch is [`Error::BadModel`] naming
    /// both sizes; no tokenizer at all is [`Error::BadModel`] saying where it was looked for.
    ///
    /// ```
    /// # #[cfg(feature = "onnx")] {
    /// use bert_edge::{tokenize::BertTokenizer, LoadOptions, Plan};
    /// // models/tiny/ has no tokenizer.json; one directory up, models/tokenizer.json is the
    /// // bert-base-chinese one.
    /// let plan = Plan::load("models/tiny/bert_ids_f32.onnx", &LoadOptions::new().seq(8))?;
    /// assert!(plan.tokenizer().unwrap().0.ends_with("models/tokenizer.json"));
    /// let tok = BertTokenizer::for_plan(&plan)?;
    /// assert_eq!(tok.vocab_size(), 21128);
    /// # }
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn for_plan(plan: &crate::Plan) -> Result<Self> {
        let (origin, json) = plan.tokenizer().ok_or_else(|| {
            Error::bad_model(
                "no tokenizer.json beside the model file or one directory up, and none \
                 bundled in it: give the model's own (--tokenizer FILE)",
            )
        })?;
        let inner = Tokenizer::from_bytes(json).map_err(|e| {
            Error::bad_model(format!("{origin} is not a valid tokenizer.json: {e}"))
        })?;
        let tok = Self::from_tokenizer(inner, origin)?;
        if let Some(table) = plan.info().vocab_size {
            let v = tok.vocab_size();
            if v > table || table - v >= 128 {
                return Err(Error::bad_model(format!(
                    "tokenizer {origin} has a vocabulary of {v} tokens, the model's word \
                     embedding table has {table} rows: it is another model's tokenizer \
                     (give the model's own with --tokenizer FILE)"
                )));
            }
        }
        Ok(tok)
    }

    /// The tokenizer for the ONNX export at `model` without loading a plan (`embed-lookup`):
    /// `explicit`, else `tokenizer.json` beside `model` or one directory up, as
    /// [`crate::Plan::tokenizer`] finds it; an error if there is none.
    pub fn for_model_file(explicit: Option<&Path>, model: &Path) -> Result<Self> {
        let file = crate::runtime::tokenizer_file::find(explicit, model)?.ok_or_else(|| {
            Error::bad_model(format!(
                "no tokenizer.json beside {} or one directory up: give the model's own \
                 (--tokenizer FILE)",
                model.display()
            ))
        })?;
        let inner = Tokenizer::from_bytes(&file.json).map_err(|e| {
            Error::bad_model(format!(
                "{} is not a valid tokenizer.json: {e}",
                file.origin
            ))
        })?;
        Self::from_tokenizer(inner, &file.origin)
    }
}
