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
//! - [`Receiver`]: the reference receiver (verify, store exactly once),
//!   which keeps each device's signed history heads ([`SignedHead`]) and
//!   serves them back to the device (`GET /v1/heads`).
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

mod error;
mod heads;
pub mod httpsig;
mod message;
mod outbox;
mod publisher;
mod receiver;
pub mod sf;
mod tls;

pub use error::{
    BackendError, EnrolError, MessageStoreError, NoTrustRoots, TlsSetupError, TransportError,
};
pub use heads::{
    HEADS_PATH, HOURLY_HEADS, HeadError, HeadList, HeadListError, MAX_HEADS_SERVED, RECENT_HEADS,
    SignedHead,
};
pub use httpsig::{
    Rejection, RequestParts, SignRefused, SignedHeaders, Signer, Verified, Verifier, content_digest,
};
pub use message::{MAX_BODY, MESSAGES_PATH, Message, MessageKind};
pub use outbox::{MAX_PENDING, Outbox, OutboxError};
pub use publisher::{
    BackendUrl, Backoff, Publisher, PublisherConfig, PublisherHandle, PublisherReport, fetch_heads,
};
pub use receiver::{MessageStore, Receiver, ReceiverEvent};
pub use tls::{BackendTls, SYSTEM_CA_DIR, SYSTEM_CA_FILES, ignored_trust_variables};
