//! Text in: bert-base-chinese tokenization into the fixed-length `int64` buffers the
//! runtime feeds to the model.
//!
//! [`BertTokenizer`] wraps the HuggingFace `tokenizers` crate loaded from the model's own
//! `tokenizer.json` (WordPiece, `BertNormalizer` with `lowercase = false`, template
//! `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]`). Output is bit-for-bit what the Python
//! `tokenizers` package gives with
//! `enable_truncation(max_length=N, strategy="longest_first")` and
//! `enable_padding(length=N, pad_id=0)`: truncation, post-processing and the special-token
//! count all come from the library itself; only the final copy into `i64` buffers and the
//! `[PAD]` fill are done here. `tests/tokenizer.rs` checks this against a Python-generated
//! golden corpus (`tests/data/tokenizer/goldens.jsonl`).
//!
//! The sequence length `N` is chosen per call (it is the length of the [`Inputs`]
//! buffers), so one tokenizer serves several compiled plan shapes.
//!
//! ```
//! use bert_edge::{tokenize::BertTokenizer, Inputs};
//! let tok = BertTokenizer::from_file("models/tokenizer.json")?;
//! let mut buf = Inputs::new(128); // allocate once, reuse for every request
//! let done = tok.encode_into("我爱学习", None, &mut buf)?;
//! assert_eq!(&buf.input_ids[..done.tokens], &[101, 2769, 4263, 2110, 739, 102]);
//! assert!(!done.truncated);
//! # Ok::<(), bert_edge::Error>(())
//! ```

use std::path::Path;

use tokenizers::utils::truncation::{
    truncate_encodings, TruncationDirection, TruncationParams, TruncationStrategy,
};
use tokenizers::{Encoding, PostProcessor, Tokenizer};

use crate::error::{guard, Error, Result};
use crate::runtime::Inputs;

mod model;
mod vocab;
pub use vocab::Piece;

/// What [`BertTokenizer::encode_into`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokenized {
    /// Real tokens written (special tokens included); the rest of the buffers is `[PAD]`.
    pub tokens: usize,
    /// Whether the text (or pair) had more tokens than fit and was cut (`longest_first`).
    pub truncated: bool,
    /// Tokens the text (or pair) has untruncated, special tokens included (what a service
    /// names when it refuses a text that is too long).
    pub full: usize,
}

/// Which end of a text loses tokens when it is too long (Hugging Face's
/// `truncation_side`; `Right` is the default everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Side {
    /// Keep the start, cut the end.
    #[default]
    Right,
    /// Keep the end, cut the start.
    Left,
}

/// The bert-base-chinese tokenizer, loaded from a HuggingFace `tokenizer.json`.
///
/// Immutable after loading: `encode*` take `&self`, so it can be shared between threads.
#[derive(Debug, Clone)]
pub struct BertTokenizer {
    inner: Tokenizer,
    pad_id: i64,
    added_single: usize,
    added_pair: usize,
}

