//! Shared by the fuzz targets: the contract at the crate boundary.
#![allow(dead_code)]

use bert_edge::Error;
use std::path::PathBuf;
use std::sync::Once;

/// The repository root (models/, fuzz/seeds/).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

static HOOK: Once = Once::new();

/// libfuzzer-sys aborts on every panic, also one the library catches. The contract is that
/// no panic *escapes* the crate: a panic inside a dependency is caught and returned as
/// `Engine("… panicked: …")`. So the targets replace that hook with one that records where
/// a panic happened (fuzz/artifacts/<target>/caught-panics.txt, one line per location) and
/// lets the library catch it; a panic that escapes still reaches libfuzzer-sys's own
/// `catch_unwind` and aborts (a crash). The targets that load files keep the first input
/// to reach each location as `caught-<n>.bin` beside the list. With
/// `BERT_EDGE_FUZZ_STRICT=1` a caught panic is a crash too (to collect inputs for
/// regression tests).
pub fn init(target: &'static str) {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let dir = root().join(format!("fuzz/artifacts/{target}"));
            let log = dir.join("caught-panics.txt");
            let seen = std::fs::read_to_string(&log).unwrap_or_default();
            if !seen.lines().any(|l| l.starts_with(&format!("{at} "))) {
                let msg = info.payload().downcast_ref::<String>().cloned().unwrap_or_default();
                // The input that reached this location first, for a regression test.
                let n = seen.lines().count();
                let kept = SCRATCH.with(|s| {
                    let p = s.borrow().clone()?;
                    let to = dir.join(format!("caught-{n}.bin"));
                    std::fs::copy(p, &to).ok().map(|_| to.display().to_string())
                });
                let kept = kept.unwrap_or_default();
                let _ = std::fs::write(&log, format!("{seen}{at} {msg} [{kept}]\n"));
            }
        }));
    });
}

/// A result of the library is fine when it is Ok or a typed error.
pub fn check<T>(r: &Result<T, Error>) {
    if std::env::var_os("BERT_EDGE_FUZZ_STRICT").is_some() {
        if let Err(Error::Engine(e)) = r {
            let m = format!("{e:#}");
            assert!(!m.contains("panicked"), "a panic inside a dependency: {m}");
        }
    }
}

thread_local! {
    /// The current input's scratch file, copied by the panic hook.
    static SCRATCH: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// A file for this process's input: the loaders take paths.
pub fn scratch(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("bert-edge-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("temp file");
    SCRATCH.with(|s| *s.borrow_mut() = Some(path.clone()));
    path
}
