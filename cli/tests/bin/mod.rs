//! Running the `bert-edge` binary from the CLI's integration tests.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs the binary in the repository root with `stdin`; (exit code, stdout lines as JSON,
/// stderr). Every stdout line must be JSON.
pub fn bert_edge(args: &[&str], stdin: impl AsRef<[u8]>) -> (i32, Vec<Value>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bert-edge"))
        .args(args)
        .current_dir(super::common::root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_ref())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
