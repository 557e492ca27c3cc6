//! `twinshield token`: the API's bearer tokens on this device. A token is printed once; the device
//! keeps only its Argon2id hash, in a file sealed under a key derived from the device key.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use twinshield_api::{Role, TokenStore};
use twinshield_seal::{DeviceIdentity, EmbeddedSecret};
use twinshield_shield_macros::diversify;

/// Token commands.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a token (printed once, never stored).
    New(NewArgs),
    /// List the tokens (ids, roles, expiry; never the tokens).
    List(ListArgs),
    /// Revoke a token: a running twin refuses it within a second.
    Revoke(RevokeArgs),
}

/// Where the device's state lives.
#[derive(Args)]
pub struct StateArg {
    /// State directory holding the device's keys.
    #[arg(long)]
    state: Option<PathBuf>,
}

/// Arguments of `token new`.
#[derive(Args)]
pub struct NewArgs {
    /// What the token may do: viewer, operator or admin.
    #[arg(long)]
    role: Role,
    /// Days until the token expires (default: never).
    #[arg(long, value_name = "DAYS")]
    expires: Option<u32>,
    #[command(flatten)]
    state: StateArg,
}

/// Arguments of `token list`.
#[derive(Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    state: StateArg,
}

/// Arguments of `token revoke`.
#[derive(Args)]
pub struct RevokeArgs {
    /// The token's id (8 hex digits, from `token list`).
    id: String,
    #[command(flatten)]
    state: StateArg,
}

/// The token file of this device (opening the device's identity).
#[diversify]
pub fn store(state: &StateArg) -> Result<TokenStore> {
    let state = crate::cmd::files::state_dir(state.state.as_deref())?;
    crate::shield::handle().check_before_key_use();
    let device = DeviceIdentity::open(&state, &EmbeddedSecret)?;
    Ok(TokenStore::new(
        &twinshield_runtime::api::token_file(&state),
        device.storage_key("api-tokens"),
    ))
}

#[diversify]
fn when(unix: Option<u64>) -> String {
    unix.map_or_else(|| "never".to_owned(), |t| format!("{t} (Unix time)"))
}

/// Runs a token command.
#[diversify]
pub fn run(c: &TokenCommand) -> Result<ExitCode> {
    match c {
        TokenCommand::New(a) => {
            let (record, token) = store(&a.state)?.issue(a.role, a.expires)?;
            eprintln!(
                "token {} ({}), expires {}: shown once, keep it safe",
                record.id,
                record.role.name(),
                when(record.expires)
            );
            println!("{}", token.expose());
        }
        TokenCommand::List(a) => {
            let tokens = store(&a.state)?.list()?;
            if a.json {
                let v: Vec<_> = tokens
                    .iter()
                    .map(|t| json!({"id": t.id, "role": t.role, "created": t.created, "expires": t.expires}))
                    .collect();
                println!("{}", serde_json::to_string(&v)?);
            } else if tokens.is_empty() {
                eprintln!("no tokens");
            } else {
                for t in tokens {
                    println!(
                        "{}  {:<8}  created {}  expires {}",
                        t.id,
                        t.role.name(),
                        t.created,
                        when(t.expires)
                    );
                }
            }
        }
        TokenCommand::Revoke(a) => {
            let gone = store(&a.state)?.revoke(&a.id)?;
            eprintln!("token {} ({}) revoked", gone.id, gone.role.name());
        }
    }
    Ok(ExitCode::SUCCESS)
}
