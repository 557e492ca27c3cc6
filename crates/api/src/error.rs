//! Errors of setting the API up and of managing its tokens. Errors a
//! client sees are not these: every refusal it gets is a generic status
//! and body ([`crate::server`]).

/// What went wrong setting up the API or managing its tokens.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
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
    #[error("TLS: {0}")]
    Tls(String),
    /// The sealed TLS key does not open on this device.
    #[error(
        "the TLS key {0} does not open on this device (copied or edited); move it and its certificate away to get new ones"
    )]
    TlsKeySealed(String),
    /// Plain HTTP was asked for on an address other than loopback.
    #[error("plain HTTP is served only on a loopback address, not {0}")]
    PlainHttpNotLoopback(std::net::SocketAddr),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why not.
        reason: String,
    },
}
