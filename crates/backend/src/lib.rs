//! Signed backend publishing: requests signed with the device's Ed25519
//! key (HTTP Message Signatures, RFC 9421), an encrypted outbox with retry,
//! and the reference receiver.
//!
//! No password, token or API key exists anywhere: the device signs each
//! request with the key bound to its hardware, the receiver checks it
//! against the device's enrolled `device.fp`. The protocol is described in
//! `docs/backend.md`.
//!
//! - [`httpsig`]: the signature base, [`Signer`] and [`Verifier`];
//! - [`Outbox`]: messages waiting, encrypted at rest, surviving restarts;
//! - [`Publisher`]: the task that delivers the outbox with backoff, over
//!   HTTPS ([`BackendTls`]) or plain HTTP to a loopback address;
//! - [`Receiver`]: the reference receiver (verify, store exactly once).
//!
//! A request signed with a device's key verifies against that device's
//! public key, once: the same signed request again is a replay.
//!
//! ```
//! use ed25519_dalek::SigningKey;
//! use twinshield_backend::{MESSAGES_PATH, Rejection, RequestParts, Signer, Verifier};
//!
//! let (device, key) = ("0123456789abcdef", SigningKey::from_bytes(&[5; 32]));
//! let verifier = Verifier::from_keys([(device.to_owned(), key.verifying_key().to_bytes())])?;
//! let signer = Signer::from_signing_key(device, key);
//! let (body, now) = (br#"{"kind":"heartbeat"}"#, 1_700_000_000);
//! let headers = signer.sign_request("POST", MESSAGES_PATH, body, now)?;
//! let request = RequestParts {
//!     method: "POST",
//!     path: MESSAGES_PATH,
//!     signature_input: Some(&headers.signature_input),
//!     signature: Some(&headers.signature),
//!     content_digest: Some(&headers.content_digest),
//!     body,
//! };
//! assert_eq!(verifier.verify(&request, now + 5)?.keyid, device);
//! assert_eq!(verifier.verify(&request, now + 6), Err(Rejection::Replay));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod httpsig;
mod message;
mod outbox;
mod publisher;
mod receiver;
pub mod sf;
mod tls;

pub use httpsig::{
    Rejection, RequestParts, SignRefused, SignedHeaders, Signer, Verified, Verifier, content_digest,
};
pub use message::{MAX_BODY, MESSAGES_PATH, Message, MessageKind};
pub use outbox::{MAX_PENDING, Outbox, OutboxError};
pub use publisher::{
    BackendUrl, Backoff, Publisher, PublisherConfig, PublisherHandle, PublisherReport,
};
pub use receiver::{MessageStore, Receiver, ReceiverEvent};
pub use tls::BackendTls;

/// What can go wrong when publishing or receiving.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend URL is not one this build can publish to.
    #[error("backend URL: {0}")]
    Url(&'static str),
    /// An `https://` backend, but nothing to trust its certificate with.
    #[error("no trust roots for the https:// backend: {0}")]
    NoTrustRoots(String),
    /// The TLS client could not be configured (an extra CA certificate
    /// that is not PEM or cannot be a trust root).
    #[error("backend TLS: {0}")]
    Tls(String),
    /// The signing function refused (key gone, shield degraded).
    #[error(transparent)]
    Sign(#[from] SignRefused),
    /// No randomness for a nonce.
    #[error("no randomness available")]
    Random,
    /// A request component holds characters a signature base cannot carry.
    #[error("the request cannot be signed: a component is not visible ASCII")]
    Unsignable,
    /// The outbox failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Enrolled devices could not be read.
    #[error("cannot enrol devices: {0}")]
    Enrol(String),
    /// The backend could not be reached or the exchange failed.
    #[error("backend unreachable: {0}")]
    Transport(String),
    /// The backend answered with a non-2xx status.
    #[error("backend answered HTTP {0}")]
    Status(u16),
    /// The publisher's in-memory queue is full; the message was dropped.
    #[error("the publisher's queue is full; message dropped")]
    QueueFull,
    /// The publisher task has stopped.
    #[error("the publisher has stopped")]
    Stopped,
    /// The receiver's store failed.
    #[error("message store: {0}")]
    Store(String),
}
