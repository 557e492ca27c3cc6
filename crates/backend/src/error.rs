//! What can go wrong when publishing or receiving, with the cause behind
//! it: each message shows its cause, and [`std::error::Error::source`]
//! returns it, so a caller can tell an unreadable file from a bad one, or
//! a refused connection from a TLS failure.

use crate::{OutboxError, SignRefused};
use std::path::PathBuf;

/// What can go wrong when publishing or receiving.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend URL is not one this build can publish to.
    #[error("backend URL: {0}")]
    Url(&'static str),
    /// An `https://` backend, but nothing to trust its certificate with.
    #[error("no trust roots for the https:// backend: {0}")]
    NoTrustRoots(#[source] NoTrustRoots),
    /// The TLS client could not be configured (an extra CA certificate
    /// that is not PEM or cannot be a trust root).
    #[error("backend TLS: {0}")]
    Tls(#[source] TlsSetupError),
    /// The signing function refused (key gone, shield degraded).
    #[error(transparent)]
    Sign(#[from] SignRefused),
    /// No randomness for a nonce.
    #[error("no randomness available")]
    Random(#[source] getrandom::Error),
    /// A request component holds characters a signature base cannot carry.
    #[error("the request cannot be signed: a component is not visible ASCII")]
    Unsignable,
    /// The outbox failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Enrolled devices could not be read.
    #[error("cannot enrol devices: {0}")]
    Enrol(#[source] EnrolError),
    /// The backend could not be reached or the exchange failed.
    #[error("backend unreachable: {0}")]
    Transport(#[source] TransportError),
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
    Store(#[source] MessageStoreError),
    /// The backend's answer to `GET /v1/heads` is not a heads list.
    #[error("the backend's answer is not a list of heads: {0}")]
    HeadsAnswer(#[source] serde_json::Error),
}

/// Why no trust root is left for an `https://` backend.
#[derive(Debug, thiserror::Error)]
pub enum NoTrustRoots {
    /// The system's store was not asked, and no CA certificate given.
    #[error("no CA certificate was given")]
    NoneGiven,
    /// The system's store holds no certificate, and none was given.
    #[error("the system's certificate store is empty and no CA certificate was given")]
    SystemStoreEmpty,
    /// The system's store could not be read, and none was given.
    #[error("the system's certificate store is unreadable ({0}) and no CA certificate was given")]
    SystemStoreUnreadable(#[source] rustls_native_certs::Error),
}

/// Why the TLS client could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The extra CA file does not parse as PEM.
    #[error("the extra CA certificate is not PEM: {0}")]
    NotPem(#[source] rustls::pki_types::pem::Error),
    /// The extra CA file holds no certificate.
    #[error("the extra CA file holds no PEM certificate")]
    NoCertificate,
    /// A certificate of the extra CA file cannot be a trust root.
    #[error("the extra CA certificate cannot be a trust root: {0}")]
    NotARoot(#[source] rustls::Error),
    /// rustls refused the configuration.
    #[error(transparent)]
    Rustls(rustls::Error),
}

/// Why the enrolled devices could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The directory or a file in it could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// More devices than one receiver enrols.
    #[error("more than {max} devices in {}", dir.display())]
    TooMany {
        /// The directory.
        dir: PathBuf,
        /// The most enrolled.
        max: usize,
    },
    /// A `.fp` file is larger than any device.fp.
    #[error("{} is too large", .0.display())]
    TooLarge(PathBuf),
    /// A `.fp` file is not a valid device.fp.
    #[error("{}: {source}", path.display())]
    Fingerprint {
        /// The file.
        path: PathBuf,
        /// Why it is not valid.
        #[source]
        source: twinshield_seal::SealError,
    },
    /// A device's public key is not a valid Ed25519 key.
    #[error("device {device} has an invalid Ed25519 key")]
    BadKey {
        /// The device's key id.
        device: String,
        /// Why the key is invalid.
        #[source]
        source: ed25519_dalek::SignatureError,
    },
    /// The directory holds no device.fp.
    #[error("no device.fp (*.fp) in {}: enrol a device first", .0.display())]
    NoDevices(PathBuf),
}

/// Why an exchange with the backend failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The message could not be encoded.
    #[error(transparent)]
    Encode(serde_json::Error),
    /// The request could not be built.
    #[error(transparent)]
    Request(hyper::http::Error),
    /// The TCP connection could not be opened.
    #[error(transparent)]
    Connect(std::io::Error),
    /// The TLS handshake failed (the certificate, the name, the protocol).
    #[error("TLS: {0}")]
    Tls(#[source] std::io::Error),
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(hyper::Error),
    /// No answer within the timeout.
    #[error("timed out")]
    TimedOut,
}

/// Why the receiver's message store failed.
#[derive(Debug, thiserror::Error)]
pub enum MessageStoreError {
    /// The store's directory or file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Open {
        /// The directory.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// A message could not be encoded.
    #[error(transparent)]
    Encode(serde_json::Error),
    /// A message could not be appended and synced.
    #[error(transparent)]
    Append(std::io::Error),
    /// Another thread panicked while holding the store.
    #[error("store lock poisoned")]
    Poisoned,
}
