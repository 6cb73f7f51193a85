//! OpenAI's embeddings API, `POST /v1/embeddings` (and `/embeddings`): `input` as a string, a
//! list of strings or token ids; `encoding_format` `float` or `base64` (little-endian f32, what
//! the official SDK asks for by default); `dimensions`; `usage`; `model` echoed. Errors are
//! shaped as OpenAI's (`http.rs`).

use super::api;
use super::http::Reply;
use super::request::string;
use super::types::{Failure, Item, Shared};
use serde_json::{json, Value};
use std::sync::mpsc::SyncSender;

/// Base64 (standard alphabet, padded) of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[(n >> (18 - 6 * i)) as usize & 63] as char
            } else {
                '='
            });
        }
    }
    out
}

/// `POST /v1/embeddings`.
pub(super) fn embeddings(
    shared: &Shared,
    jobs: &SyncSender<Item>,
    v: &Value,
) -> Result<Reply, Failure> {
    let model = string(v, "model")?
        .unwrap_or(&shared.model.name)
        .to_string();
    string(v, "user")?;
    let b64 = match string(v, "encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(f) => {
            return Err(Failure::validation(format!(
                "\"encoding_format\" must be \"float\" or \"base64\", not {f:?}"
            )))
        }
    };
    let (vecs, headers, tokens) = api::vectors(shared, jobs, v, "input")?;
    let data: Vec<Value> = vecs
        .iter()
        .enumerate()
        .map(|(index, e)| {
            let embedding = if b64 {
                let bytes: Vec<u8> = e.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64(&bytes))
            } else {
                json!(e)
            };
            json!({"object": "embedding", "embedding": embedding, "index": index})
        })
        .collect();
    let body = json!({
        "object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    Reply::json(&body, headers)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(&1.0f32.to_le_bytes()), "AACAPw==");
    }
}
