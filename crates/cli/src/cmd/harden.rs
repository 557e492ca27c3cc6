//! `twinshield harden BINARY [--seed N]`: seals a built binary's integrity (see
//! `twinshield_shield::harden`). Runs without the shield: it is what makes a binary shieldable.

use std::path::PathBuf;
use std::process::ExitCode;
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
    let seed = match args.seed {
        Some(s) => s,
        None => getrandom::u64().context("no randomness for the seed")?,
    };
    let report = twinshield_shield::harden(&mut bytes, seed)
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
