//! Target 2: an HTTP request (method, path, headers, body as raw bytes) → the service's
//! request handling without sockets (`wire::parse_request`, then the endpoint code and a
//! worker running the tiny model), as `bert-edge serve` does it: every TEI and OpenAI route
//! (seeds in fuzz/seeds/http_request/).
#![no_main]
use bert_edge_cli::serve::Harness;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[path = "common.rs"]
mod common;
const TARGET: &str = "http_request";

static SERVICE: OnceLock<Harness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    common::init(TARGET);
    let h = SERVICE.get_or_init(|| {
        let model = common::root().join("models/tiny/bert_ids_f32.onnx");
        let args = ["--seq", "16", "--max-body", "65536", "--max-items", "4"];
        Harness::new(&model, &args).unwrap()
    });
    if let Some((status, bytes)) = h.handle_bytes(data) {
        assert!(!bytes.is_empty());
        // 500 is a bug of ours (a failed inference or a handler panic), never the client's.
        assert!(
            matches!(status, 200 | 400 | 404 | 405 | 413 | 422 | 424 | 429 | 431 | 501),
            "status {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
});
