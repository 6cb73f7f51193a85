//! Where measurements are kept: the cache file (one per user, every plan, every CPU it has
//! seen) and an archive's record (the CPU it was measured on, then its choices).
//!
//! The cache is `kernels.tsv` in `$BERT_EDGE_CACHE_DIR`, else `$XDG_CACHE_HOME/bert-edge`,
//! else `$HOME/.cache/bert-edge`: one line a measurement, tab-separated: CPU ([`super::cpu_id`]),
//! tract version, geometry, lengths (comma-separated, `-` for a pinned plan), the kernel
//! chosen, and each candidate's seconds (`kernel=seconds` separated by spaces). A line applies
//! to a load on the same CPU and tract version, for the same geometry and lengths.

use super::Measurement;
use crate::runtime::archive::TRACT_VERSION;
use crate::runtime::properties::{from_hex, to_hex};
use std::path::PathBuf;

const FILE: &str = "kernels.tsv";

fn dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("BERT_EDGE_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("bert-edge")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("bert-edge")))
}

fn lengths_text(lengths: &[usize]) -> String {
    if lengths.is_empty() {
        return "-".into();
    }
    let l: Vec<String> = lengths.iter().map(|l| l.to_string()).collect();
    l.join(",")
}

/// The cache's lines, split into their six fields (malformed lines left out).
fn lines() -> Vec<[String; 6]> {
    let Some(text) = dir().and_then(|d| std::fs::read_to_string(d.join(FILE)).ok()) else {
        return vec![];
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let f: [&str; 6] = f.try_into().ok()?;
            Some(f.map(str::to_string))
        })
        .collect()
}

/// (geometry, kernel) of every cached measurement for `cpu`, this tract and `lengths`.
pub(super) fn read_all(cpu: &str, lengths: &[usize]) -> Vec<(String, String)> {
    let l = lengths_text(lengths);
    lines()
        .into_iter()
        .filter(|f| f[0] == cpu && f[1] == TRACT_VERSION && f[3] == l)
        .map(|[_, _, g, _, k, _]| (g, k))
        .collect()
}

/// Adds (or replaces) `measured`'s lines; the file written, or `None` if it could not be.
pub(super) fn write(cpu: &str, lengths: &[usize], measured: &[Measurement]) -> Option<PathBuf> {
    let dir = dir()?;
    let l = lengths_text(lengths);
    let same =
        |f: &[String; 6], g: &str| f[0] == cpu && f[1] == TRACT_VERSION && f[2] == g && f[3] == l;
    let mut kept: Vec<String> = lines()
        .into_iter()
        .filter(|f| !measured.iter().any(|m| same(f, &m.geometry)))
        .map(|f| f.join("\t"))
        .collect();
    for m in measured {
        let secs: Vec<String> = m
            .seconds
            .iter()
            .map(|(k, s)| format!("{k}={s:.6e}"))
            .collect();
        let f = [
            cpu,
            TRACT_VERSION,
            &m.geometry,
            &l,
            m.best(),
            &secs.join(" "),
        ];
        kept.push(f.join("\t"));
    }
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.{}", std::process::id()));
    std::fs::write(&tmp, kept.join("\n") + "\n").ok()?;
    std::fs::rename(&tmp, &path).ok()?;
    Some(path)
}

/// An archive's record: `cpu`, the tract version, then a `geometry<TAB>kernel` line each; as
/// hex (NNEF graph properties keep plain identifiers only, as for the bundled tokenizer).
pub(super) fn record(cpu: &str, measured: &[Measurement]) -> String {
    let mut s = format!("cpu\t{cpu}\ntract\t{TRACT_VERSION}\n");
    for m in measured {
        s += &format!("{}\t{}\n", m.geometry, m.best());
    }
    to_hex(s.as_bytes())
}

/// An archive's record's (geometry, kernel) lines, if it was measured on `cpu` with this tract
/// (another CPU's measurement says nothing about this one); none if it is not a record.
pub(super) fn parse_record(hex: &str, cpu: &str) -> Vec<(String, String)> {
    let Some(text) = from_hex(hex).and_then(|b| String::from_utf8(b).ok()) else {
        return vec![];
    };
    let mut lines = text.lines();
    let head = (lines.next(), lines.next());
    let cpu = format!("cpu\t{cpu}");
    let tract = format!("tract\t{TRACT_VERSION}");
    if head != (Some(cpu.as_str()), Some(tract.as_str())) {
        return vec![];
    }
    lines
        .filter_map(|l| l.split_once('\t'))
        .map(|(g, k)| (g.to_string(), k.to_string()))
        .collect()
}
