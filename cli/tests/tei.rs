//! `bert-edge serve` as text-embeddings-inference answers (issue #32): truncation refused with
//! the token count and the limit unless asked, `/embed_all`, `/embed_sparse`, `/predict`,
//! `/similarity`, `/tokenize`, `/decode`, `/info`, `POST /` by task, the API key, and 503
//! while the model loads. Each route is checked against the library or the CLI on the same
//! text (`bert-edge encode`), not against fixed numbers.
#![cfg(all(feature = "serve", feature = "onnx"))]

#[path = "bin/mod.rs"]
mod bin;
#[path = "../../tests/common/mod.rs"]
mod common;
mod server;
use common::*;
use serde_json::{json, Value};
use server::*;
use std::time::{Duration, Instant};

/// `bert-edge encode` on `model` for one JSON line (`--seq 32` unless `args` say): the answer.
fn encode(model: &std::path::Path, line: Value, args: &[&str]) -> Value {
    let mut all = vec!["encode", "--model", model.to_str().unwrap()];
    if !args.contains(&"--seq") {
        all.extend(["--seq", "32"]);
    }
    all.extend_from_slice(args);
    let (code, lines, err) = bin::bert_edge(&all, format!("{line}\n"));
    assert_eq!(code, 0, "{err}");
    lines[0].clone()
}

fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().unwrap().iter().map(vector).collect()
}

fn tasks(t: &str) -> std::path::PathBuf {
    tiny().join("tasks").join(t).join("torch_f32.onnx")
}

const LONG: &str = "今天天气很好，我们一起去公园散步吧。今天天气很好，我们一起去公园散步吧。";

#[test]
fn too_long_inputs_are_refused_with_their_length_unless_truncation_is_asked() {
    let srv = Server::start(&["--workers", "1"]);
    let full = encode(
        &model("ids", "f32"),
        json!({"text": LONG}),
        &["--seq", "64"],
    );
    let n = full["tokens"].as_u64().unwrap();
    assert!(n > 32, "{n} tokens");
    let r = srv.post("/embed", &json!({"inputs": LONG}));
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let e = r.json();
    assert_eq!(e["error_type"], "Validation");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("less than 32 tokens") && msg.contains(&format!("Given: {n}")),
        "{msg}"
    );
    let right = srv.post("/embed", &json!({"inputs": LONG, "truncate": true}));
    assert_eq!(right.status, 200);
    assert_eq!(right.header("x-truncated-inputs"), Some("1"));
    let left = srv.post(
        "/embed",
        &json!({"inputs": LONG, "truncate": true, "truncation_direction": "left"}),
    );
    assert_eq!(left.status, 200);
    assert!(
        rows(&left.json()) != rows(&right.json()),
        "left keeps the other end"
    );
    let openai = srv.post("/v1/embeddings", &json!({"input": LONG}));
    assert_eq!(openai.status, 422);
    assert!(openai.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Given"));
    drop(srv);
    // --max-input-length below N, and --auto-truncate as the default.
    let srv = Server::start(&[
        "--workers",
        "1",
        "--max-input-length",
        "8",
        "--auto-truncate",
    ]);
    let r = srv.post(
        "/embed",
        &json!({"inputs": "今天天气很好，我们", "normalize": false}),
    );
    assert_eq!(r.status, 200);
    let eight = encode(
        &model("ids", "f32"),
        json!({"text": "今天天气很好，我们"}),
        &["--seq", "8"],
    );
    let want: Vec<f32> = serde_json::from_value(eight["embedding"].clone()).unwrap();
    assert_close(&rows(&r.json())[0], &want, "cut at 8 tokens");
    let r = srv.post(
        "/embed",
        &json!({"inputs": "今天天气很好，我们", "truncate": false}),
    );
    assert_eq!(r.status, 422);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("less than 8 tokens"));
    assert_eq!(srv.get("/info").json()["max_input_length"], 8);
    let m = String::from_utf8(srv.get("/metrics").body).unwrap();
    assert!(
        m.contains("bert_edge_limit_rejections_total{limit=\"max_input_length\"} 1"),
        "{m}"
    );
}

