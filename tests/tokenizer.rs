//! Tokenizer tests: exact parity with the Python `tokenizers` package on a golden corpus
//! (`tests/data/tokenizer/goldens.jsonl`, made by `scripts/gen_tokenizer_goldens.py`),
//! fixed layouts, errors, and no panics on hostile input.
#![cfg(feature = "tokenizer")]

use std::path::PathBuf;

use bert_edge::tokenize::BertTokenizer;
use bert_edge::{Error, Inputs as Encoded};
use serde_json::Value;

/// The corpus must hold at least this many distinct inputs, each at N = 32 and N = 128.
const MIN_DISTINCT_INPUTS: usize = 200;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tok() -> BertTokenizer {
    BertTokenizer::from_file(root().join("models/tokenizer.json")).expect("load tokenizer.json")
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("integer"))
        .collect()
}

#[test]
fn golden_parity_with_python_tokenizers() {
    let path = root().join("tests/data/tokenizer/goldens.jsonl");
    let text = std::fs::read_to_string(&path).expect("read goldens.jsonl");
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().expect("header line")).unwrap();
    let header = &header["header"];
    let declared = header["cases"].as_u64().expect("header.cases") as usize;
    let distinct = header["distinct_inputs"].as_u64().expect("distinct_inputs") as usize;

    let tok = tok();
    let mut bufs: std::collections::HashMap<usize, Encoded> = Default::default();
    let mut compared = 0usize;
    let mut rejected = 0usize;
    let mut inputs = std::collections::HashSet::new();
    let mut per_n = std::collections::BTreeMap::<usize, usize>::new();
    let mut failures = Vec::new();

    for (lineno, line) in lines.enumerate() {
        let case: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("goldens line {}: {e}", lineno + 2));
        let n = case["n"].as_u64().unwrap() as usize;
        let a = case["text"].as_str().unwrap();
        let b = case["pair"].as_str();
        if n == 32 || n == 128 {
            inputs.insert((a.to_owned(), b.map(str::to_owned)));
        }
        *per_n.entry(n).or_default() += 1;
        let what = format!("line {} n={n} text={a:?} pair={b:?}", lineno + 2);

        if case.get("python").is_some() {
            // Python could not produce N tokens (N below the special-token count). We refuse.
            rejected += 1;
            match tok.encode(a, b, n) {
                Err(Error::BadInput(_)) => {}
                other => failures.push(format!("{what}: expected BadInput, got {other:?}")),
            }
            continue;
        }

        let want = Encoded {
            input_ids: ints(&case["ids"]),
            attention_mask: ints(&case["attention_mask"]),
            token_type_ids: ints(&case["type_ids"]),
            inputs_embeds: Vec::new(),
        };
        let want_real = want.attention_mask.iter().filter(|&&m| m == 1).count();
        // Path 1: fresh buffers.
        match tok.encode(a, b, n) {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!("{what}:\n  want {want:?}\n  got  {got:?}")),
            Err(e) => failures.push(format!("{what}: error {e}")),
        }
        // Path 2: one reused (dirty) buffer per N, as on the device.
        let buf = bufs.entry(n).or_insert_with(|| {
            let mut e = Encoded::new(n);
            e.input_ids.fill(-7);
            e.attention_mask.fill(-7);
            e.token_type_ids.fill(-7);
            e
        });
        match tok.encode_into(a, b, buf) {
            Ok(done) if *buf == want && done.tokens == want_real => {}
            Ok(done) => failures.push(format!("{what}: encode_into differs ({done:?})")),
            Err(e) => failures.push(format!("{what}: encode_into error {e}")),
        }
        compared += 1;
    }

    let total = compared + rejected;
    println!(
        "goldens: {total} cases ({compared} compared exactly, {rejected} rejected-by-both), \
         {} distinct inputs, per N {per_n:?}, python tokenizers {}",
        inputs.len(),
        header["tokenizers_version"]
    );
    assert!(
        failures.is_empty(),
        "{} of {total} golden cases differ:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(total, declared, "header case count vs lines");
    assert_eq!(inputs.len(), distinct, "header distinct_inputs vs lines");
    assert_eq!(per_n.get(&32), Some(&distinct), "every input at N=32");
    assert_eq!(per_n.get(&128), Some(&distinct), "every input at N=128");
    assert!(
        inputs.len() >= MIN_DISTINCT_INPUTS,
        "golden corpus too small: {} distinct inputs",
        inputs.len()
    );
    assert!(
        per_n.get(&32).copied().unwrap_or(0) >= MIN_DISTINCT_INPUTS
            && per_n.get(&128).copied().unwrap_or(0) >= MIN_DISTINCT_INPUTS,
        "need every input at N=32 and N=128: {per_n:?}"
    );
}