impl BertTokenizer {
    /// Load a `tokenizer.json` (e.g. `models/tokenizer.json`).
    ///
    /// Errors with [`Error::BadModel`] if the file is missing, unreadable, not a valid
    /// tokenizer, or has no post-processor / `[PAD]` token.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::bad_model(format!("cannot read tokenizer {}: {e}", path.display()))
        })?;
        let inner = Tokenizer::from_bytes(&bytes).map_err(|e| {
            Error::bad_model(format!(
                "{} is not a valid tokenizer.json: {e}",
                path.display()
            ))
        })?;
        Self::from_tokenizer(inner, &path.display().to_string())
    }

    /// Load from the bytes of a `tokenizer.json` (e.g. `include_bytes!`-embedded on device).
    ///
    /// Errors with [`Error::BadModel`] as [`BertTokenizer::from_file`].
    pub fn from_bytes(json: &[u8]) -> Result<Self> {
        let inner = Tokenizer::from_bytes(json)
            .map_err(|e| Error::bad_model(format!("not a valid tokenizer.json: {e}")))?;
        Self::from_tokenizer(inner, "tokenizer.json bytes")
    }

    fn from_tokenizer(mut inner: Tokenizer, origin: &str) -> Result<Self> {
        // Truncation and padding are applied per call (N comes with the buffers); any
        // settings stored in the file would interfere with that.
        inner
            .with_truncation(None)
            .map_err(|e| Error::bad_model(format!("{origin}: {e}")))?;
        inner.with_padding(None);
        let processor = inner.get_post_processor().ok_or_else(|| {
            Error::bad_model(format!(
                "{origin}: no post_processor ([CLS]/[SEP] template) in tokenizer.json"
            ))
        })?;
        let added_single = processor.added_tokens(false);
        let added_pair = processor.added_tokens(true);
        let pad_id = inner.token_to_id("[PAD]").ok_or_else(|| {
            Error::bad_model(format!("{origin}: no [PAD] token in the vocabulary"))
        })?;
        Ok(BertTokenizer {
            inner,
            pad_id: i64::from(pad_id),
            added_single,
            added_pair,
        })
    }

    /// Smallest sequence length `N` accepted: the number of special tokens the template adds
    /// (2 for `[CLS] A [SEP]`, 3 for `[CLS] A [SEP] B [SEP]`), and at least 1.
    pub fn min_len(&self, pair: bool) -> usize {
        let added = if pair {
            self.added_pair
        } else {
            self.added_single
        };
        added.max(1)
    }

    /// Encode `text` (and optional second segment `pair`) into `out`'s token buffers,
    /// truncated and padded to `N = out.len()`. Returns the number of real tokens (the rest
    /// is `[PAD]`) and whether the input was truncated. `out.inputs_embeds` is left alone.
    ///
    /// Truncation is HuggingFace's `longest_first`: the longer segment loses tokens from its
    /// end first; `[CLS]`/`[SEP]` are always kept. Every element of `out` is overwritten,
    /// so a buffer can be reused across calls without clearing.
    ///
    /// Errors with [`Error::BadInput`] if the three buffers differ in length or `N` is
    /// smaller than [`BertTokenizer::min_len`] (`N < 2`, or `N < 3` with a pair); `out` is
    /// then left untouched.
    pub fn encode_into(
        &self,
        text: &str,
        pair: Option<&str>,
        out: &mut Inputs,
    ) -> Result<Tokenized> {
        self.encode_truncating(text, pair, out, Side::Right)
    }

    /// [`BertTokenizer::encode_into`], cutting a text that is too long at `side`.
    ///
    /// ```
    /// use bert_edge::{tokenize::{BertTokenizer, Side}, Inputs};
    /// let tok = BertTokenizer::from_file("models/tokenizer.json")?;
    /// let mut buf = Inputs::new(4);
    /// let done = tok.encode_truncating("我爱学习", None, &mut buf, Side::Left)?;
    /// assert_eq!(buf.input_ids, [101, 2110, 739, 102]); // [CLS] 学 习 [SEP]
    /// assert_eq!((done.tokens, done.truncated, done.full), (4, true, 6));
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn encode_truncating(
        &self,
        text: &str,
        pair: Option<&str>,
        out: &mut Inputs,
        side: Side,
    ) -> Result<Tokenized> {
        let n = self.check_buffers(out, pair.is_some())?;
        let (enc, full) = guard("the tokenizer", || {
            self.encode_raw(text, pair, n, false, side)
        })?;
        self.copy_into(&enc, full, out)
    }

    /// Like [`BertTokenizer::encode_into`] for one text, and also writes each position's
    /// span in `text` as **character** (Unicode scalar) offsets `(start, end)` into `offsets`
    /// (cleared first; `None` for `[CLS]`, `[SEP]` and padding), as Hugging Face's fast
    /// tokenizers report them to Python. What [`crate::heads::entities`] needs.
    ///
    /// ```
    /// use bert_edge::{tokenize::BertTokenizer, Inputs};
    /// let tok = BertTokenizer::from_file("models/tokenizer.json")?;
    /// let (mut buf, mut spans) = (Inputs::new(8), Vec::new());
    /// tok.encode_with_offsets("我爱 AI", &mut buf, &mut spans)?;
    /// assert_eq!(spans[..5], [None, Some((0, 1)), Some((1, 2)), Some((3, 5)), None]);
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn encode_with_offsets(
        &self,
        text: &str,
        out: &mut Inputs,
        offsets: &mut Vec<Option<(usize, usize)>>,
    ) -> Result<Tokenized> {
        let n = self.check_buffers(out, false)?;
        let (enc, full) = guard("the tokenizer", || {
            self.encode_raw(text, None, n, true, Side::Right)
        })?;
        let done = self.copy_into(&enc, full, out)?;
        offsets.clear();
        let special = enc.get_special_tokens_mask();
        offsets.extend(
            enc.get_offsets()
                .iter()
                .zip(special)
                .map(|(o, s)| (*s == 0).then_some(*o)),
        );
        offsets.resize(n, None);
        Ok(done)
    }

    /// Checks the buffers' lengths against each other and the special tokens; returns N.
    fn check_buffers(&self, out: &Inputs, pair: bool) -> Result<usize> {
        let n = out.input_ids.len();
        if out.attention_mask.len() != n || out.token_type_ids.len() != n {
            return Err(Error::input(
                crate::error::InputKind::Shape,
                format!(
                    "Inputs buffers differ in length: input_ids {n}, attention_mask {}, \
                 token_type_ids {}",
                    out.attention_mask.len(),
                    out.token_type_ids.len()
                ),
            ));
        }
        let min = self.min_len(pair);
        if n < min {
            return Err(Error::input(
                crate::error::InputKind::Range,
                format!(
                    "sequence length {n} is too small: {} needs at least {min} \
                 (room for the special tokens)",
                    if pair {
                        "[CLS] A [SEP] B [SEP]"
                    } else {
                        "[CLS] A [SEP]"
                    }
                ),
            ));
        }
        Ok(n)
    }

    /// Copies an encoding into the buffers and pads them.
    fn copy_into(&self, enc: &Encoding, full: usize, out: &mut Inputs) -> Result<Tokenized> {
        let n = out.input_ids.len();
        let ids = enc.get_ids();
        let mask = enc.get_attention_mask();
        let types = enc.get_type_ids();
        let real = ids.len();
        if real > n || mask.len() != real || types.len() != real {
            // Only possible if the post-processor adds more tokens than it announces.
            return Err(Error::bad_model(format!(
                "tokenizer produced {real} tokens for sequence length {n}"
            )));
        }
        for (dst, &src) in out.input_ids.iter_mut().zip(ids) {
            *dst = i64::from(src);
        }
        for (dst, &src) in out.attention_mask.iter_mut().zip(mask) {
            *dst = i64::from(src);
        }
        for (dst, &src) in out.token_type_ids.iter_mut().zip(types) {
            *dst = i64::from(src);
        }
        out.input_ids[real..].fill(self.pad_id);
        out.attention_mask[real..].fill(0);
        out.token_type_ids[real..].fill(0);
        Ok(Tokenized {
            tokens: real,
            truncated: full > real,
            full,
        })
    }

    /// Encode into freshly allocated buffers of length `n`; see
    /// [`BertTokenizer::encode_into`].
    pub fn encode(&self, text: &str, pair: Option<&str>, n: usize) -> Result<Inputs> {
        let mut out = Inputs::new(n);
        self.encode_into(text, pair, &mut out)?;
        Ok(out)
    }

    /// Tokenize, truncate to `n` tokens in total (special tokens included) at `side` and
    /// apply the `[CLS]`/`[SEP]` template; no padding; and how many tokens the text has
    /// untruncated. Requires `n >= added tokens`.
    fn encode_raw(
        &self,
        text: &str,
        pair: Option<&str>,
        n: usize,
        char_offsets: bool,
        side: Side,
    ) -> Result<(Encoding, usize)> {
        let tok_err = |e| Error::Engine(anyhow::anyhow!("tokenizer failed: {e}"));
        // No truncation/padding is configured on `inner`, so these are the raw word pieces.
        let first = if char_offsets {
            self.inner.encode_char_offsets(text, false)
        } else {
            self.inner.encode_fast(text, false)
        }
        .map_err(tok_err)?;
        let second = match pair {
            Some(p) => Some(self.inner.encode_fast(p, false).map_err(tok_err)?),
            None => None,
        };
        let added = if pair.is_some() {
            self.added_pair
        } else {
            self.added_single
        };
        // Same as `Tokenizer::post_process` with truncation set to `max_length = n`.
        let params = TruncationParams {
            max_length: n - added,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: match side {
                Side::Right => TruncationDirection::Right,
                Side::Left => TruncationDirection::Left,
            },
        };
        let words = first.len() + second.as_ref().map_or(0, |s| s.len());
        let (mut first, mut second) =
            truncate_encodings(first, second, &params).map_err(tok_err)?;
        // The cut-off tails ("overflowing") are never used. Left in place, the post-processor's
        // `Encoding::merge` pairs every overflow of A with every overflow of B (O(k1 * k2)
        // deep clones), which stalls for minutes on two long texts. Dropping them does not
        // change the kept tokens.
        drop(first.take_overflowing());
        if let Some(second) = second.as_mut() {
            drop(second.take_overflowing());
        }
        let processor = self.inner.get_post_processor().ok_or_else(|| {
            Error::bad_model("tokenizer.json has no post_processor ([CLS]/[SEP] template)")
        })?;
        let enc = processor.process(first, second, true).map_err(tok_err)?;
        Ok((enc, words + added))
    }
}
