//! `bert-edge serve` end to end: the real binary on loopback with the tiny fixture, checked
//! against the library (`Encoder` + `BertTokenizer`) for the same texts; concurrency, every
//! bad-input status, the 429 path, and SIGTERM with requests in flight.
//!
//! The client is a raw `TcpStream` writing HTTP/1.1 with `Connection: close` (tests only), so
//! malformed requests can be sent as well. Every socket has timeouts; every wait is bounded.
#![cfg(all(feature = "serve", feature = "onnx"))]

#[path = "../../tests/common/mod.rs"]
mod common;
mod server;
use bert_edge::tokenize::BertTokenizer;
use bert_edge::Encoder;
use common::*;
use serde_json::{json, Value};
use server::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The library's answer for the same text: what the server must return.
struct Reference {
    tok: BertTokenizer,
    enc: Encoder,
    hidden: usize,
}

impl Reference {
    fn new() -> Reference {
        let plan = Arc::new(load(&model("ids", "f32"), SEQ, 1));
        let hidden = plan.info().hidden;
        let tok = BertTokenizer::from_file(root().join("models/tokenizer.json")).unwrap();
        Reference {
            tok,
            enc: Encoder::new(plan).unwrap(),
            hidden,
        }
    }

    /// (the default embedding of a graph without sentence-transformers files: the mean of
    /// last_hidden_state over the real tokens; the pooler output; real tokens).
    fn embed(&mut self, text: &str, pair: Option<&str>) -> (Vec<f32>, Vec<f32>, usize) {
        let e = self.tok.encode(text, pair, SEQ).unwrap();
        let real = e.attention_mask.iter().filter(|&&m| m == 1).count();
        let (last, pooled) = run_ids(
            &mut self.enc,
            &e.input_ids,
            &e.attention_mask,
            &e.token_type_ids,
        )
        .unwrap();
        let mut mean = vec![0f32; self.hidden];
        for t in 0..real {
            for (m, v) in mean
                .iter_mut()
                .zip(&last[t * self.hidden..(t + 1) * self.hidden])
            {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= real as f32);
        (mean, pooled, real)
    }
}

fn long_text() -> String {
    "今天天气很好，我们一起去公园散步吧。".repeat(10)
}

#[test]
fn embed_and_openai_endpoints_equal_the_library() {
    let srv = Server::start(&["--workers", "2", "--auto-truncate"]);
    let mut r = Reference::new();
    let long = long_text();
    let r1 = r.embed("我爱学习", None);
    let r2 = r.embed(&long, None);
    let r3 = r.embed("问题是什么", Some("答案在这里"));

    let resp = srv.post(
        "/embed",
        &json!({"inputs": ["我爱学习", long, ["问题是什么", "答案在这里"]]}),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    let got = v.as_array().unwrap();
    assert_eq!(got.len(), 3);
    // TEI's default: normalized.
    assert_close(&vector(&got[0]), &normalized(&r1.0), "text");
    assert_close(
        &vector(&got[1]),
        &normalized(&r2.0),
        "long text (truncated)",
    );
    assert_close(&vector(&got[2]), &normalized(&r3.0), "text pair");
    assert_eq!(r1.2, 6);
    assert_eq!(r2.2, SEQ);
    assert_eq!(resp.header("x-truncated-inputs"), Some("1"));
    assert_eq!(
        resp.header("x-compute-tokens"),
        Some((6 + SEQ + r3.2).to_string().as_str())
    );
    for h in [
        "x-compute-time",
        "x-queue-time",
        "x-inference-time",
        "x-compute-characters",
    ] {
        assert!(
            resp.header(h).is_some_and(|v| v.parse::<u64>().is_ok()),
            "{h}"
        );
    }
    // A single string gives a list of one vector; normalize false gives the pooling as it is.
    let one = srv.post("/embed", &json!({"inputs": "我爱学习", "normalize": false}));
    assert_eq!(one.status, 200);
    assert_close(&vector(&one.json()[0]), &r1.0, "single string");
    // Matryoshka: the first 16 values, then normalized.
    let d = srv.post("/embed", &json!({"inputs": "我爱学习", "dimensions": 16}));
    assert_close(
        &vector(&d.json()[0]),
        &normalized(&r1.0[..16]),
        "dimensions 16",
    );
    // Token ids as given: the same vector as the text.
    let ids = srv.post(
        "/embed",
        &json!({"inputs": [[101, 2769, 4263, 2110, 739, 102]]}),
    );
    assert_eq!(ids.status, 200, "{}", String::from_utf8_lossy(&ids.body));
    assert_close(&vector(&ids.json()[0]), &normalized(&r1.0), "token ids");

    // OpenAI shape.
    let resp = srv.post(
        "/v1/embeddings",
        &json!({"input": ["我爱学习", long], "model": "whatever"}),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let v = resp.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "whatever", "the model asked for, echoed");
    assert_eq!(v["usage"]["prompt_tokens"], 6 + SEQ);
    assert_eq!(v["usage"]["total_tokens"], 6 + SEQ);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, (d, want)) in data.iter().zip([&r1.0, &r2.0]).enumerate() {
        assert_eq!(d["object"], "embedding");
        assert_eq!(d["index"], i);
        assert_close(&vector(&d["embedding"]), &normalized(want), "openai");
    }
    // base64: little-endian f32, what the official SDK asks for by default.
    let resp = srv.post(
        "/v1/embeddings",
        &json!({"input": "我爱学习", "encoding_format": "base64"}),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["model"], "bert_ids_f32");
    let b64 = resp.json()["data"][0]["embedding"]
        .as_str()
        .unwrap()
        .to_string();
    assert_close(&from_base64(&b64), &normalized(&r1.0), "openai base64");

    let h = srv.get("/health");
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
}

#[test]
fn mean_pooling_and_normalize() {
    let srv = Server::start(&["--workers", "1", "--pooling", "mean", "--normalize"]);
    let mut r = Reference::new();
    let (mean, _, _) = r.embed("今天天气很好", None);
    let resp = srv.post("/embed", &json!({"inputs": ["今天天气很好"]}));
    assert_eq!(resp.status, 200);
    let got = vector(&resp.json()[0]);
    assert_close(&got, &normalized(&mean), "mean + normalize");
    let norm = got.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    // TEI's per-request `normalize` overrides the server default.
    let resp = srv.post(
        "/embed",
        &json!({"inputs": ["今天天气很好"], "normalize": false}),
    );
    assert_eq!(resp.status, 200);
    assert_close(&vector(&resp.json()[0]), &mean, "mean, not normalized");
    let resp = srv.post("/v1/embeddings", &json!({"input": "今天天气很好"}));
    assert_close(
        &vector(&resp.json()["data"][0]["embedding"]),
        &normalized(&mean),
        "openai mean",
    );
}

#[test]
fn concurrent_clients_all_get_their_own_answers() {
    concurrent_clients(&[]);
}

/// The same with dynamic batching: texts of different requests and lengths share calls.
#[test]
fn concurrent_clients_with_dynamic_batching() {
    let m = concurrent_clients(&["--batch", "3", "--batch-wait-ms", "20"]);
    let count = |name: &str| -> usize {
        let line = m.lines().find(|l| l.starts_with(name)).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (texts, calls) = (
        count("bert_edge_inferences_total "),
        count("bert_edge_batches_total "),
    );
    assert!(
        calls < texts,
        "some calls carried several texts: {calls} calls for {texts} texts"
    );
    assert!(m.contains("batch=\"3\""), "{m}");
}

/// Clients sending 2-text requests to /embed and /v1/embeddings at once; every answer is the
/// library's for that text. Returns the /metrics page.
fn concurrent_clients(extra: &[&str]) -> String {
    const WORKERS: usize = 2;
    const CLIENTS: usize = 4 * WORKERS + 2;
    const ROUNDS: usize = 5;
    let mut args = vec!["--workers", "2"];
    args.extend_from_slice(extra);
    let srv = Server::start(&args);
    let mut r = Reference::new();
    let texts: Vec<String> = (0..CLIENTS * ROUNDS)
        .map(|i| format!("第{i}个句子：我爱学习{}", "。".repeat(i % 7)))
        .collect();
    let want: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| normalized(&r.embed(t, None).0))
        .collect();
    let (texts, want) = (Arc::new(texts), Arc::new(want));
    let addr = srv.addr;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (texts, want) = (texts.clone(), want.clone());
            std::thread::spawn(move || {
                for k in 0..ROUNDS {
                    let i = c * ROUNDS + k;
                    // Alternate endpoints and a 2-text request, so items from different
                    // requests interleave in the queue.
                    let j = (i + 1) % texts.len();
                    let body = json!({"inputs": [texts[i], texts[j]]});
                    let resp = http(addr, "POST", "/embed", &[], body.to_string().as_bytes());
                    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
                    let v = resp.json();
                    assert_close(&vector(&v[0]), &want[i], &format!("client {c} text {i}"));
                    assert_close(&vector(&v[1]), &want[j], &format!("client {c} text {j}"));
                    let body = json!({"input": texts[i]});
                    let resp = http(
                        addr,
                        "POST",
                        "/v1/embeddings",
                        &[],
                        body.to_string().as_bytes(),
                    );
                    assert_eq!(resp.status, 200);
                    assert_close(
                        &vector(&resp.json()["data"][0]["embedding"]),
                        &want[i],
                        "openai",
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client failed");
    }
    let m = String::from_utf8(srv.get("/metrics").body).unwrap();
    let n = CLIENTS * ROUNDS;
    assert!(
        m.contains(&format!(
            "bert_edge_requests_total{{endpoint=\"/embed\",status=\"200\"}} {n}"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "bert_edge_requests_total{{endpoint=\"/v1/embeddings\",status=\"200\"}} {n}"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!("bert_edge_inferences_total {}", 3 * n)),
        "{m}"
    );
    assert!(m.contains("bert_edge_queue_depth 0"), "{m}");
    assert!(
        m.contains(&format!(
            "bert_edge_request_duration_seconds_count {}",
            2 * n
        )),
        "{m}"
    );
    assert!(
        m.contains("# TYPE bert_edge_request_duration_seconds histogram"),
        "{m}"
    );
    assert!(
        m.contains("bert_edge_model_info{model=\"bert_ids_f32\",variant=\"f32\",task=\"feature-extraction\",seq=\"32\""),
        "{m}"
    );
    // Every matmul geometry's kernel and who chose it (issue #30).
    assert!(
        m.contains("bert_edge_kernel_info{geometry=\"F32xF32 m64 k64 n?\",kernel=\""),
        "{m}"
    );
    m
}

/// One single-text request per text to `path`, all sent at once (one thread each, released
/// together); the answers in the texts' order.
fn post_at_once(addr: SocketAddr, path: &'static str, texts: &[&str]) -> Vec<Resp> {
    let start = Arc::new(std::sync::Barrier::new(texts.len()));
    let clients: Vec<_> = texts
        .iter()
        .map(|t| {
            let (start, body) = (start.clone(), json!({ "inputs": t }).to_string());
            std::thread::spawn(move || {
                start.wait();
                http(addr, "POST", path, &[], body.as_bytes())
            })
        })
        .collect();
    clients.into_iter().map(|c| c.join().unwrap()).collect()
}

/// Dynamic batching keeps each text's answer its own: a text that fails after the batched
/// run (fill-mask without [MASK]) gets its 400, the texts it ran beside get their answers.
#[test]
fn a_failing_text_in_a_batch_fails_alone() {
    use bert_edge_cli::tasks::Head;
    let mlm_model = tiny().join("tasks/fill-mask/torch_f32.onnx");
    let srv = Server::start_on(
        &mlm_model,
        &["--workers", "1", "--batch", "4", "--batch-wait-ms", "1000"],
    );
    let texts = [
        "我爱[MASK]习",
        "今天[MASK]气很好",
        "没有面具",
        "[MASK]京是中国的首都",
    ];
    for (t, resp) in texts
        .iter()
        .zip(post_at_once(srv.addr, "/fill-mask", &texts))
    {
        if !t.contains("[MASK]") {
            assert_eq!(resp.status, 422, "{t}");
            assert!(resp.json()["error"].as_str().unwrap().contains("no [MASK]"));
            continue;
        }
        assert_eq!(
            resp.status,
            200,
            "{t}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let got = &resp.json()[0]["masks"][0];
        let want = &head_answer(&mlm_model, Head::FillMask { top_k: 5 }, t)["masks"][0];
        // Same tokens in the same order; scores to f32 rounding (a batch runs at its longest
        // row's length, the reference at this text's own).
        let (got, want) = (got.as_array().unwrap(), want.as_array().unwrap());
        assert_eq!(got.len(), want.len(), "{t}: answer lengths");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g["token"], w["token"], "{t}");
            assert_eq!(g["sequence"], w["sequence"], "{t}");
            let d = (g["score"].as_f64().unwrap() - w["score"].as_f64().unwrap()).abs();
            assert!(d <= 1e-5, "{t}: score off by {d}");
        }
    }
    let m = String::from_utf8(srv.get("/metrics").body).unwrap();
    assert!(m.contains("bert_edge_inferences_total 3"), "{m}");
    assert!(m.contains("bert_edge_inference_errors_total 1"), "{m}");
    let calls: usize = m
        .lines()
        .find_map(|l| l.strip_prefix("bert_edge_batches_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(calls <= 2, "4 texts at once, batch 4: {calls} calls\n{m}");
}

#[test]
fn bad_input_gets_its_status_and_the_server_keeps_serving() {
    let srv = Server::start(&[
        "--workers",
        "1",
        "--max-items",
        "4",
        "--max-text-bytes",
        "100",
        "--max-body",
        "4096",
    ]);
    let a = srv.addr;
    let post = |path: &str, body: &[u8]| http(a, "POST", path, &[], body);
    let mut invalid_utf8 = b"{\"inputs\": \"".to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, b'a']);
    invalid_utf8.extend_from_slice(b"\"}");
    let cases: Vec<(&str, Resp, u16)> = vec![
        (
            "malformed JSON",
            post("/embed", b"{\"inputs\": [\"a\""),
            400,
        ),
        ("not JSON at all", post("/embed", b"hello"), 400),
        ("empty body", post("/embed", b""), 400),
        ("invalid UTF-8", post("/embed", &invalid_utf8), 400),
        (
            "lone surrogate",
            post("/embed", br#"{"inputs": "\ud800"}"#),
            400,
        ),
        ("body not an object", post("/embed", b"[\"a\"]"), 422),
        ("missing inputs", post("/embed", b"{\"text\": \"a\"}"), 422),
        ("inputs a number", post("/embed", b"{\"inputs\": 3}"), 422),
        ("inputs null", post("/embed", b"{\"inputs\": null}"), 422),
        ("empty inputs", post("/embed", b"{\"inputs\": []}"), 400),
        (
            "ids not integers",
            post("/embed", b"{\"inputs\": [1.5, 2]}"),
            422,
        ),
        (
            "ids over the vocabulary",
            post("/embed", b"{\"inputs\": [101, 99999, 102]}"),
            422,
        ),
        (
            "list of lists of strings",
            post("/embed", b"{\"inputs\": [[\"a\", \"b\", \"c\"]]}"),
            422,
        ),
        (
            "pair of numbers",
            post("/embed", b"{\"inputs\": [[\"a\", 1]]}"),
            422,
        ),
        (
            "normalize not a bool",
            post("/embed", b"{\"inputs\": \"a\", \"normalize\": 1}"),
            422,
        ),
        (
            "dimensions over hidden",
            post("/embed", b"{\"inputs\": \"a\", \"dimensions\": 65}"),
            422,
        ),
        (
            "truncation_direction",
            post(
                "/embed",
                b"{\"inputs\": \"a\", \"truncation_direction\": \"up\"}",
            ),
            422,
        ),
        (
            "unknown prompt_name",
            post("/embed", b"{\"inputs\": \"a\", \"prompt_name\": \"q\"}"),
            422,
        ),
        (
            "openai ids not integers",
            post("/v1/embeddings", b"{\"input\": [[1.5, 2]]}"),
            422,
        ),
        (
            "openai model not a string",
            post("/v1/embeddings", b"{\"input\": \"a\", \"model\": 3}"),
            422,
        ),
        (
            "openai encoding_format",
            post(
                "/v1/embeddings",
                b"{\"input\": \"a\", \"encoding_format\": \"binary\"}",
            ),
            422,
        ),
        (
            "too many items",
            post("/embed", b"{\"inputs\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}"),
            422,
        ),
        (
            "predict on an embedding model",
            post("/predict", b"{\"inputs\": \"a\"}"),
            424,
        ),
        (
            "rerank on an embedding model",
            post("/rerank", b"{\"query\": \"a\", \"texts\": [\"b\"]}"),
            424,
        ),
        (
            "text too long",
            post(
                "/embed",
                json!({"inputs": "字".repeat(40)}).to_string().as_bytes(),
            ),
            413,
        ),
        (
            "pair too long",
            post(
                "/embed",
                json!({"inputs": [["字".repeat(20), "字".repeat(20)]]})
                    .to_string()
                    .as_bytes(),
            ),
            413,
        ),
        (
            "body too big",
            post(
                "/embed",
                json!({"inputs": ["a".repeat(5000)]}).to_string().as_bytes(),
            ),
            413,
        ),
        ("unknown path", post("/nope", b"{}"), 404),
        ("GET /embed", http(a, "GET", "/embed", &[], b""), 405),
        ("POST /health", post("/health", b""), 405),
    ];
    for (what, resp, want) in &cases {
        assert_eq!(
            resp.status,
            *want,
            "{what}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let v = resp.json();
        if resp.status == 404 || what.starts_with("openai") {
            assert!(v.get("error").is_some(), "{what}: no error field: {v}");
        } else {
            assert!(
                v["error"].is_string() && v["error_type"].is_string(),
                "{what}: {v}"
            );
        }
        let ok = srv.get("/health");
        assert_eq!(ok.status, 200, "after {what}");
    }
    // OpenAI-shaped errors on /v1.
    let v = post("/v1/embeddings", b"{").json();
    assert!(v["error"]["message"].is_string(), "{v}");
    // Chunked body over the limit (no Content-Length).
    let mut raw = format!("POST /embed HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
    for _ in 0..3 {
        raw.extend_from_slice(format!("800\r\n{}\r\n", "a".repeat(0x800)).as_bytes());
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(send_raw(a, &raw).status, 413, "chunked body too big");
    // Not HTTP at all: tiny_http answers 400 and closes; the server stays up.
    let garbage = send_raw(a, b"\x00\x01 garbage\r\n\r\n");
    assert_eq!(garbage.status, 400);
    // Still serving real work.
    let resp = post("/embed", b"{\"inputs\": [\"a\", \"b\", \"c\", \"d\"]}");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json().as_array().unwrap().len(), 4);
    let m = String::from_utf8(srv.get("/metrics").body).unwrap();
    assert!(
        m.contains("bert_edge_requests_total{endpoint=\"/embed\",status=\"413\"}"),
        "{m}"
    );
    assert!(m.contains("bert_edge_inference_errors_total 0"), "{m}");
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs serve's test hooks: cargo test --features bert-edge-cli/test-hooks"
)]
fn full_queue_gives_429_with_retry_after_and_recovers() {
    // One worker, room for two texts, each inference held 700 ms.
    let srv = Server::start(&["--workers", "1", "--queue", "2", "--test-delay-ms", "700"]);
    let a = srv.addr;
    let first =
        std::thread::spawn(move || http(a, "POST", "/embed", &[], br#"{"inputs": ["a", "b"]}"#));
    // Wait (bounded) until the first request's texts are admitted.
    let t = Instant::now();
    loop {
        let m = String::from_utf8(srv.get("/metrics").body).unwrap();
        if m.contains("bert_edge_workers_busy 1") || m.contains("bert_edge_queue_depth 2") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "first request never started:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let busy = srv.post("/embed", &json!({"inputs": ["c", "d"]}));
    assert_eq!(busy.status, 429, "{}", String::from_utf8_lossy(&busy.body));
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert!(busy.json()["error"].is_string());
    let busy = srv.post("/v1/embeddings", &json!({"input": ["c", "d"]}));
    assert_eq!(busy.status, 429);
    assert_eq!(busy.json()["error"]["type"], "rate_limit_error");
    let first = first.join().unwrap();
    assert_eq!(first.status, 200, "the admitted request is unaffected");
    assert_eq!(first.json().as_array().unwrap().len(), 2);
    let later = srv.post("/embed", &json!({"inputs": ["c", "d"]}));
    assert_eq!(later.status, 200, "serves again once the queue drained");
    let m = String::from_utf8(srv.get("/metrics").body).unwrap();
    assert!(
        m.contains("bert_edge_requests_total{endpoint=\"/embed\",status=\"429\"} 1"),
        "{m}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs serve's test hooks: cargo test --features bert-edge-cli/test-hooks"
)]
fn sigterm_finishes_requests_in_flight_and_exits_0() {
    const CLIENTS: usize = 8;
    let mut srv = Server::start(&["--workers", "2", "--test-delay-ms", "500"]);
    let mut r = Reference::new();
    let texts: Vec<String> = (0..CLIENTS)
        .map(|i| format!("关机前的第{i}个请求"))
        .collect();
    let want: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| normalized(&r.embed(t, None).0))
        .collect();
    let a = srv.addr;
    let threads: Vec<_> = texts
        .into_iter()
        .map(|t| {
            std::thread::spawn(move || {
                let resp = http(
                    a,
                    "POST",
                    "/embed",
                    &[],
                    json!({"inputs": t}).to_string().as_bytes(),
                );
                (resp, Instant::now())
            })
        })
        .collect();
    // Wait (bounded) until all 8 are admitted and some are still queued or running, then
    // SIGTERM: 8 texts × 500 ms on 2 workers leaves about 2 s of work in flight.
    let t = Instant::now();
    loop {
        let m = String::from_utf8(srv.get("/metrics").body).unwrap();
        let metric = |name: &str| -> usize {
            m.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let (depth, busy, done) = (
            metric("bert_edge_queue_depth"),
            metric("bert_edge_workers_busy"),
            metric("bert_edge_inferences_total"),
        );
        if depth + busy + done >= CLIENTS {
            assert!(
                depth + busy > 0,
                "all requests finished before the signal: a slow machine?\n{m}"
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "requests never queued:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = Instant::now();
    srv.sigterm();
    let mut after = 0;
    for (i, th) in threads.into_iter().enumerate() {
        let (resp, done) = th.join().unwrap();
        assert_eq!(
            resp.status,
            200,
            "request {i} lost: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert_close(&vector(&resp.json()[0]), &want[i], "answer after SIGTERM");
        after += (done > killed) as usize;
    }
    assert!(after > 0, "some requests were answered after the signal");
    let code = srv.wait_exit(Duration::from_secs(30));
    assert_eq!(code, 0, "{}", srv.log.lock().unwrap());
    assert!(srv.log.lock().unwrap().contains("stopped"));
    assert!(
        TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_err(),
        "no longer listening"
    );
}

#[test]
fn embeds_model_is_refused_with_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_bert-edge"))
        .args([
            "serve",
            "--model",
            model("embeds", "f32").to_str().unwrap(),
            "--seq",
            "32",
            "--bind",
            "127.0.0.1:0",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("input_ids model"), "{err}");
}

/// `/proc/PID/status` field in its unit (kB for VmRSS, a count for Threads).
fn proc_status(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Slow clients that keep their connections open, refreshed as the server drops them.
struct Slowloris {
    addr: SocketAddr,
    body_trickle: Vec<Option<TcpStream>>,
    head_trickle: Vec<(Option<TcpStream>, usize)>,
}

const SLOW_HEAD: &[u8] =
    b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n";

impl Slowloris {
    fn open_body(addr: SocketAddr) -> Option<TcpStream> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.write_all(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
            .ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    }

    fn open_head(addr: SocketAddr) -> Option<TcpStream> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    }

    /// One byte more on every connection; reopens the ones the server closed.
    fn tick(&mut self) {
        for s in self.body_trickle.iter_mut() {
            let alive = s.as_mut().is_some_and(|s| s.write(b" ").is_ok());
            if !alive {
                *s = Self::open_body(self.addr);
            }
        }
        for (s, sent) in self.head_trickle.iter_mut() {
            let alive = s
                .as_mut()
                .is_some_and(|s| s.write(&SLOW_HEAD[*sent % SLOW_HEAD.len()..][..1]).is_ok());
            if alive {
                *sent += 1;
            } else {
                *s = Self::open_head(self.addr);
                *sent = 0;
            }
        }
    }
}

/// Issue #18: 1,000 connections with complete headers trickling a body one byte a second,
/// and 200 trickling their header, must not starve a normal client, nor grow the server's
/// threads or memory with the connections.
#[test]
fn slowloris_does_not_starve_the_service() {
    let srv = Server::start(&[
        "--workers",
        "2",
        "--header-timeout",
        "2",
        "--body-timeout",
        "2",
    ]);
    let a = srv.addr;
    let pid = srv.child.id();
    let (rss0, threads0) = (proc_status(pid, "VmRSS:"), proc_status(pid, "Threads:"));
    let attack = Slowloris {
        addr: a,
        body_trickle: (0..1000).map(|_| Slowloris::open_body(a)).collect(),
        head_trickle: (0..200).map(|_| (Slowloris::open_head(a), 0)).collect(),
    };
    let opened = attack.body_trickle.iter().flatten().count();
    assert!(opened >= 900, "only {opened} attack connections opened");
    // The attack ticks on its own thread (reopening 1,000 connections can take seconds under
    // qemu), so the normal client's pace depends only on the server's answers.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut attack = attack;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                attack.tick();
                std::thread::sleep(Duration::from_millis(500));
            }
            attack
        })
    };
    let (mut worst, mut max_threads, mut max_rss) = (Duration::ZERO, 0, 0);
    let body = json!({"inputs": "慢速攻击期间的正常请求"}).to_string();
    let t = Instant::now();
    let mut served = 0;
    while t.elapsed() < Duration::from_secs(8) {
        let t0 = Instant::now();
        let resp = http(a, "POST", "/embed", &[], body.as_bytes());
        worst = worst.max(t0.elapsed());
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        served += 1;
        max_threads = max_threads.max(proc_status(pid, "Threads:"));
        max_rss = max_rss.max(proc_status(pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let m = String::from_utf8(srv.get("/metrics").body).unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(attacker.join().expect("attacker thread"));
    let metric = |name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    eprintln!(
        "slowloris: {served} normal requests, slowest {worst:?}; server threads {threads0} -> max \
         {max_threads}, RSS {} -> max {} MiB; header timeouts {}, body timeouts {}, open {}",
        rss0 / 1024,
        max_rss / 1024,
        metric("bert_edge_header_timeouts_total"),
        metric("bert_edge_body_timeouts_total"),
        metric("bert_edge_connections_open"),
    );
    assert!(served >= 5, "{served}");
    assert!(
        worst < Duration::from_secs(3),
        "a normal request took {worst:?}"
    );
    assert!(
        max_threads <= threads0 + 2,
        "threads grew: {threads0} -> {max_threads}"
    );
    assert!(
        max_rss < rss0 + 100 * 1024,
        "RSS grew: {rss0} -> {max_rss} kB"
    );
    // Slow heads are cut by --header-timeout, or evicted first where the open-file limit
    // (1,024 on some CI hosts) puts --max-connections below the attack's 1,200 connections.
    let heads_cut =
        metric("bert_edge_header_timeouts_total") + metric("bert_edge_connections_evicted_total");
    assert!(heads_cut > 0, "{m}");
    assert!(metric("bert_edge_body_timeouts_total") > 0, "{m}");
}

/// A client that never finishes its request head is closed after --header-timeout, counted
/// in /metrics, and the server answers others meanwhile.
#[test]
fn slow_head_is_closed_after_header_timeout() {
    let srv = Server::start(&["--workers", "1", "--header-timeout", "1"]);
    let mut slow: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(srv.addr).unwrap();
            s.write_all(&SLOW_HEAD[..10]).unwrap();
            s
        })
        .collect();
    assert_eq!(srv.get("/health").status, 200);
    std::thread::sleep(Duration::from_millis(2500));
    for s in slow.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        // Closed by the server: EOF (0) or a reset, never a wait until our read timeout.
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "slow head still open: {e}"
            ),
            Ok(n) => panic!("unexpected answer: {}", String::from_utf8_lossy(&buf[..n])),
        }
    }
    let m = String::from_utf8(srv.get("/metrics").body).unwrap();
    let n: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("bert_edge_header_timeouts_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(n >= 3, "{m}");
}

/// The plan lives in memory once loaded: the model file replaced or deleted under a running
/// service (an update, a full SD card being cleaned) changes nothing until a restart.
#[test]
fn model_file_replaced_or_deleted_while_serving() {
    let dir = std::env::temp_dir().join(format!("bert-edge-serve-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bert_ids_f32.onnx");
    std::fs::copy(model("ids", "f32"), &file).unwrap();
    let srv = Server::start_on(
        &file,
        &["--workers", "1", "--tokenizer", "models/tokenizer.json"],
    );
    let body = json!({"inputs": "模型文件被替换"});
    let before = srv.post("/embed", &body);
    assert_eq!(before.status, 200);
    std::fs::write(&file, b"garbage: a half-copied update").unwrap();
    let replaced = srv.post("/embed", &body);
    std::fs::remove_file(&file).unwrap();
    let deleted = srv.post("/embed", &body);
    for r in [&replaced, &deleted] {
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json(),
            before.json(),
            "same answer from the plan in memory"
        );
    }
    assert_eq!(srv.get("/health").status, 200);
    std::fs::remove_dir_all(&dir).ok();
}

/// The answer `bert-edge classify|ner|fill-mask` gives for one text, by the library path.
fn head_answer(model: &std::path::Path, head: bert_edge_cli::tasks::Head, text: &str) -> Value {
    let plan = Arc::new(load(model, SEQ, 1));
    let tok = BertTokenizer::from_file(root().join("models/tokenizer.json")).unwrap();
    let mut enc = Encoder::new(plan.clone()).unwrap();
    let mut scratch = bert_edge_cli::tasks::Scratch::new(&plan);
    let v = bert_edge_cli::tasks::run(head, &tok, &mut enc, &mut scratch, text, None).unwrap();
    // Through text as the service's answer goes (serde_json's float parsing is not exact).
    serde_json::from_str(&v.to_string()).unwrap()
}

#[test]
fn task_endpoints_answer_as_the_cli_and_only_for_their_task() {
    use bert_edge::heads::Aggregation;
    use bert_edge_cli::tasks::Head;
    let tasks = tiny().join("tasks");
    let ner_model = tasks.join("token-classification/torch_f32.onnx");
    let srv = Server::start_on(&ner_model, &["--workers", "1"]);
    let text = "王小明在北京的清华大学读书。";
    let resp = srv.post("/ner", &json!({"inputs": [text, "我爱学习"]}));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let got = resp.json();
    let want = head_answer(
        &ner_model,
        Head::Ner {
            aggregation: Aggregation::Simple,
        },
        text,
    );
    assert_eq!(got[0], want);
    assert_eq!(got.as_array().unwrap().len(), 2);
    let resp = srv.post(
        "/ner",
        &json!({"inputs": text, "aggregation_strategy": "none"}),
    );
    assert_eq!(resp.status, 200);
    let want = head_answer(
        &ner_model,
        Head::Ner {
            aggregation: Aggregation::None,
        },
        text,
    );
    assert_eq!(resp.json()[0], want);
    // Other tasks' endpoints and bad settings: clear 4xx, and the service goes on.
    let r = srv.post("/classify", &json!({"inputs": text}));
    assert_eq!(r.status, 424);
    assert!(
        r.json()["error"].as_str().unwrap().contains("POST /ner"),
        "{:?}",
        r.json()
    );
    let r = srv.post("/embed", &json!({"inputs": text}));
    assert_eq!(r.status, 424);
    let e = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        e.contains("cannot serve embeddings") && e.contains("/ner"),
        "{e}"
    );
    let r = srv.post(
        "/ner",
        &json!({"inputs": text, "aggregation_strategy": "max"}),
    );
    assert_eq!(r.status, 422);
    let r = srv.post("/ner", &json!({"inputs": [[text, text]]}));
    assert_eq!(r.status, 422);
    let metrics = String::from_utf8(srv.get("/metrics").body).unwrap();
    assert!(
        metrics.contains("endpoint=\"/ner\",status=\"200\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("endpoint=\"/classify\",status=\"424\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("task=\"token-classification\""),
        "{metrics}"
    );
    drop(srv);

    let cls_model = tasks.join("text-classification/torch_f32.onnx");
    let srv = Server::start_on(&cls_model, &["--workers", "1"]);
    let resp = srv.post(
        "/classify",
        &json!({"inputs": [text, ["问题是什么", "答案"]], "top_k": 2}),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let want = head_answer(&cls_model, Head::Classify { top_k: 2 }, text);
    assert_eq!(resp.json()[0], want);
    assert_eq!(resp.json()[1]["predictions"].as_array().unwrap().len(), 2);
    assert_eq!(
        srv.post("/classify", &json!({"inputs": text, "top_k": 0}))
            .status,
        422
    );
    drop(srv);

    let mlm_model = tasks.join("fill-mask/torch_f32.onnx");
    let srv = Server::start_on(&mlm_model, &["--workers", "1"]);
    let masked = "我爱[MASK]习";
    let resp = srv.post("/fill-mask", &json!({"inputs": masked}));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let want = head_answer(&mlm_model, Head::FillMask { top_k: 5 }, masked);
    assert_eq!(resp.json()[0], want);
    let r = srv.post("/fill-mask", &json!({"inputs": "没有面具"}));
    assert_eq!(r.status, 422);
    assert!(r.json()["error"].as_str().unwrap().contains("no [MASK]"));
    assert_eq!(srv.get("/health").status, 200);
}

/// A panic in a worker during a batched call fails only the text it happened on.
#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs serve's test hooks: cargo test --features bert-edge-cli/test-hooks"
)]
fn a_panic_in_a_batch_fails_only_its_text() {
    let srv = Server::start(&[
        "--workers",
        "1",
        "--batch",
        "4",
        "--batch-wait-ms",
        "1000",
        "--test-panic-on",
        "炸",
    ]);
    let mut r = Reference::new();
    let texts = ["我爱学习", "炸", "今天天气很好"];
    for (t, resp) in texts.iter().zip(post_at_once(srv.addr, "/embed", &texts)) {
        if *t == "炸" {
            assert_eq!(resp.status, 500, "{}", String::from_utf8_lossy(&resp.body));
            continue;
        }
        assert_eq!(
            resp.status,
            200,
            "{t}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert_close(
            &vector(&resp.json()[0]),
            &normalized(&r.embed(t, None).0),
            t,
        );
    }
    // The worker is still there.
    let resp = srv.post("/embed", &json!({"inputs": "我爱学习"}));
    assert_eq!(resp.status, 200);
    let m = String::from_utf8(srv.get("/metrics").body).unwrap();
    assert!(m.contains("bert_edge_inference_errors_total 1"), "{m}");
}