#[test]
fn embedding_routes_agree_with_each_other_and_the_cli() {
    let srv = Server::start(&["--workers", "1"]);
    let text = "我爱学习";
    let cli = encode(
        &model("ids", "f32"),
        json!({"text": text}),
        &["--hidden-states"],
    );
    let tokens = cli["tokens"].as_u64().unwrap() as usize;
    let hidden: Vec<Vec<f32>> = serde_json::from_value(cli["last_hidden_state"].clone()).unwrap();
    // /embed_all: every real token's state.
    let all = srv.post("/embed_all", &json!({"inputs": [text]}));
    assert_eq!(all.status, 200);
    let got = rows(&all.json()[0]);
    assert_eq!(got.len(), tokens);
    for (g, w) in got.iter().zip(&hidden) {
        assert_close(g, w, "embed_all row");
    }
    // /embed normalize false = the CLI's default embedding (mean).
    let raw = srv.post("/embed", &json!({"inputs": text, "normalize": false}));
    let want: Vec<f32> = serde_json::from_value(cli["embedding"].clone()).unwrap();
    assert_close(&rows(&raw.json())[0], &want, "embed");
    // /similarity and POST / with sentence-similarity inputs: cosines of /embed's vectors.
    let others = ["我爱学习", "今天天气很好", "北京"];
    let vecs = rows(
        &srv.post(
            "/embed",
            &json!({"inputs": [text, others[0], others[1], others[2]]}),
        )
        .json(),
    );
    let want: Vec<f32> = vecs[1..].iter().map(|v| cos(&vecs[0], v) as f32).collect();
    let q = json!({"inputs": {"source_sentence": text, "sentences": others}});
    for path in ["/similarity", "/"] {
        let r = srv.post(path, &q);
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_close(&vector(&r.json()), &want, path);
    }
    // POST / with plain inputs is /embed, as TEI routes an embedding model.
    let root = srv.post("/", &json!({"inputs": text}));
    assert_close(&rows(&root.json())[0], &vecs[0], "POST /");
    assert_eq!(srv.get("/").status, 200, "GET / is the health probe");
}

#[test]
fn tokenize_decode_and_info_answer_as_tei() {
    let srv = Server::start(&["--workers", "1", "--served-model-name", "tiny-zh"]);
    let r = srv.post("/tokenize", &json!({"inputs": "我爱 AI"}));
    assert_eq!(r.status, 200);
    let t = &r.json()[0];
    let toks = t.as_array().unwrap();
    assert_eq!(
        toks[0],
        json!({"id": 101, "text": "[CLS]", "special": true, "start": null, "stop": null})
    );
    assert_eq!(
        toks[1],
        json!({"id": 2769, "text": "我", "special": false, "start": 0, "stop": 3})
    );
    assert_eq!(toks[2]["start"], 3, "byte offsets");
    assert_eq!(toks.last().unwrap()["text"], "[SEP]");
    let ids: Vec<u64> = toks.iter().map(|x| x["id"].as_u64().unwrap()).collect();
    let no_special = srv.post(
        "/tokenize",
        &json!({"inputs": ["我爱 AI"], "add_special_tokens": false}),
    );
    assert_eq!(
        no_special.json()[0].as_array().unwrap().len(),
        ids.len() - 2
    );
    // "AI" is [UNK] in this cased vocabulary: round-trip a text without one.
    let toks = srv.post("/tokenize", &json!({"inputs": "我爱北京"})).json()[0].clone();
    let id_list = |t: &Value| -> Vec<u64> {
        t.as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_u64().unwrap())
            .collect()
    };
    let d = srv.post("/decode", &json!({"ids": id_list(&toks)}));
    assert_eq!(d.status, 200);
    let text = d.json()[0].as_str().unwrap().to_string();
    let again = srv.post("/tokenize", &json!({"inputs": text}));
    assert_eq!(
        id_list(&again.json()[0]),
        id_list(&toks),
        "decode then tokenize: the same ids"
    );
    let d = srv.post(
        "/decode",
        &json!({"ids": [[101, 2769, 102]], "skip_special_tokens": false}),
    );
    assert!(d.json()[0].as_str().unwrap().contains("[CLS]"));
    assert_eq!(srv.post("/decode", &json!({"ids": [99999]})).status, 422);
    // /tokenize keeps the service's per-text size limit (--max-text-bytes, 16 KiB).
    let big = srv.post("/tokenize", &json!({"inputs": "字".repeat(6000)}));
    assert_eq!(big.status, 413, "{}", String::from_utf8_lossy(&big.body));
    let info = srv.get("/info").json();
    assert_eq!(info["model_id"], "tiny-zh");
    assert_eq!(info["model_dtype"], "float32");
    assert_eq!(info["model_type"]["embedding"]["pooling"], "mean");
    assert_eq!(info["max_input_length"], 32);
    assert_eq!(info["max_client_batch_size"], 32);
    assert_eq!(info["auto_truncate"], false);
    let o = srv.post("/v1/embeddings", &json!({"input": "我"}));
    assert_eq!(o.json()["model"], "tiny-zh");
}

