//! Faults a device meets while the tool writes a file: a full disk and a kill mid-write leave
//! the old file or none — never a truncated file under the final name.
//!
//! `bert-edge compile` writes `OUT.partial`, syncs it, then renames it to `OUT`. The full disk
//! is a 1 MiB tmpfs where mounting is allowed (root, as in CI), and always also a file-size
//! limit (`ulimit -f`, which fails writes with EFBIG like a full disk when SIGXFSZ is
//! ignored, and kills the process mid-write when it is not).

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bert-edge-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `bert-edge compile` of the tiny f32 ids model (a ~6 MB archive) into `out`, under a
/// shell prelude (`ulimit`, `trap`).
fn compile(out: &Path, prelude: &str) -> Output {
    let script = format!("{prelude}\nexec \"$0\" \"$@\"");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_bert-edge"))
        .args(["compile", "--model"])
        .arg(model("ids", "f32"))
        .args(["--seq", "8", "-o"])
        .arg(out)
        .current_dir(root())
        .output()
        .unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn loads(path: &Path) -> bool {
    bert_edge::Plan::load(path, &bert_edge::LoadOptions::new()).is_ok()
}

#[test]
fn a_full_disk_leaves_no_file() {
    // The file-size limit: writes fail (EFBIG) past 512 KiB, the process goes on and reports.
    let dir = scratch("efbig");
    let out = dir.join("model.nnef.tar");
    let r = compile(&out, "trap '' XFSZ; ulimit -f 512");
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains("File too large") || err.contains("large"),
        "{err}"
    );
    assert_eq!(
        files(&dir),
        Vec::<String>::new(),
        "nothing may be left behind"
    );

    // A real full filesystem, where this process may mount one.
    let mnt = scratch("tmpfs");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("NOTE: cannot mount a tmpfs here (not root?): full-filesystem case skipped");
        return;
    }
    let out = mnt.join("model.nnef.tar");
    let r = compile(&out, "");
    let err = String::from_utf8_lossy(&r.stderr).into_owned();
    let left = files(&mnt);
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains("No space left"), "{err}");
    assert_eq!(left, Vec::<String>::new(), "nothing may be left behind");
}

#[test]
fn a_failed_or_killed_compile_keeps_the_old_archive() {
    let dir = scratch("keep");
    let out = dir.join("model.nnef.tar");
    let r = compile(&out, "");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let good = std::fs::read(&out).unwrap();

    // Full disk while overwriting: error, the old archive untouched.
    let r = compile(&out, "trap '' XFSZ; ulimit -f 512");
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).unwrap(), good);

    // Killed mid-write (SIGXFSZ's default action): the old archive untouched; what the dead
    // process left is only `model.nnef.tar.partial`, which no loader takes for complete.
    let r = compile(&out, "ulimit -c 0; ulimit -f 512");
    assert_eq!(r.status.code(), None, "expected death by signal: {r:?}");
    assert_eq!(std::fs::read(&out).unwrap(), good);
    assert!(loads(&out));
    let partial = dir.join("model.nnef.tar.partial");
    assert_eq!(files(&dir), ["model.nnef.tar", "model.nnef.tar.partial"]);
    assert!(std::fs::metadata(&partial).unwrap().len() <= 512 * 1024);
    assert!(!loads(&partial), "a truncated archive must not load");

    // Without an old archive, a kill leaves no file under the final name.
    let fresh = dir.join("fresh.nnef.tar");
    let r = compile(&fresh, "ulimit -c 0; ulimit -f 512");
    assert_eq!(r.status.code(), None);
    assert!(!fresh.exists());
}

/// A load that cannot fit is refused before it starts, naming what it needs, instead of being
/// killed halfway by the OOM killer. `BERT_EDGE_MEM_AVAILABLE_MB` stands in for a small board's
/// MemAvailable (or a cgroup's `MemoryMax=`), which the check reads otherwise.
#[test]
fn a_model_too_big_for_memory_is_refused_before_loading() {
    let info = |avail_mb: &str| {
        Command::new(env!("CARGO_BIN_EXE_bert-edge"))
            .args(["info", "--seq", "8", "--model"])
            .arg(model("ids", "f32"))
            .env("BERT_EDGE_MEM_AVAILABLE_MB", avail_mb)
            .output()
            .unwrap()
    };
    let r = info("4");
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains("out of memory"), "{err}");
    assert!(err.contains("only 4 MiB are available"), "{err}");
    let need: u64 = err
        .split("needs about ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no need in {err}"));
    // The tiny f32 ids export is 5.6 MiB: ONNX loads peak at ~2.2x the file + 32 MiB.
    assert!((40..=50).contains(&need), "need {need} MiB: {err}");
    let r = info("1000");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}
