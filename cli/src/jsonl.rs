//! The JSON Lines loop the one-text-a-line commands share (`encode`, `classify`, `ner`,
//! `fill-mask`): one answer line per input line, in order; and what those commands check of a
//! plan and a line.

use crate::CliError;
use bert_edge::Plan;
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::process::ExitCode;

/// Commands that run one text per call need a batch-1 plan.
pub(crate) fn check_batch(plan: &Plan) -> Result<(), CliError> {
    if plan.info().batch != 1 {
        return Err(CliError::usage(format!(
            "this command needs a batch-1 plan, this one has batch {}",
            plan.info().batch
        )));
    }
    Ok(())
}

/// The JSON Lines loop of `encode`, `classify`, `ner` and `fill-mask`: each stdin line
/// through `handle`, its answer (or `{"error": …}`, a blank line's too) as one stdout line, in
/// order: exactly one line out per line in. Exit status 1 if any line failed.
pub(crate) fn lines(
    what: &str,
    mut handle: impl FnMut(&[u8]) -> Result<Value, String>,
) -> Result<ExitCode, CliError> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    let (mut ok, mut failed) = (0usize, 0usize);
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(CliError::io(format!("reading stdin: {e}"))),
        }
        let blank = line.iter().all(|c| c.is_ascii_whitespace());
        let answer = if blank {
            Err("blank line: each line must be a JSON object".to_string())
        } else {
            handle(&line)
        };
        let reply = answer.unwrap_or_else(|e| {
            failed += 1;
            json!({ "error": e })
        });
        ok += reply.get("error").is_none() as usize;
        let written = serde_json::to_writer(&mut out, &reply)
            .map_err(std::io::Error::from)
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush());
        if let Err(e) = written {
            return Err(CliError::io(format!("writing stdout: {e}")));
        }
    }
    eprintln!("bert-edge: {ok} lines {what}, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `{"text": …, "text_pair": …?}`: the text and pair of a line.
pub(crate) fn text_line(raw: &[u8]) -> Result<(String, Option<String>), String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("line is not valid UTF-8: {e}"))?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
    let obj = value.as_object().ok_or("each line must be a JSON object")?;
    let t = obj
        .get("text")
        .ok_or("a line needs \"text\"")?
        .as_str()
        .ok_or("\"text\" must be a string")?;
    let pair = match obj.get("text_pair") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err("\"text_pair\" must be a string".into()),
    };
    Ok((t.to_string(), pair))
}