/// TEI's scores: softmax of the logits (sigmoid for one label), best first; raw_scores gives
/// the logits; a pair and a batch as TEI reads them.
#[test]
fn predict_scores_the_classifier_as_tei() {
    let m = tasks("text-classification");
    let srv = Server::start_on(&m, &["--workers", "1"]);
    let labels: Vec<String> = srv.get("/info").json()["model_type"]["classifier"]["id2label"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels.len(), 3);
    let logits = |line: Value| -> Vec<f32> {
        serde_json::from_value(encode(&m, line, &[])["logits"].clone()).unwrap()
    };
    let softmax = |l: &[f32]| -> Vec<f32> {
        let e: Vec<f32> = l.iter().map(|x| x.exp()).collect();
        let s: f32 = e.iter().sum();
        e.iter().map(|x| x / s).collect()
    };
    let check = |got: &Value, l: &[f32], raw: bool| {
        let want = if raw { l.to_vec() } else { softmax(l) };
        let got = got.as_array().unwrap();
        assert_eq!(got.len(), 3);
        for w in got.windows(2) {
            assert!(
                w[0]["score"].as_f64() >= w[1]["score"].as_f64(),
                "best first"
            );
        }
        for g in got {
            let i = labels
                .iter()
                .position(|l| l == g["label"].as_str().unwrap())
                .unwrap();
            let d = (g["score"].as_f64().unwrap() as f32 - want[i]).abs();
            assert!(d <= 1e-5, "{g}: {d}");
        }
    };
    let one = logits(json!({"text": "这部电影太好看了"}));
    check(
        &srv.post("/predict", &json!({"inputs": "这部电影太好看了"}))
            .json(),
        &one,
        false,
    );
    check(
        &srv.post("/", &json!({"inputs": "这部电影太好看了"})).json(),
        &one,
        false,
    );
    let r = srv.post(
        "/predict",
        &json!({"inputs": "这部电影太好看了", "raw_scores": true}),
    );
    check(&r.json(), &one, true);
    let pair = logits(json!({"text": "问题是什么", "text_pair": "答案在这里"}));
    check(
        &srv.post("/predict", &json!({"inputs": ["问题是什么", "答案在这里"]}))
            .json(),
        &pair,
        false,
    );
    let batch = srv.post(
        "/predict",
        &json!({"inputs": [["这部电影太好看了"], ["问题是什么", "答案在这里"]]}),
    );
    check(&batch.json()[0], &one, false);
    check(&batch.json()[1], &pair, false);
    // A three-label classifier is no cross-encoder: /rerank names the routes it serves.
    let r = srv.post("/rerank", &json!({"query": "a", "texts": ["b"]}));
    assert_eq!(r.status, 424);
    assert!(r.json()["error"].as_str().unwrap().contains("/predict"));
}

