//! `WordEmbeddings`: the model's own `word_embeddings` table, for building `inputs_embeds`.
//!
//! `inputs_embeds` replaces only the word-embedding lookup of BERT (HF `BertEmbeddings`):
//! position and token-type embeddings are still added inside the graph. So
//! `word_embeddings[ids]` fed to an embeds plan gives the ids plan's output.

use crate::error::{Error, Result};

/// A `[vocab, hidden]` f32 table: `word_embeddings[ids]` is what an embeds plan takes.
///
/// ```
/// use bert_edge::WordEmbeddings;
/// let table = WordEmbeddings::new(3, 2, vec![0.0, 0.1, 1.0, 1.1, 2.0, 2.1])?;
/// let mut out = [0f32; 4];
/// table.lookup_into(&[2u32, 0], &mut out)?;
/// assert_eq!(out, [2.0, 2.1, 0.0, 0.1]);
/// # Ok::<(), bert_edge::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct WordEmbeddings {
    vocab: usize,
    hidden: usize,
    table: Vec<f32>,
}

impl WordEmbeddings {
    /// Wraps a row-major `[vocab, hidden]` table.
    pub fn new(vocab: usize, hidden: usize, table: Vec<f32>) -> Result<Self> {
        if vocab == 0 || hidden == 0 || table.len() != vocab * hidden {
            return Err(Error::bad_model(format!(
                "word embedding table of {} values is not {vocab}×{hidden}",
                table.len()
            )));
        }
        Ok(WordEmbeddings {
            vocab,
            hidden,
            table,
        })
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    /// Embedding width.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// The row of one id.
    pub fn row(&self, id: usize) -> Option<&[f32]> {
        (id < self.vocab).then(|| &self.table[id * self.hidden..(id + 1) * self.hidden])
    }

    /// Writes `word_embeddings[ids]` into `out` (ids.len() × hidden). No allocation.
    pub fn lookup_into<T: Copy + Into<i64>>(&self, ids: &[T], out: &mut [f32]) -> Result<()> {
        if out.len() != ids.len() * self.hidden {
            return Err(Error::input(
                crate::error::InputKind::Shape,
                format!(
                    "output buffer has {} values, {} ids × {} need {}",
                    out.len(),
                    ids.len(),
                    self.hidden,
                    ids.len() * self.hidden
                ),
            ));
        }
        for (i, (id, dst)) in ids.iter().zip(out.chunks_mut(self.hidden)).enumerate() {
            let v: i64 = (*id).into();
            let row = usize::try_from(v)
                .ok()
                .and_then(|u| self.row(u))
                .ok_or_else(|| {
                    Error::input(
                        crate::error::InputKind::Range,
                        format!("ids[{i}] = {v} is out of range 0..{}", self.vocab),
                    )
                })?;
            dst.copy_from_slice(row);
        }
        Ok(())
    }
}
