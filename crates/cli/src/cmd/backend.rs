//! `twinshield backend`: the reference receiver of what twins publish. It verifies each request's
//! signature against the enrolled devices' device.fp files, refuses unknown devices, bad digests,
//! stale timestamps and replayed nonces (401, generic body; the reason on standard error), and
//! stores each accepted message exactly once. It serves HTTPS with the operator's certificate and
//! key, or plain HTTP on a loopback address only (tests, or behind a local TLS terminator).

use anyhow::Result;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use twinshield_backend::ReceiverEvent;
use twinshield_runtime::backend_host::{BackendPlan, BackendReady, export_heads, serve_backend};
use twinshield_runtime::executor::{executor, stop_on_ctrl_c};
use twinshield_shield_macros::diversify;

/// Arguments of `backend`: serving (the default), or a subcommand.
#[derive(Args)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct BackendArgs {
    #[command(subcommand)]
    command: Option<BackendCommand>,
    /// Address to listen on: HTTPS with --tls-cert and --tls-key, plain HTTP (a loopback address
    /// only) without them.
    #[arg(long, required = true)]
    listen: Option<SocketAddr>,
    /// Directory of enrolled devices' device.fp files (`*.fp`).
    #[arg(long, required = true)]
    devices: Option<PathBuf>,
    /// Directory of the store (messages.jsonl).
    #[arg(long, default_value = "backend-store")]
    store: PathBuf,
    /// Serve HTTPS with this certificate chain (PEM; with --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PKCS#8 PEM; with --tls-cert).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// What `backend` does besides serving.
#[derive(Subcommand)]
pub enum BackendCommand {
    /// Print a device's signed history heads as kept in the store (JSON), for `twinshield history
    /// verify --heads FILE` on the device. Reads the store only.
    Heads(HeadsArgs),
}

/// Arguments of `backend heads`.
#[derive(Args)]
pub struct HeadsArgs {
    /// Directory of the store (messages.jsonl).
    #[arg(long, default_value = "backend-store")]
    store: PathBuf,
    /// The device's ID (16 hex digits, as `twinshield fingerprint` prints it).
    #[arg(long)]
    device: String,
}

/// `twinshield backend heads`: the heads as one JSON object on standard output.
#[diversify]
fn heads(args: &HeadsArgs) -> Result<ExitCode> {
    let list = export_heads(&args.store, &args.device)?;
    println!("{}", serde_json::to_string_pretty(&list)?);
    Ok(ExitCode::SUCCESS)
}

/// `twinshield backend`: serves until interrupted.
#[diversify]
pub fn run(args: &BackendArgs) -> Result<ExitCode> {
    if let Some(BackendCommand::Heads(h)) = &args.command {
        return heads(h);
    }
    let (Some(listen), Some(devices)) = (args.listen, args.devices.clone()) else {
        anyhow::bail!("--listen and --devices are required");
    };
    let plan = BackendPlan {
        listen,
        devices,
        store: args.store.clone(),
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
    };
    let store = args.store.display().to_string();
    let ready = |r: BackendReady| {
        let certificate = r
            .fingerprint
            .map_or(String::new(), |f| format!("; certificate sha256 {f}"));
        eprintln!(
            "backend listening on {} ({} device(s) enrolled, {} message(s) stored in {store}{certificate})",
            r.url, r.devices, r.stored
        );
    };
    executor()?.block_on(async move {
        let (_stop, stop_rx) = stop_on_ctrl_c();
        serve_backend(&plan, show, ready, stop_rx).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// One line per request: accepted and duplicate messages on standard output, refusals on standard
/// error.
#[diversify]
fn show(e: &ReceiverEvent<'_>) {
    match e {
        ReceiverEvent::Stored(m) => {
            println!(
                "accepted {} {} from device {}",
                m.kind.name(),
                m.id,
                m.device
            );
        }
        ReceiverEvent::Duplicate(m) => {
            println!("duplicate {} {} (already stored)", m.kind.name(), m.id);
        }
        ReceiverEvent::Rejected { peer, reason } => {
            eprintln!("rejected request from {peer}: {reason}");
        }
        ReceiverEvent::Invalid { peer, reason } => {
            eprintln!("invalid request from {peer}: {reason}");
        }
        ReceiverEvent::StoreFailed(e) => eprintln!("error: {e}"),
    }
}
