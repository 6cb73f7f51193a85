//! [`WordEmbeddings::from_onnx`]: an ids export's word-embedding table, in f32.

use super::proto::{gather_table, initializer, read_proto};
use crate::error::{Error, Result};
use crate::runtime::WordEmbeddings;
use std::path::Path;
use tract_onnx::pb;
use tract_onnx::prelude::*;

impl WordEmbeddings {
    /// Reads the `word_embeddings` table (`[vocab, hidden]`) out of an `input_ids` export, in
    /// f32 whatever the file stores (f16 tables are widened, int8 tables dequantized with the
    /// graph's own scale and zero point). Feature `onnx`.
    ///
    /// ```
    /// use bert_edge::WordEmbeddings;
    /// let table = WordEmbeddings::from_onnx("models/tiny/bert_ids_f32.onnx")?;
    /// assert_eq!((table.vocab_size(), table.hidden_size()), (21128, 64));
    /// # Ok::<(), bert_edge::Error>(())
    /// ```
    pub fn from_onnx(path: impl AsRef<Path>) -> Result<WordEmbeddings> {
        let path = path.as_ref();
        crate::error::guard("reading word embeddings", || word_embeddings(path))
    }
}

fn word_embeddings(path: &Path) -> Result<WordEmbeddings> {
    let proto = read_proto(path)?;
    let g = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::bad_model("ONNX file has no graph"))?;
    let (gather, table) = gather_table(g, "input_ids").ok_or_else(|| {
        Error::bad_model(format!(
            "{}: no word-embedding Gather on input_ids (an embeds graph has no table: use the ids export)",
            path.display()
        ))
    })?;
    let load = |t: &pb::TensorProto| -> Result<Tensor> {
        tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::MmapDataResolver, t, None)
            .map_err(|e| Error::bad_model(format!("initializer {}: {e}", t.name)))
    };
    let t = load(table)?;
    let (vocab, hidden) = match t.shape() {
        [v, h] => (*v, *h),
        s => {
            return Err(Error::bad_model(format!(
                "word embedding table of shape {s:?}"
            )))
        }
    };
    let values: Vec<f32> = if t.datum_type().is_float() {
        let t = t.cast_to::<f32>().map_err(Error::Engine)?;
        t.try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .map_err(Error::Engine)?
    } else {
        // onnxruntime's quantizer: int8/uint8 table → Gather → DequantizeLinear(scale, zero_point).
        let deq = g
            .node
            .iter()
            .find(|n| n.op_type == "DequantizeLinear" && n.input.first() == gather.output.first())
            .ok_or_else(|| {
                Error::bad_model("quantized word embeddings without a DequantizeLinear")
            })?;
        let scalar = |ix: usize| -> Result<f32> {
            match deq.input.get(ix).and_then(|name| initializer(g, name)) {
                Some(t) => load(t)?
                    .cast_to_scalar::<f32>()
                    .map_err(|e| Error::bad_model(format!("dequantization parameter: {e}"))),
                None => Ok(0.0),
            }
        };
        let (scale, zero) = (scalar(1)?, scalar(2)?);
        let t = t.cast_to::<f32>().map_err(Error::Engine)?;
        let q = t
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .map_err(Error::Engine)?;
        q.into_iter().map(|x| (x - zero) * scale).collect()
    };
    WordEmbeddings::new(vocab, hidden, values)
}
