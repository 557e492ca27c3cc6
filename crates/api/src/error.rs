//! Errors of setting the API up and of managing its tokens. Errors a
//! client sees are not these: every refusal it gets is a generic status
//! and body ([`crate::server`]).

use std::path::PathBuf;
use twinshield_shield_macros::diversify;

/// What went wrong setting up the API or managing its tokens. Where an
/// error has a cause (the operating system's, the TLS library's), the
/// message shows it and [`std::error::Error::source`] returns it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The token file could not be encoded.
    #[error("token file: {0}")]
    TokenEncode(#[source] serde_json::Error),
    /// The token file could not be sealed (no randomness for a nonce).
    #[error("cannot seal the token file")]
    TokenSeal(#[source] twinshield_atrest::EncryptError),
    /// The system's random number generator failed.
    #[error("randomness: {0}")]
    Random(#[source] getrandom::Error),
    /// A new token could not be hashed.
    #[error("cannot hash the token")]
    Hash(#[source] argon2::password_hash::Error),
    /// The token file does not open under this device's key (copied from
    /// another device, or edited).
    #[error(
        "the token file {0} does not open on this device (copied or edited); move it away and issue new tokens"
    )]
    TokenFile(String),
    /// Not one of viewer, operator, admin.
    #[error("unknown role `{0}` (expected viewer, operator or admin)")]
    BadRole(String),
    /// `--expires 0`.
    #[error("--expires must be at least 1 day")]
    BadExpiry,
    /// `token revoke` with an id that is not there.
    #[error("no token with id `{0}` (see `twinshield token list`)")]
    NoSuchToken(String),
    /// The TLS certificate or key is unusable.
    #[error("TLS: {what}")]
    Tls {
        /// What is wrong, in words.
        what: String,
        /// The library's or operating system's error behind it, if any.
        #[source]
        source: Option<TlsCause>,
    },
    /// The sealed TLS key does not open on this device.
    #[error(
        "the TLS key {0} does not open on this device (copied or edited); move it and its certificate away to get new ones"
    )]
    TlsKeySealed(String),
    /// Plain HTTP was asked for on an address other than loopback.
    #[error("plain HTTP is served only on a loopback address, not {0}")]
    PlainHttpNotLoopback(std::net::SocketAddr),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
}

/// The error behind an [`ApiError::Tls`].
#[derive(Debug, thiserror::Error)]
pub enum TlsCause {
    /// rustls refused the configuration, the certificate or the key.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// A PEM file does not parse.
    #[error(transparent)]
    Pem(#[from] rustls::pki_types::pem::Error),
    /// The self-signed certificate could not be made.
    #[error(transparent)]
    Certificate(#[from] rcgen::Error),
    /// The private key could not be sealed.
    #[error(transparent)]
    Seal(#[from] twinshield_atrest::EncryptError),
    /// A certificate file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[diversify]
impl ApiError {
    /// An [`ApiError::Io`] for `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ApiError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An [`ApiError::Tls`] saying `what`, caused by `source`.
    pub(crate) fn tls(what: impl Into<String>, source: impl Into<TlsCause>) -> Self {
        ApiError::Tls {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// An [`ApiError::Tls`] saying `what`, with no error behind it.
    pub(crate) fn tls_only(what: impl Into<String>) -> Self {
        ApiError::Tls {
            what: what.into(),
            source: None,
        }
    }
}
