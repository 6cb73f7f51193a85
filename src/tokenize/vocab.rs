//! The vocabulary side of the tokenizer: ids and tokens, pieces with their spans (the
//! service's `/tokenize`), decoding.

use super::BertTokenizer;
use crate::error::{guard, Error, Result};

/// One token of [`BertTokenizer::pieces`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Vocabulary id.
    pub id: u32,
    /// The token as the vocabulary spells it (`##` continuation prefix included).
    pub token: String,
    /// `[CLS]`, `[SEP]` and the like.
    pub special: bool,
    /// Byte span in the text; `None` for a special token.
    pub span: Option<(usize, usize)>,
}

impl BertTokenizer {
    /// `text`'s tokens as Hugging Face's text-embeddings-inference `/tokenize` lists them,
    /// untruncated: id, token, whether it is a special token, and (for a real token) its span
    /// in `text` as **byte** offsets. `special`: with `[CLS]` / `[SEP]`.
    ///
    /// ```
    /// use bert_edge::tokenize::BertTokenizer;
    /// let tok = BertTokenizer::from_file("models/tokenizer.json")?;
    /// let p = tok.pieces("我爱", true)?;
    /// assert_eq!(p.len(), 4);
    /// assert_eq!((p[0].id, p[0].special, p[0].span), (101, true, None));
    /// assert_eq!((p[2].id, p[2].token.as_str(), p[2].span), (4263, "爱", Some((3, 6))));
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn pieces(&self, text: &str, special: bool) -> Result<Vec<Piece>> {
        let enc = guard("the tokenizer", || {
            self.inner
                .encode(text, special)
                .map_err(|e| Error::Engine(anyhow::anyhow!("tokenizer failed: {e}")))
        })?;
        let specials = enc.get_special_tokens_mask();
        Ok(enc
            .get_ids()
            .iter()
            .zip(enc.get_tokens())
            .zip(enc.get_offsets().iter().zip(specials))
            .map(|((&id, token), (&span, &s))| Piece {
                id,
                token: token.clone(),
                special: s == 1,
                span: (s == 0).then_some(span),
            })
            .collect())
    }

    /// sentence-transformers' `prompt_length` of `prompt` in rows of `n` positions: `[CLS]` and
    /// the prompt's pieces, the positions a pooling with `include_prompt: false` leaves out.
    ///
    /// ```
    /// use bert_edge::tokenize::BertTokenizer;
    /// let tok = BertTokenizer::from_file("models/tokenizer.json")?;
    /// assert_eq!(tok.prompt_length("查询：", 128)?, 4); // [CLS] 查 询 ：
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn prompt_length(&self, prompt: &str, n: usize) -> Result<usize> {
        let mut row = crate::runtime::Inputs::new(n);
        Ok(self
            .encode_into(prompt, None, &mut row)?
            .tokens
            .saturating_sub(1))
    }

    /// Vocabulary size including added special tokens (21128 for bert-base-chinese).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token string (e.g. `"[CLS]"` → 101, `"我"` → 2769), if in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token string of an id (e.g. 2769 → `"我"`), if in range.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Id used for padding (`[PAD]`, 0 for bert-base-chinese).
    pub fn pad_id(&self) -> i64 {
        self.pad_id
    }

    /// Token ids → text, as Hugging Face's `tokenizer.decode` (the file's WordPiece decoder:
    /// `##` pieces joined, tokens otherwise separated by spaces, punctuation spaces cleaned).
    ///
    /// ```
    /// let tok = bert_edge::tokenize::BertTokenizer::from_file("models/tokenizer.json")?;
    /// assert_eq!(tok.decode(&[101, 2769, 4263, 102], true)?, "我 爱");
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        guard("the tokenizer", || {
            self.inner
                .decode(ids, skip_special_tokens)
                .map_err(|e| Error::Engine(anyhow::anyhow!("decoding ids: {e}")))
        })
    }

    /// Tokens → text with the file's decoder, as Hugging Face's
    /// `tokenizer.convert_tokens_to_string` (tokens joined by spaces if it has none).
    pub fn tokens_to_string(&self, tokens: Vec<String>) -> Result<String> {
        use tokenizers::Decoder;
        guard("the tokenizer", || match self.inner.get_decoder() {
            Some(d) => d
                .decode(tokens)
                .map_err(|e| Error::Engine(anyhow::anyhow!("decoding tokens: {e}"))),
            None => Ok(tokens.join(" ")),
        })
    }
}
