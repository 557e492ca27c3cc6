//! `twinshield backend`: the reference receiver of what twins publish.
//! It verifies each request's signature against the enrolled devices'
//! device.fp files, refuses unknown devices, bad digests, stale timestamps
//! and replayed nonces (401, generic body; the reason on standard error),
//! and stores each accepted message exactly once. It serves HTTPS with
//! the operator's certificate and key, or plain HTTP on a loopback address
//! only (tests, or behind a local TLS terminator).

use anyhow::{Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;
use twinshield_api::{ApiConfig, ApiListener, TlsIdentity, Transport};
use twinshield_backend::{MAX_BODY, MessageStore, Receiver, ReceiverEvent, Verifier};
use twinshield_shield_macros::diversify;

/// Arguments of `backend`.
#[derive(Args)]
pub struct BackendArgs {
    /// Address to listen on: HTTPS with --tls-cert and --tls-key, plain
    /// HTTP (a loopback address only) without them.
    #[arg(long)]
    listen: SocketAddr,
    /// Directory of enrolled devices' device.fp files (`*.fp`).
    #[arg(long)]
    devices: PathBuf,
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

/// `twinshield backend`: serves until interrupted.
#[diversify]
pub fn run(args: &BackendArgs) -> Result<ExitCode> {
    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsIdentity::from_pem_files(cert, key)?),
        _ if !args.listen.ip().is_loopback() => bail!(
            "plain HTTP is served only on a loopback address, not {}; give --tls-cert and --tls-key to serve HTTPS",
            args.listen
        ),
        _ => None,
    };
    let transport = match &identity {
        Some(id) => Transport::Tls(id.server_config(None)?, None),
        None => Transport::PlainLoopback,
    };
    let verifier = Verifier::from_dir(&args.devices)?;
    let devices = verifier.devices();
    let store = MessageStore::open(&args.store)?;
    let already = store.len();
    let receiver = Arc::new(Receiver::new(verifier, store).on_event(|e| match e {
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
    }));
    crate::executor::runtime()?.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        crate::executor::stop_on_ctrl_c(&stop_tx);
        let listener = ApiListener::bind(args.listen, transport).await?;
        let scheme = if listener.is_tls() { "https" } else { "http" };
        eprintln!(
            "backend listening on {scheme}://{} ({devices} device(s) enrolled, {already} message(s) stored in {}{})",
            listener.local_addr().unwrap_or(args.listen),
            args.store.display(),
            identity
                .as_ref()
                .map_or(String::new(), |id| format!("; certificate sha256 {}", id.fingerprint()))
        );
        let config = ApiConfig {
            max_body: MAX_BODY,
            ..ApiConfig::default()
        };
        listener.serve(receiver.router(), &config, stop_rx).await;
        Ok(ExitCode::SUCCESS)
    })
}
