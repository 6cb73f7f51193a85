//! The `bert-edge` binary end to end: encode (text, ids, embeds, bad lines), info, exit codes.

mod bin;
#[path = "../../tests/common/mod.rs"]
mod common;
use bin::bert_edge;
use common::*;
use std::process::Command;

fn ids_model() -> String {
    model("ids", "f32").to_string_lossy().into_owned()
}

#[test]
fn encode_text_gives_the_tokenizer_ids_and_the_library_output() {
    let (code, lines, err) = bert_edge(
        &[
            "encode",
            "--model",
            &ids_model(),
            "--seq",
            "8",
            "--hidden-states",
        ],
        "{\"text\": \"我爱学习\"}\n".as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    let ids: Vec<i64> = serde_json::from_value(l["input_ids"].clone()).unwrap();
    assert_eq!(ids, [101, 2769, 4263, 2110, 739, 102, 0, 0]);
    let mask: Vec<i64> = serde_json::from_value(l["attention_mask"].clone()).unwrap();
    assert_eq!(mask, [1, 1, 1, 1, 1, 1, 0, 0]);
    // Same as PyTorch's reference for this exact input (case seq8).
    let dir = tiny();
    let case = cases(&dir)
        .cases
        .into_iter()
        .find(|c| c.name == "seq8")
        .unwrap();
    let pooled: Vec<f32> = serde_json::from_value(l["pooler_output"].clone()).unwrap();
    assert!(max_abs(&pooled, &read_f32(&dir, &case.outputs["pooler_output"])) <= 1e-4);
    let hidden: Vec<Vec<f32>> = serde_json::from_value(l["last_hidden_state"].clone()).unwrap();
    assert_eq!((hidden.len(), hidden[0].len()), (8, 64));
}

fn is_err_at(lines: &[serde_json::Value], i: usize, needle: &str) {
    let e = lines[i]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("line {i}: {}", lines[i]));
    assert!(e.contains(needle), "line {i}: {e:?} lacks {needle:?}");
}

#[test]
fn bad_lines_get_error_objects_in_order_and_the_tool_goes_on() {
    let mut input = Vec::new();
    input.extend_from_slice("{\"text\": \"我爱学习\"}\n".as_bytes());
    input.extend_from_slice(b"{not json\n");
    input.extend_from_slice(b"{\"text\": 5}\n");
    input.extend_from_slice(b"{\"input_ids\": [101, 99999, 102]}\n");
    input.extend_from_slice(b"{\"input_ids\": [101, 1, 2, 3, 4, 5, 6, 7, 102]}\n");
    input.extend_from_slice(b"{\"text\": \"\xff\xfe bad utf8\"}\n");
    input.extend_from_slice(b"{\"input_ids\": [101, 2769, 102], \"attention_mask\": [0, 0, 0]}\n");
    input.extend_from_slice(b"[1, 2]\n");
    input.extend_from_slice(b"{\"input_ids\": [101, 2769, 102]}\n");
    input.extend_from_slice(b"  \n");
    input.extend_from_slice("{\"text\": \"我爱学习我爱学习\"}\n".as_bytes());
    let (code, lines, _) = bert_edge(&["encode", "--model", &ids_model(), "--seq", "8"], &input);
    assert_eq!(code, 1, "a failed line makes the exit status 1");
    assert_eq!(lines.len(), 11, "one output line per input line");
    is_err_at(&lines, 9, "blank line");
    assert_eq!(lines[0]["truncated"], false);
    assert_eq!(lines[10]["truncated"], true, "10 tokens cut to 8");
    let is_err = |i: usize, needle: &str| is_err_at(&lines, i, needle);
    assert!(lines[0].get("pooler_output").is_some());
    is_err(1, "malformed JSON");
    is_err(2, "must be a string");
    is_err(3, "out of range");
    is_err(4, "sequence length is 8");
    is_err(5, "UTF-8");
    is_err(6, "all zeros");
    is_err(7, "JSON object");
    assert!(
        lines[8].get("pooler_output").is_some(),
        "the tool goes on after errors"
    );
}

