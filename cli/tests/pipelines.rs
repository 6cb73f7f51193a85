//! `bert-edge classify`, `ner`, `fill-mask` and `encode` against Hugging Face's
//! `transformers.pipeline` on the same tiny models (goldens in
//! `models/tiny/tasks/<task>/golden.json`, made by `models/generate tiny --task …`): labels,
//! spans, offsets, words, tokens and sequences equal; scores within 1e-4. For both exporters'
//! f32 files (torch.onnx.export and optimum).

mod bin;
#[path = "../../tests/common/mod.rs"]
mod common;
use bin::bert_edge;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Runs the binary with `stdin`; (exit code, stdout lines as JSON, stderr).
fn task_dir(task: &str) -> PathBuf {
    tiny().join("tasks").join(task)
}

fn golden(task: &str) -> Value {
    let text = std::fs::read_to_string(task_dir(task).join("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A sequence length that holds every golden text (no truncation), a multiple of 8.
fn seq_for(g: &Value) -> usize {
    let longest = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["input_ids"].as_array().unwrap().len())
        .max()
        .unwrap();
    longest.div_ceil(8) * 8
}

/// `got` equals `want`: same structure, keys and strings; numbers within 1e-4.
fn same(got: &Value, want: &Value, at: &str) {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() <= 1e-4, "{at}: {a} vs {b}");
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{at}: {got} vs {want}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same(x, y, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let (ka, kb): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
            assert_eq!(ka, kb, "{at}: keys");
            for (k, v) in b {
                same(&a[k], v, &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(got, want, "{at}"),
    }
}

/// Runs `cmd` on every golden text with `args`; the answers, one per text.
fn answers(cmd: &str, file: &Path, seq: usize, args: &[&str], g: &Value) -> Vec<Value> {
    let input: String = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!({"text": c["text"]}).to_string() + "\n")
        .collect();
    let seq = seq.to_string();
    let mut all = vec![cmd, "--model", file.to_str().unwrap(), "--seq", &seq];
    all.extend_from_slice(args);
    let (code, lines, err) = bert_edge(&all, &input);
    assert_eq!(code, 0, "{cmd} {file:?}: {err}");
    assert_eq!(lines.len(), g["cases"].as_array().unwrap().len());
    lines
}

fn f32_files(task: &str) -> [PathBuf; 2] {
    let d = task_dir(task);
    [d.join("torch_f32.onnx"), d.join("optimum_f32.onnx")]
}

#[test]
fn classify_equals_the_text_classification_pipeline() {
    let g = golden("text-classification");
    let labels = g["id2label"].as_object().unwrap().len().to_string();
    for file in f32_files("text-classification") {
        let got = answers("classify", &file, seq_for(&g), &["--top-k", &labels], &g);
        let mut argmaxes = std::collections::BTreeSet::new();
        for (line, case) in got.iter().zip(g["cases"].as_array().unwrap()) {
            let want = &case["outputs"]["top_k_none"];
            same(
                &line["predictions"],
                want,
                &format!("{file:?} {}", case["text"]),
            );
            argmaxes.insert(want[0]["label"].to_string());
        }
        // The goldens are not one label for every text.
        assert!(argmaxes.len() >= 2, "{argmaxes:?}");
    }
}

#[test]
fn ner_equals_the_token_classification_pipeline_with_offsets() {
    let g = golden("token-classification");
    let mut spans = 0;
    for file in f32_files("token-classification") {
        for call in g["calls"].as_array().unwrap() {
            let (name, agg) = (
                call["name"].as_str().unwrap(),
                call["kwargs"]["aggregation_strategy"].as_str().unwrap(),
            );
            let got = answers("ner", &file, seq_for(&g), &["--aggregation", agg], &g);
            for (line, case) in got.iter().zip(g["cases"].as_array().unwrap()) {
                let want = &case["outputs"][name];
                same(
                    &line["entities"],
                    want,
                    &format!("{file:?} {name} {}", case["text"]),
                );
                // Offsets are characters of the text: the span's text is what they cut out.
                let text: Vec<char> = case["text"].as_str().unwrap().chars().collect();
                for e in line["entities"].as_array().unwrap() {
                    let (s, t) = (
                        e["start"].as_u64().unwrap() as usize,
                        e["end"].as_u64().unwrap() as usize,
                    );
                    assert!(s < t && t <= text.len(), "{e}");
                    spans += 1;
                }
            }
        }
    }
    assert!(spans > 10, "the goldens hold only {spans} entities");
}

#[test]
fn fill_mask_equals_the_fill_mask_pipeline() {
    let g = golden("fill-mask");
    for file in f32_files("fill-mask") {
        let got = answers("fill-mask", &file, seq_for(&g), &["--top-k", "5"], &g);
        for (line, case) in got.iter().zip(g["cases"].as_array().unwrap()) {
            let want = &case["outputs"]["top_k_5"];
            // The pipeline gives a flat list for one [MASK], a list per [MASK] for several.
            let want = if want[0].is_array() {
                want.clone()
            } else {
                json!([want])
            };
            same(&line["masks"], &want, &format!("{file:?} {}", case["text"]));
        }
    }
}

#[test]
fn encode_hidden_states_equal_the_feature_extraction_pipeline() {
    let g = golden("feature-extraction");
    let seq = seq_for(&g);
    for file in f32_files("feature-extraction") {
        let got = answers("encode", &file, seq, &["--hidden-states"], &g);
        for (line, case) in got.iter().zip(g["cases"].as_array().unwrap()) {
            let n = case["input_ids"].as_array().unwrap().len();
            // The pipeline returns [1, tokens, hidden]; encode gives [seq, hidden] rows.
            let rows = &line["last_hidden_state"].as_array().unwrap()[..n];
            same(
                &json!(rows),
                &case["outputs"]["default"][0],
                &format!("{file:?}"),
            );
            assert_eq!(
                line["input_ids"].as_array().unwrap()[..n],
                case["input_ids"].as_array().unwrap()[..]
            );
        }
    }
}

#[test]
fn heads_a_graph_lacks_are_clear_errors_and_bad_lines_do_not_stop_the_tool() {
    let ner = task_dir("token-classification").join("torch_f32.onnx");
    let (code, lines, err) = bert_edge(
        &["fill-mask", "--model", ner.to_str().unwrap(), "--seq", "16"],
        "{\"text\": \"我爱[MASK]\"}\n",
    );
    assert_eq!(code, 2, "{err}");
    assert!(lines.is_empty());
    assert!(
        err.contains("this one is token-classification") && err.contains("use `ner`"),
        "{err}"
    );
    let mlm = task_dir("fill-mask").join("torch_f32.onnx");
    let (code, lines, err) = bert_edge(
        &["fill-mask", "--model", mlm.to_str().unwrap(), "--seq", "16"],
        "{\"text\": \"没有面具\"}\nnot json\n{\"text\": \"我爱[MASK]习\"}\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        lines[0]["error"].as_str().unwrap().contains("no [MASK]"),
        "{}",
        lines[0]
    );
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));
    assert_eq!(lines[2]["masks"].as_array().unwrap().len(), 1);
    // A classifier export has no embeddings to pool: refused before any line is read.
    let cls = task_dir("text-classification").join("torch_f32.onnx");
    let (code, lines, err) = bert_edge(
        &[
            "encode",
            "--model",
            cls.to_str().unwrap(),
            "--seq",
            "16",
            "--pooling",
            "mean",
        ],
        "{\"text\": \"我爱学习\"}\n",
    );
    assert_eq!(code, 2, "{err}");
    assert!(lines.is_empty());
    assert!(err.contains("gives no hidden states"), "{err}");
    // but encode still returns what it has, under the graph's names.
    let (code, lines, _) = bert_edge(
        &["encode", "--model", cls.to_str().unwrap(), "--seq", "16"],
        "{\"text\": \"我爱学习\"}\n",
    );
    assert_eq!(code, 0);
    assert_eq!(lines[0]["logits"].as_array().unwrap().len(), 3);
    assert!(lines[0].get("pooler_output").is_none());
}