#[test]
fn wo_ai_xuexi_at_8() {
    let e = tok().encode("我爱学习", None, 8).unwrap();
    assert_eq!(e.input_ids, [101, 2769, 4263, 2110, 739, 102, 0, 0]);
    assert_eq!(e.attention_mask, [1, 1, 1, 1, 1, 1, 0, 0]);
    assert_eq!(e.token_type_ids, [0; 8]);
}

#[test]
fn pair_layout() {
    let tok = tok();
    let mut out = Encoded::new(12);
    let done = tok.encode_into("我爱学习", Some("学习"), &mut out).unwrap();
    assert_eq!(done.tokens, 9);
    assert!(!done.truncated);
    // Cut to 6 (longest_first: the longer text loses its tail first): reported as truncated.
    let mut short = Encoded::new(6);
    let cut = tok
        .encode_into("我爱学习", Some("学习"), &mut short)
        .unwrap();
    assert_eq!((cut.tokens, cut.truncated), (6, true));
    assert_eq!(short.input_ids, [101, 2769, 4263, 102, 2110, 102]);
    // Exactly full is not truncated.
    let mut exact = Encoded::new(9);
    assert!(
        !tok.encode_into("我爱学习", Some("学习"), &mut exact)
            .unwrap()
            .truncated
    );
    assert_eq!(
        out.input_ids,
        [101, 2769, 4263, 2110, 739, 102, 2110, 739, 102, 0, 0, 0]
    );
    assert_eq!(out.attention_mask, [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
    assert_eq!(out.token_type_ids, [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0]);

    // longest_first: 20 + 3 tokens into N = 10 (7 content slots) -> A keeps 4, B keeps 3.
    let e = tok
        .encode(&"天".repeat(20), Some(&"地".repeat(3)), 10)
        .unwrap();
    let (tian, di) = (1921, 1765);
    assert_eq!(tok.token_to_id("天"), Some(tian));
    assert_eq!(tok.token_to_id("地"), Some(di));
    let (tian, di) = (i64::from(tian), i64::from(di));
    assert_eq!(
        e.input_ids,
        [101, tian, tian, tian, tian, 102, di, di, di, 102]
    );
    assert_eq!(e.token_type_ids, [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);

    // Minimum lengths: [CLS] [SEP] and [CLS] [SEP] [SEP].
    assert_eq!(
        tok.encode("我爱学习", None, 2).unwrap().input_ids,
        [101, 102]
    );
    assert_eq!(
        tok.encode("我爱学习", Some("学习"), 3).unwrap().input_ids,
        [101, 102, 102]
    );
    assert_eq!(tok.min_len(false), 2);
    assert_eq!(tok.min_len(true), 3);
}

#[test]
fn truncation_keeps_sep() {
    let tok = tok();
    let text = "我爱学习".repeat(100);
    let e = tok.encode(&text, None, 32).unwrap();
    assert_eq!(e.input_ids[0], 101);
    assert_eq!(e.input_ids[31], 102);
    assert_eq!(&e.input_ids[1..5], [2769, 4263, 2110, 739]);
    assert_eq!(e.attention_mask, [1; 32]);
}

#[test]
fn case_sensitive_vocab_and_lookups() {
    let tok = tok();
    assert_eq!(tok.vocab_size(), 21128);
    assert_eq!(tok.pad_id(), 0);
    assert_eq!(tok.token_to_id("[PAD]"), Some(0));
    assert_eq!(tok.token_to_id("[UNK]"), Some(100));
    assert_eq!(tok.token_to_id("[CLS]"), Some(101));
    assert_eq!(tok.token_to_id("[SEP]"), Some(102));
    assert_eq!(tok.id_to_token(2769).as_deref(), Some("我"));
    assert_eq!(tok.id_to_token(1_000_000), None);
    // lowercase = false: "iPhone" is not in the vocabulary as a word -> [UNK].
    let e = tok.encode("iPhone", None, 4).unwrap();
    assert_eq!(e.input_ids, [101, 100, 102, 0]);
}

#[test]
fn too_small_or_inconsistent_buffers_are_bad_input() {
    let tok = tok();
    for n in [0, 1] {
        assert!(
            matches!(tok.encode("我", None, n), Err(Error::BadInput(_))),
            "n={n}"
        );
    }
    for n in [0, 1, 2] {
        assert!(
            matches!(tok.encode("我", Some("你"), n), Err(Error::BadInput(_))),
            "pair n={n}"
        );
    }
    let mut out = Encoded::new(8);
    out.token_type_ids.pop();
    let before = out.clone();
    assert!(matches!(
        tok.encode_into("我", None, &mut out),
        Err(Error::BadInput(_))
    ));
    assert_eq!(out, before, "buffers untouched on error");
    assert!(matches!(
        tok.encode_into("我", None, &mut Encoded::new(0)),
        Err(Error::BadInput(_))
    ));
}

#[test]
fn missing_or_corrupt_file_is_bad_model() {
    let missing = root().join("tests/data/tokenizer/does-not-exist.json");
    assert!(matches!(
        BertTokenizer::from_file(&missing),
        Err(Error::BadModel(_))
    ));
    let dir = std::env::temp_dir().join(format!("bert-edge-tok-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &[u8]); 4] = [
        ("garbage.json", b"\x00\xffnot json at all"),
        ("empty.json", b""),
        ("other.json", br#"{"hello": "world"}"#),
        (
            "truncated.json",
            &std::fs::read(root().join("models/tokenizer.json")).unwrap()[..5000],
        ),
    ];
    for (name, bytes) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let r = BertTokenizer::from_file(&p);
        assert!(matches!(r, Err(Error::BadModel(_))), "{name}: {r:?}");
        assert!(matches!(
            BertTokenizer::from_bytes(bytes),
            Err(Error::BadModel(_))
        ));
    }
    // A directory is not a file either.
    assert!(matches!(
        BertTokenizer::from_file(&dir),
        Err(Error::BadModel(_))
    ));
    std::fs::remove_dir_all(&dir).ok();
    // And the real bytes load.
    let bytes = std::fs::read(root().join("models/tokenizer.json")).unwrap();
    assert!(BertTokenizer::from_bytes(&bytes).is_ok());
}

fn check_invariants(tok: &BertTokenizer, a: &str, b: Option<&str>, n: usize) {
    let mut out = Encoded::new(n);
    let real = tok
        .encode_into(a, b, &mut out)
        .unwrap_or_else(|e| panic!("n={n} {:?}: {e}", a.chars().take(20).collect::<String>()))
        .tokens;
    assert!(real >= tok.min_len(b.is_some()) && real <= n);
    assert_eq!(out.input_ids[0], 101);
    assert_eq!(out.input_ids[real - 1], 102);
    assert!(out.attention_mask[..real].iter().all(|&m| m == 1));
    assert!(out.attention_mask[real..].iter().all(|&m| m == 0));
    assert!(out.input_ids[real..].iter().all(|&i| i == 0));
    let vocab = tok.vocab_size() as i64;
    assert!(out.input_ids.iter().all(|&i| (0..vocab).contains(&i)));
    assert!(out.token_type_ids.iter().all(|&t| t == 0 || t == 1));
}

/// ~100 KB texts, alone, as both halves of a pair and as the second half only, at the
/// smallest, a middle and the largest capacity. Two tests, so the test threads share them.
fn no_panic_on_huge(bigs: &[String]) {
    let tok = tok();
    for s in bigs {
        assert!(s.len() >= 80_000, "{}", s.len());
        for n in [2, 32, 512] {
            check_invariants(&tok, s, None, n);
            check_invariants(&tok, s, Some(s), n.max(3));
            check_invariants(&tok, "", Some(s), n.max(3));
        }
    }
}

#[test]
fn no_panic_on_huge_text() {
    no_panic_on_huge(&[
        "我爱学习，".repeat(100_000 / 15),
        "x".repeat(100_000),
        "a ".repeat(50_000),
        "👨‍👩‍👧‍👦".repeat(100_000 / 25),
    ]);
}

#[test]
fn no_panic_on_huge_control_and_rare_text() {
    no_panic_on_huge(&[
        (0..100_000u32)
            .map(|i| char::from_u32(i % 0x20).unwrap())
            .collect(),
        "\u{200b}".repeat(30_000),
        "\u{20000}".repeat(25_000),
        (0..0x3_0000u32)
            .step_by(7)
            .filter_map(char::from_u32)
            .collect(),
    ]);
}

#[test]
fn no_panic_on_lone_special_characters() {
    let tok = tok();
    // Every lone control / format / special character, alone and between text.
    let lone = (0u32..0x100)
        .chain([
            0x200b, 0x200c, 0x200d, 0x200e, 0x2028, 0x2029, 0x202e, 0x2060, 0xfeff, 0xfffd, 0xfffe,
            0xffff, 0xe000, 0xf8ff, 0x1_0ffff, 0xe_0001, 0x3000,
        ])
        .filter_map(char::from_u32);
    for c in lone {
        let s = c.to_string();
        check_invariants(&tok, &s, None, 8);
        check_invariants(&tok, &format!("我{c}爱"), Some(&s), 8);
    }
    for s in ["", " ", "\t\n\r", "[CLS]", "[SEP][SEP][SEP]", "##", "[UNK]"] {
        check_invariants(&tok, s, None, 2);
        check_invariants(&tok, s, Some(s), 3);
    }
}
