//! Precompiled plans: tract's NNEF archive (`.nnef.tar`, or gzipped `.nnef.tgz`) written at
//! translate time and loaded on the device with tract-core + tract-nnef only.
//!
//! The archive holds the decluttered model with its inputs pinned and every graph fix
//! applied, plus bert-edge properties ([`PlanInfo`]) and the tract version that wrote it.
//! Loading only optimizes (kernel selection for the CPU at hand) and builds the plan.

use super::options::LoadOptions;
use super::{Plan, PlanInfo};
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;
use tract_core::internal::*;

/// The tract version this crate is built against; archives record it.
pub(crate) const TRACT_VERSION: &str = "0.23.9";
const VERSION_KEY: &str = "bert_edge.tract_version";
const DIGEST_KEY: &str = "bert_edge.weights_digest";

/// Order-independent digest of the model's constant tensors (≥ 16 elements): count and
/// wrapping sum of each tensor's CRC-32. A plain `.tar` has no checksum over its data (gzip
/// has one), so a flipped weight byte would otherwise load as silently different weights.
/// ~10 ms for the base int8 weights.
fn weights_digest(model: &TypedModel) -> String {
    use tract_core::ops::konst::Const;
    let (mut n, mut sum) = (0u64, 0u64);
    for node in model.nodes() {
        let Some(k) = node.op_as::<Const>() else {
            continue;
        };
        let t = k.val();
        if t.volume() < 16 {
            continue;
        }
        if let Ok(view) = t.try_as_plain_ram() {
            n += 1;
            sum = sum.wrapping_add(crc32fast::hash(view.as_bytes()) as u64);
        }
    }
    format!("{n}:{sum:016x}")
}

/// A string property of a model (written by [`save_archive`] or [`PlanInfo`]'s codec).
pub(crate) fn string_property(model: &TypedModel, key: &str) -> Option<String> {
    let t = model.properties.get(key)?;
    t.try_as_plain_ram()
        .ok()?
        .to_scalar::<String>()
        .ok()
        .cloned()
}

/// tract's NNEF framework with every registry a BERT archive needs.
pub(crate) fn nnef() -> tract_nnef::framework::Nnef {
    use tract_onnx_opl::WithOnnx;
    use tract_transformers::WithTractTransformers;
    tract_nnef::nnef()
        .with_tract_transformers()
        .with_onnx()
        .with_registry(crate::passes::nnef_registry())
}

/// Writes a translated (decluttered, pinned) model as an NNEF archive: a plain tar when
/// `path` ends in `.tar` (recommended: weights compress little — base int8 99 MB plain vs
/// 86 MB gzipped, f32 390 vs 377 MB — and a start then skips ~0.4 s of inflating), tar.gz
/// otherwise. Written to a temporary file beside `path`, synced, then renamed over it: a
/// crash or a full disk leaves the old file or none, never a truncated one.
pub(crate) fn save_archive(model: &TypedModel, path: &Path) -> Result<()> {
    let mut model = model.clone();
    model.properties.insert(
        VERSION_KEY.into(),
        Arc::new(tensor0(TRACT_VERSION.to_string())),
    );
    let digest = weights_digest(&model);
    model
        .properties
        .insert(DIGEST_KEY.into(), Arc::new(tensor0(digest)));
    // tract reports write failures (full disk, …) inside its own error: I/O is I/O.
    let tract_err =
        |e: anyhow::Error| match e.chain().find_map(|c| c.downcast_ref::<std::io::Error>()) {
            Some(io) => Error::io(path, std::io::Error::new(io.kind(), io.to_string())),
            None => Error::Engine(e),
        };
    crate::runtime::atomic_write(path, |file| {
        let file = std::io::BufWriter::new(file);
        if path.extension().is_some_and(|e| e == "tar") {
            let w = nnef().write_to_tar(&model, file).map_err(tract_err)?;
            w.into_inner().map_err(|e| Error::io(path, e.into_error()))
        } else {
            let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            let gz = nnef().write_to_tar(&model, gz).map_err(tract_err)?;
            let file = gz.finish().map_err(|e| Error::io(path, e))?;
            file.into_inner()
                .map_err(|e| Error::io(path, e.into_error()))
        }
    })
}

/// Loads an archive written by [`save_archive`] (`bert-edge compile`) and optimizes it;
/// `opts` must agree with what it was compiled for.
pub(crate) fn load(path: &Path, opts: &LoadOptions) -> Result<Plan> {
    opts.check()?;
    let _memory = super::LoadMemory::begin();
    let model = nnef().model_for_path(path).map_err(|e| {
        Error::bad_model(format!(
            "{} is not a readable NNEF archive: {e:#}",
            path.display()
        ))
    })?;
    let version = string_property(&model, VERSION_KEY).ok_or_else(|| {
        Error::bad_model(format!(
            "{}: not made by `bert-edge compile` (no {VERSION_KEY} property)",
            path.display()
        ))
    })?;
    if version != TRACT_VERSION {
        return Err(Error::bad_model(format!(
            "{}: compiled with tract {version}, this build uses tract {TRACT_VERSION}: recompile it",
            path.display()
        )));
    }
    let stored = string_property(&model, DIGEST_KEY);
    if stored.as_deref() != Some(weights_digest(&model).as_str()) {
        return Err(Error::bad_model(format!(
            "{}: corrupt archive (its weights do not match the checksum written by `bert-edge compile`)",
            path.display()
        )));
    }
    let info = PlanInfo::from_properties(&model)?;
    // Checked against the stored info before the expensive optimization.
    info.check(opts, path)?;
    Plan::from_translated(model, info, opts, true)
}

#[cfg(test)]
mod tests {
    use super::TRACT_VERSION;

    /// The `=X` version of every tract crate Cargo.toml pins (`tract-core = "=0.23.9"`,
    /// `tract-onnx = { version = "=0.23.9", … }`), by crate name.
    fn pins(manifest: &str) -> Vec<(&str, &str)> {
        manifest
            .lines()
            .filter(|l| l.starts_with("tract-"))
            .filter_map(|l| {
                let (name, rest) = l.split_once('=')?;
                let version = rest.split("\"=").nth(1)?.split('"').next()?;
                Some((name.trim(), version))
            })
            .collect()
    }

    /// Archives record TRACT_VERSION and refuse another one: it must be the tract the crate
    /// is built with, so a tract upgrade in Cargo.toml that forgets it fails here.
    #[test]
    fn tract_version_is_the_cargo_pin() {
        let pins = pins(include_str!("../../Cargo.toml"));
        assert!(
            pins.iter().any(|(name, _)| *name == "tract-core"),
            "no tract-core = \"=X\" pin in Cargo.toml: {pins:?}"
        );
        for (name, version) in &pins {
            assert_eq!(*version, TRACT_VERSION, "{name} in Cargo.toml");
        }
        // The patched copy that is really linked ([patch.crates-io]) is that version too.
        let vendored = include_str!("../../vendor/tract-core/Cargo.toml");
        let line = format!("version = \"{TRACT_VERSION}\"");
        assert!(vendored.lines().any(|l| l == line), "vendor/tract-core");
    }
}