#[test]
fn embeds_lines_on_an_embeds_model() {
    let row: Vec<f32> = (0..64).map(|i| i as f32 * 1e-3).collect();
    let line = serde_json::json!({ "inputs_embeds": [row, row, row] }).to_string() + "\n";
    let m = model("embeds", "f32").to_string_lossy().into_owned();
    let (code, lines, err) = bert_edge(&["encode", "--model", &m, "--seq", "8"], line.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines[0]["tokens"], 3);
    let (code, lines, _) = bert_edge(
        &["encode", "--model", &m, "--seq", "8"],
        b"{\"input_ids\": [101, 102]}\n",
    );
    assert_eq!(code, 1);
    assert!(lines[0]["error"]
        .as_str()
        .unwrap()
        .contains("inputs_embeds model"));
}

#[test]
fn bad_model_path_is_one_message_and_exit_2() {
    let (code, lines, err) = bert_edge(&["encode", "--model", "/nonexistent.onnx"], b"");
    assert_eq!(code, 2);
    assert!(lines.is_empty());
    assert!(
        err.contains("/nonexistent.onnx: No such file or directory"),
        "{err}"
    );
    let (code, _, err) = bert_edge(&["encode", "--model", "models/tokenizer.json"], b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not an ONNX model"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_f16_compute_value_is_a_usage_error() {
    let m = model("ids", "f16");
    let (code, lines, err) = bert_edge(
        &[
            "encode",
            "--model",
            &m.to_string_lossy(),
            "--f16-compute",
            "f8",
        ],
        b"",
    );
    assert_eq!(code, 2, "{err}");
    assert!(lines.is_empty());
    assert!(err.contains("auto, native or f32"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_length_counts_and_lengths_over_n_are_usage_errors() {
    let m = ids_model();
    for (args, needle) in [
        (&["--threads", "0"][..], "at least 1"),
        (&["--granule", "0"][..], "at least 1"),
        (&["--lengths", "4,9"][..], "over the plan's N = 8"),
        (&["--lengths", "1"][..], "not a length"),
    ] {
        let mut all = vec!["bench", "--model", &m, "--seq", "8", "--reps", "1"];
        all.extend_from_slice(args);
        let (code, lines, err) = bert_edge(&all, b"");
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(lines.is_empty(), "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn info_shows_flavour_variant_and_ops() {
    let out = Command::new(env!("CARGO_BIN_EXE_bert-edge"))
        .args([
            "info",
            "--model",
            &model("ids", "int8").to_string_lossy(),
            "--seq",
            "8",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("flavour:     ids"), "{text}");
    assert!(text.contains("variant:     int8"), "{text}");
    assert!(text.contains("vocab:       21128"), "{text}");
    // The kernels, by geometry, and who chose them (issue #30).
    assert!(text.contains("matmul:      I8xI8 m64 k64 n?"), "{text}");
}

#[test]
fn tune_measures_every_geometry_and_kernels_force_one() {
    let dir = std::env::temp_dir().join(format!("bert-edge-cli-tune-{}", std::process::id()));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bert-edge"))
            .args(args)
            .env("BERT_EDGE_CACHE_DIR", &dir)
            .output()
            .unwrap()
    };
    let file = model("ids", "int8").to_string_lossy().into_owned();
    let out = run(&["tune", "--model", &file, "--seq", "16"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("<- chosen") && text.contains("(measured)"),
        "{text}"
    );
    assert!(dir.join("kernels.tsv").exists(), "{text}");
    let info = run(&["info", "--model", &file, "--seq", "16"]);
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(
        info.contains("(measured)") && !info.contains("(rules)"),
        "{info}"
    );
    let bad = run(&["info", "--model", &file, "--seq", "16", "--kernels", "nope"]);
    assert_eq!(bad.status.code(), Some(2));
    let both = run(&["info", "--model", &file, "--tune", "--kernels", "rules"]);
    assert_eq!(both.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_profile_runs_a_plan_of_any_length_at_the_asked_length() {
    let m = ids_model();
    let cases = [
        (None, "(run at 16)"),
        (Some("3"), "(run at 3)"),
        (Some("11"), "(run at 16)"),
    ];
    for (lengths, at) in cases {
        let mut args = vec![
            "bench",
            "--model",
            &m,
            "--seq",
            "16",
            "--reps",
            "2",
            "--profile",
        ];
        if let Some(l) = lengths {
            args.extend_from_slice(&["--lengths", l]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_bert-edge"))
            .args(&args)
            .output()
            .unwrap();
        let (text, err) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{err}");
        assert!(text.contains(at), "{lengths:?}: {text}");
        assert!(text.contains("OptMatMul"), "{text}");
    }
}

#[test]
fn bad_serve_batch_options_are_usage_errors() {
    let m = ids_model();
    for (args, needle) in [
        (&["--batch-wait-ms", "5000"][..], "between 0 and 1000"),
        (&["--batch-wait-ms", "-1"][..], "between 0 and 1000"),
        (&["--batch-wait-ms", "nan"][..], "between 0 and 1000"),
        (&["--batch", "0"][..], "at least 1"),
    ] {
        let mut all = vec![
            "serve",
            "--model",
            &m,
            "--seq",
            "8",
            "--bind",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let (code, lines, err) = bert_edge(&all, b"");
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(lines.is_empty(), "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A fresh directory under the system's temp dir, two levels deep (so that neither it nor its
/// parent holds a tokenizer.json).
fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir()
        .join(format!("bert-edge-cli-{}-{name}", std::process::id()))
        .join("model");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// No tokenizer beside the model or one directory up: text lines fail, even run from the
/// repository, whose models/tokenizer.json is another model's as far as this one knows.
#[test]
fn a_missing_tokenizer_is_never_borrowed_from_the_working_directory() {
    let d = scratch("no-tokenizer");
    let m = d.join("model.onnx");
    std::fs::copy(model("ids", "f32"), &m).unwrap();
    let (code, lines, err) = bert_edge(
        &["encode", "--model", m.to_str().unwrap(), "--seq", "8"],
        "{\"text\": \"我爱学习\"}\n{\"input_ids\": [101, 2769, 102]}\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no tokenizer.json beside the model"), "{err}");
    is_err_at(&lines, 0, "no tokenizer loaded");
    assert!(lines[1]["embedding"].is_array(), "ids lines still work");
    std::fs::remove_dir_all(d.parent().unwrap()).unwrap();
}

/// A tokenizer whose vocabulary does not fit the model's embedding table is refused, naming
/// both sizes; `compile` bundles the model's own, and the archive then needs no file beside it.
#[test]
fn tokenizers_are_checked_against_the_model_and_bundled_by_compile() {
    let d = scratch("tokenizers");
    let mut t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("models/tokenizer.json")).unwrap())
            .unwrap();
    let vocab = t["model"]["vocab"].as_object_mut().unwrap();
    vocab.retain(|_, id| id.as_u64().unwrap() < 300);
    let small = d.join("small-tokenizer.json");
    std::fs::write(&small, t.to_string()).unwrap();
    let (code, _, err) = bert_edge(
        &[
            "encode",
            "--model",
            &ids_model(),
            "--seq",
            "8",
            "--tokenizer",
            small.to_str().unwrap(),
        ],
        "{\"text\": \"我爱学习\"}\n",
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("300 tokens") && err.contains("21128 rows"),
        "{err}"
    );
    // compile bundles models/tokenizer.json (one directory up from models/tiny/).
    let archive = d.join("tiny.nnef.tar");
    let (code, _, err) = bert_edge(
        &[
            "compile",
            "--model",
            &ids_model(),
            "--seq",
            "8",
            "-o",
            archive.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let (code, lines, err) = bert_edge(
        &["encode", "--model", archive.to_str().unwrap()],
        "{\"text\": \"我爱学习\"}\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("tokenizer: bundled in"), "{err}");
    assert_eq!(
        lines[0]["input_ids"].as_array().unwrap()[..6],
        [101, 2769, 4263, 2110, 739, 102]
    );
    std::fs::remove_dir_all(d.parent().unwrap()).unwrap();
}

/// The hub's `onnx/` layout with a sentence-transformers model's files one level up: `encode`
/// with no flags pools, normalizes and prompts as they say, and flags override them.
#[test]
fn sentence_transformers_files_set_the_embedding() {
    let d = scratch("st");
    std::fs::create_dir_all(d.join("onnx")).unwrap();
    std::fs::create_dir_all(d.join("1_Pooling")).unwrap();
    let fe = tiny().join("tasks/feature-extraction");
    std::fs::copy(fe.join("torch_f32.onnx"), d.join("onnx/model.onnx")).unwrap();
    std::fs::copy(
        root().join("models/tokenizer.json"),
        d.join("tokenizer.json"),
    )
    .unwrap();
    let w = |f: &str, v: serde_json::Value| std::fs::write(d.join(f), v.to_string()).unwrap();
    let st = "sentence_transformers.models.";
    w(
        "modules.json",
        serde_json::json!([
        {"idx": 0, "name": "0", "path": "", "type": format!("{st}Transformer")},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": format!("{st}Pooling")},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": format!("{st}Normalize")}]),
    );
    w(
        "1_Pooling/config.json",
        serde_json::json!({"word_embedding_dimension": 64,
        "pooling_mode_mean_tokens": true, "include_prompt": false}),
    );
    w(
        "config_sentence_transformers.json",
        serde_json::json!({"prompts": {"query": "查询：", "doc": ""}, "default_prompt_name": "query"}),
    );
    let m = d.join("onnx/model.onnx");
    let run = |args: &[&str], line: &str| {
        let mut all = vec!["encode", "--model", m.to_str().unwrap(), "--seq", "16"];
        all.extend_from_slice(args);
        let (code, lines, err) = bert_edge(&all, format!("{line}\n"));
        assert_eq!(code, 0, "{err}");
        (lines[0].clone(), err)
    };
    let (own, err) = run(&[], r#"{"text": "我爱学习"}"#);
    assert!(
        err.contains("pooling mean: the model's sentence-transformers pooling"),
        "{err}"
    );
    assert!(
        err.contains("normalized: the model's Normalize module"),
        "{err}"
    );
    // The same text through the hidden states: the default prompt in front, [CLS] and the
    // prompt's 3 tokens left out of the mean (include_prompt false), then L2 normalized.
    let (h, _) = run(&["--hidden-states"], r#"{"text": "我爱学习"}"#);
    let ids = h["input_ids"].as_array().unwrap();
    assert_eq!(ids[..4], [101, 3389, 6418, 8038], "[CLS] 查 询 ：");
    let rows: Vec<Vec<f32>> = serde_json::from_value(h["last_hidden_state"].clone()).unwrap();
    let tokens = h["tokens"].as_u64().unwrap() as usize;
    let mut mean = vec![0f32; 64];
    for r in &rows[4..tokens] {
        mean.iter_mut()
            .zip(r)
            .for_each(|(m, v)| *m += v / (tokens - 4) as f32);
    }
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
    let want: Vec<f32> = mean.iter().map(|v| v / norm).collect();
    let got: Vec<f32> = serde_json::from_value(own["embedding"].clone()).unwrap();
    assert!(max_abs(&got, &want) <= 1e-5, "{:e}", max_abs(&got, &want));
    // An empty prompt by name, and flags over the files.
    let (doc, _) = run(
        &["--pooling", "cls", "--no-normalize"],
        r#"{"text": "我爱学习", "prompt_name": "doc"}"#,
    );
    let (hd, _) = run(
        &["--hidden-states"],
        r#"{"text": "我爱学习", "prompt_name": "doc"}"#,
    );
    let cls: Vec<Vec<f32>> = serde_json::from_value(hd["last_hidden_state"].clone()).unwrap();
    let got: Vec<f32> = serde_json::from_value(doc["embedding"].clone()).unwrap();
    assert!(max_abs(&got, &cls[0]) <= 1e-6);
    let (bad, _) = {
        let all = ["encode", "--model", m.to_str().unwrap(), "--seq", "16"];
        let (code, lines, err) = bert_edge(&all, "{\"text\": \"x\", \"prompt_name\": \"nope\"}\n");
        assert_eq!(code, 1);
        (lines, err)
    };
    is_err_at(&bad, 0, "unknown prompt_name \"nope\"");
    // An archive keeps the pooling, normalization and prompts (and the tokenizer): compiled,
    // then moved away from every file it came with, it answers the same.
    let archive = d.parent().unwrap().join("st.nnef.tar");
    let (code, _, err) = bert_edge(
        &[
            "compile",
            "--model",
            m.to_str().unwrap(),
            "--seq",
            "16",
            "-o",
            archive.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    std::fs::remove_dir_all(&d).unwrap();
    let (code, lines, err) = bert_edge(
        &["encode", "--model", archive.to_str().unwrap()],
        "{\"text\": \"我爱学习\"}\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("pooling mean: the model's sentence-transformers pooling"),
        "{err}"
    );
    assert!(err.contains("tokenizer: bundled in"), "{err}");
    let from_archive: Vec<f32> = serde_json::from_value(lines[0]["embedding"].clone()).unwrap();
    let own: Vec<f32> = serde_json::from_value(own["embedding"].clone()).unwrap();
    assert!(
        max_abs(&from_archive, &own) <= 1e-6,
        "{:e}",
        max_abs(&from_archive, &own)
    );
    std::fs::remove_dir_all(d.parent().unwrap()).unwrap();
}