/// SPLADE on a masked-LM export: max over the real tokens of log(1 + relu(logits)).
#[test]
fn embed_sparse_is_splade_on_the_fill_mask_logits() {
    let m = tasks("fill-mask");
    let srv = Server::start_on(&m, &["--workers", "1"]);
    let text = "我爱北京";
    let cli = encode(&m, json!({"text": text}), &["--hidden-states"]);
    let logits: Vec<Vec<f32>> = serde_json::from_value(cli["logits"].clone()).unwrap();
    let tokens = cli["tokens"].as_u64().unwrap() as usize;
    let mut want = vec![0f32; logits[0].len()];
    for row in &logits[..tokens] {
        for (w, x) in want.iter_mut().zip(row) {
            *w = w.max(x.max(0.0).ln_1p());
        }
    }
    for path in ["/embed_sparse", "/"] {
        let r = srv.post(path, &json!({"inputs": text}));
        assert_eq!(r.status, 200, "{path}");
        let sparse = r.json()[0].as_array().unwrap().clone();
        assert_eq!(sparse.len(), want.iter().filter(|w| **w > 0.0).count());
        for e in &sparse {
            let (i, v) = (
                e["index"].as_u64().unwrap() as usize,
                e["value"].as_f64().unwrap() as f32,
            );
            assert!(v > 0.0 && (v - want[i]).abs() <= 1e-5, "{e}");
        }
    }
    assert_eq!(
        srv.get("/info").json()["model_type"]["embedding"]["pooling"],
        "splade"
    );
}

#[test]
fn the_api_key_guards_every_route_but_the_probes() {
    let dir = std::env::temp_dir().join(format!("bert-edge-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("key");
    std::fs::write(&file, "s3cret-key-for-tests\n").unwrap();
    let srv = Server::start(&["--workers", "1", "--api-key-file", file.to_str().unwrap()]);
    let body = json!({"inputs": "我"}).to_string();
    let send = |h: &[&str]| http(srv.addr, "POST", "/embed", h, body.as_bytes());
    let none = send(&[]);
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    assert_eq!(none.json()["error_type"], "Unauthorized");
    assert_eq!(
        send(&["Authorization: Bearer s3cret-key-for-tests-"]).status,
        401
    );
    assert_eq!(
        send(&["Authorization: Bearer s3cret-key-for-test"]).status,
        401
    );
    assert_eq!(send(&["Authorization: s3cret-key-for-tests"]).status, 401);
    assert_eq!(
        send(&["Authorization: Bearer s3cret-key-for-tests"]).status,
        200
    );
    let o = http(
        srv.addr,
        "POST",
        "/v1/embeddings",
        &[],
        br#"{"input": "x"}"#,
    );
    assert_eq!(o.status, 401);
    assert_eq!(o.json()["error"]["type"], "authentication_error");
    assert_eq!(http(srv.addr, "GET", "/info", &[], b"").status, 401);
    assert_eq!(srv.get("/health").status, 200);
    let m = String::from_utf8(srv.get("/metrics").body).unwrap();
    assert!(
        m.contains("bert_edge_limit_rejections_total{limit=\"unauthorized\"} 6"),
        "{m}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    // A key too short to be one is refused at start.
    let (code, _, err) = bin::bert_edge(
        &[
            "serve",
            "--model",
            model("ids", "f32").to_str().unwrap(),
            "--api-key",
            "abc",
        ],
        "",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least 8 characters"), "{err}");
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs serve's test hooks: cargo test --features bert-edge-cli/test-hooks"
)]
fn health_is_503_until_the_model_is_loaded() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bert-edge"))
        .args([
            "serve",
            "--model",
            model("ids", "f32").to_str().unwrap(),
            "--seq",
            "32",
        ])
        .args([
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--test-load-delay-ms",
            "3000",
        ])
        .current_dir(root())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: std::net::SocketAddr = loop {
        let line = lines.next().expect("stderr ended").unwrap();
        if let Some(rest) = line.split("answering 503 on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let r = http(addr, "GET", "/health", &[], b"");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error_type"], "Unhealthy");
    assert_eq!(
        http(addr, "POST", "/embed", &[], br#"{"inputs": "x"}"#).status,
        503
    );
    let t = Instant::now();
    loop {
        let line = lines.next().expect("stderr ended").unwrap();
        if line.contains("listening on") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60));
    }
    assert_eq!(http(addr, "GET", "/health", &[], b"").status, 200);
    let _ = child.kill();
    let _ = child.wait();
}

/// Every seed of the `http_request` fuzz target (one per route, fuzz/seeds/http_request/)
/// through the service's request handling without sockets, as the fuzzer runs it: a status a
/// client can cause, never a 500.
#[test]
fn every_fuzz_seed_gets_a_client_status() {
    let model = model("ids", "f32");
    let args = [
        "--seq",
        "16",
        "--payload-limit",
        "65536",
        "--max-client-batch-size",
        "4",
    ];
    let h = bert_edge_cli::serve::Harness::new(&model, &args).unwrap();
    let dir = root().join("fuzz/seeds/http_request");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let raw = std::fs::read(&path).unwrap();
        let (status, bytes) = h.handle_bytes(&raw).expect("a whole request");
        let body = String::from_utf8_lossy(&bytes);
        assert!(status < 500, "{}: {status} {body}", path.display());
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("route_")
        {
            // Each route seed is a valid request for this model, or this model's 424.
            assert!(
                matches!(status, 200 | 424),
                "{}: {status} {body}",
                path.display()
            );
        }
        n += 1;
    }
    assert!(n >= 15, "{n} seeds");
}

