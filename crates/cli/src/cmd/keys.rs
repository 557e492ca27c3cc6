//! `twinshield keys new`: a publisher key pair.

use super::files::write_atomic;
use anyhow::{Result, bail};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use twinshield_seal::PublisherKey;
use twinshield_shield_macros::diversify;

/// Publisher key commands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a publisher key pair: NAME.key (secret, mode 0600) and NAME.pub.
    New {
        /// Path prefix of the two files.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `twinshield keys new`.
#[diversify]
pub fn keys(cmd: &KeysCommand) -> Result<ExitCode> {
    let KeysCommand::New { out } = cmd;
    let key_path = PathBuf::from(format!("{}.key", out.display()));
    let pub_path = PathBuf::from(format!("{}.pub", out.display()));
    for p in [&key_path, &pub_path] {
        if p.exists() {
            bail!("{} already exists; not overwriting a key", p.display());
        }
    }
    let key = PublisherKey::generate()?;
    write_atomic(&key_path, key.to_text().as_bytes(), 0o600)?;
    write_atomic(&pub_path, key.public().to_text().as_bytes(), 0o644)?;
    eprintln!(
        "publisher key {} written to {} and {}",
        key.public().key_id_hex(),
        key_path.display(),
        pub_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
