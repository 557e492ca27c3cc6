//! The files commands read and write: the state directory, size-capped reads, and
//! (`twinshield-atrest`'s) whole-or-nothing writes.

use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};
use twinshield_runtime::device::default_state_dir;
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// Largest bundle, device.fp, key or secret file read, bytes.
const MAX_FILE: u64 = 64 * 1024 * 1024;

/// The state directory: `--state`, else the device's default (see `default_state_dir`).
pub(crate) fn state_dir(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => default_state_dir().context("cannot find a state directory: set --state"),
    }
}

#[diversify]
pub(crate) fn read_limited(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta =
        fs::metadata(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if meta.len() > MAX_FILE {
        bail!("{what} {} is larger than 64 MiB", path.display());
    }
    fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

#[diversify]
pub(crate) fn read_text(path: &Path, what: &str) -> Result<Zeroizing<String>> {
    let bytes = Zeroizing::new(read_limited(path, what)?);
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| anyhow::anyhow!("{what} {} is not text", path.display()))
}

/// Writes a file whole or not at all, with its mode.
pub(crate) use twinshield_atrest::write_atomic;