/// `/rerank` on a cross-encoder (the tiny one-logit classifier): each text's score is the
/// sigmoid of the classifier's logit for the pair (query, text), as the CLI computes it, best
/// first; `raw_scores` gives the logit; llama.cpp's `documents` + `top_n` get `results`.
#[test]
fn rerank_scores_pairs_with_the_cross_encoder() {
    let m = tasks("rerank");
    let srv = Server::start_on(&m, &["--workers", "1"]);
    assert!(srv.get("/info").json()["model_type"]["reranker"].is_object());
    let query = "北京是中国的首都";
    let texts = [
        "北京是一座历史悠久的城市",
        "今天天气很好",
        "上海是一座国际化大都市",
    ];
    let logit = |t: &str| -> f32 {
        let a = encode(&m, json!({"text": query, "text_pair": t}), &[]);
        a["logits"][0].as_f64().unwrap() as f32
    };
    let want: Vec<f32> = texts.iter().map(|t| logit(t)).collect();
    let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
    let r = srv.post(
        "/rerank",
        &json!({"query": query, "texts": texts, "return_text": true}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ranks = r.json().as_array().unwrap().clone();
    assert_eq!(ranks.len(), 3);
    for w in ranks.windows(2) {
        assert!(
            w[0]["score"].as_f64() >= w[1]["score"].as_f64(),
            "best first"
        );
    }
    for x in &ranks {
        let i = x["index"].as_u64().unwrap() as usize;
        let d = (x["score"].as_f64().unwrap() as f32 - sigmoid(want[i])).abs();
        assert!(d <= 1e-5, "{x}: {d}");
        assert_eq!(x["text"], texts[i]);
    }
    let raw = srv.post(
        "/rerank",
        &json!({"query": query, "texts": texts, "raw_scores": true}),
    );
    for x in raw.json().as_array().unwrap() {
        let i = x["index"].as_u64().unwrap() as usize;
        assert!(
            (x["score"].as_f64().unwrap() as f32 - want[i]).abs() <= 1e-5,
            "{x}"
        );
    }
    let docs = srv.post(
        "/rerank",
        &json!({"query": query, "documents": texts, "top_n": 2}),
    );
    let results = docs.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["index"], ranks[0]["index"]);
    assert_eq!(results[0]["document"]["text"], ranks[0]["text"]);
}
