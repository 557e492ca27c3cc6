//! `twinshield harden BINARY [--seed N]`: seals a built binary's integrity (see
//! `twinshield_shield::harden`). Runs without the shield: it is what makes a binary shieldable.

use std::path::PathBuf;
use std::process::ExitCode;
use twinshield_shield::ReleaseKey;
use twinshield_shield_macros::diversify;

use anyhow::{Context, Result};
use clap::Args;

/// Largest binary `harden` reads.
const MAX_BINARY: u64 = 1 << 30;

/// Arguments of `harden`.
#[derive(Args)]
pub struct HardenArgs {
    /// The twinshield binary to harden, in place.
    binary: PathBuf,
    /// Seed of the region layout and table key (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// The release key that signs the guard table (default: `twinshield-release.key` beside
    /// BINARY, where the build leaves it); it must be the key this twinshield was built with.
    #[arg(long, value_name = "FILE")]
    release_key: Option<PathBuf>,
    /// Harden a build that embeds the public development white-box secret (development and tests
    /// only: such a build is no release).
    #[arg(long)]
    allow_development_secret: bool,
}

/// `twinshield harden`.
#[diversify]
pub fn run(args: &HardenArgs) -> Result<ExitCode> {
    let path = &args.binary;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > MAX_BINARY {
        anyhow::bail!("{} is larger than 1 GiB", path.display());
    }
    let mut bytes =
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if twinshield_whitebox::embedded::built_with_development_secret(&bytes) {
        if !args.allow_development_secret {
            anyhow::bail!(
                "{} embeds the public development white-box secret: build releases with \
                 TWINSHIELD_WB_SECRET or TWINSHIELD_WB_SECRET_FILE (or pass \
                 --allow-development-secret for development)",
                path.display()
            );
        }
        eprintln!(
            "warning: {} embeds the public development white-box secret: not a release",
            path.display()
        );
    }
    twinshield_shield::harden::check_hardenable(&bytes)
        .with_context(|| format!("cannot harden {}", path.display()))?;
    let key = release_key(args)?;
    let seed = match args.seed {
        Some(s) => s,
        None => getrandom::u64().context("no randomness for the seed")?,
    };
    let report = twinshield_shield::harden(&mut bytes, seed, &key)
        .with_context(|| format!("cannot harden {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    super::files::write_atomic(path, &bytes, mode)?;
    println!(
        "hardened {}: {} guard regions over {:.1} MiB of code and read-only data (seed {seed})",
        path.display(),
        report.regions,
        report.covered as f64 / (1024.0 * 1024.0)
    );
    Ok(ExitCode::SUCCESS)
}

/// The release key `--release-key` names, or the build's beside the
/// binary; refused unless it is the key this twinshield was built with (a
/// table signed by another would never verify).
#[diversify]
fn release_key(args: &HardenArgs) -> Result<ReleaseKey> {
    let path = match &args.release_key {
        Some(p) => p.clone(),
        None => args
            .binary
            .with_file_name(twinshield_shield::release::KEY_FILE),
    };
    let text = super::files::read_text(&path, "release key").with_context(|| {
        "harden signs with the release key the build left beside the binary; give it with --release-key FILE"
    })?;
    let key = ReleaseKey::from_text(&text).with_context(|| format!("{}", path.display()))?;
    if !key.is_this_builds() {
        anyhow::bail!(
            "{} is not the release key this twinshield was built with",
            path.display()
        );
    }
    Ok(key)
}
