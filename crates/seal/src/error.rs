use std::path::PathBuf;
use thiserror::Error;
use twinshield_shield_macros::diversify;

/// Why sealing, opening or identifying failed. Every message is one line
/// that names the problem and never contains key material or model content.
/// Where the operating system or a library gave a reason, the message
/// shows it and [`std::error::Error::source`] returns it.
#[derive(Debug, Error)]
pub enum SealError {
    /// A file is not in the expected format, truncated or has extra bytes.
    #[error("{0}")]
    Malformed(String),
    /// The bundle's signature does not verify under the trusted key.
    #[error("bundle signature does not verify")]
    BadSignature,
    /// device.fp's self-signature does not verify.
    #[error("device.fp signature does not verify")]
    BadFingerprint,
    /// The bundle was not sealed for this device.
    #[error("bundle is not licensed for this device")]
    NotLicensed,
    /// This machine is not the device the state directory belongs to. The
    /// message says nothing about how close it came: how many components
    /// match is no one's business but the audit log's.
    #[error("this machine is not the device its keys belong to")]
    NotThisDevice {
        /// Key wraps whose components were all present and were tried.
        tried: usize,
    },
    /// The device's bundle key was wiped after its bundle was opened: a
    /// second bundle needs the identity opened again.
    #[error("the device's bundle key is no longer held (open the identity again)")]
    BundleKeyWiped,
    /// A bundle older than one already run.
    #[error("bundle release {release} is older than release {highest} already run")]
    Rollback {
        /// This bundle's release.
        release: u64,
        /// The highest release run for this model.
        highest: u64,
    },
    /// The device's identity could not be created or used.
    #[error("{0}")]
    Identity(String),
    /// The state directory holds no device identity yet.
    #[error("no device identity in {} (run `twinshield fingerprint` first)", .0.display())]
    NoIdentity(PathBuf),
    /// The content key could not be wrapped for a device (HPKE).
    #[error("cannot wrap the content key")]
    Wrap(#[source] hpke::HpkeError),
    /// Decryption failed where integrity was already verified: a bug or
    /// memory corruption, not an input problem.
    #[error("bundle payload does not decrypt")]
    Decrypt,
    /// The payload decrypted but is not a valid model.
    #[error("bundle payload is not a valid model: {0}")]
    Model(#[source] twinshield_model::PayloadError),
    /// The payload holds another model than its header names.
    #[error("bundle payload is not a valid model: header and payload name different models")]
    ModelMismatch,
    /// The system's random number generator failed.
    #[error("the system random number generator failed")]
    Random(#[source] getrandom::Error),
    /// Reading or writing the state directory failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (`cannot read PATH`).
        what: String,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
}

#[diversify]
impl From<twinshield_atrest::EncryptError> for SealError {
    fn from(e: twinshield_atrest::EncryptError) -> Self {
        match e {
            twinshield_atrest::EncryptError::Random(e) => SealError::Random(e),
            twinshield_atrest::EncryptError::TooLong => {
                SealError::Malformed("too large to encrypt".into())
            }
        }
    }
}

#[diversify]
impl SealError {
    pub(crate) fn io(what: String, source: std::io::Error) -> Self {
        SealError::Io { what, source }
    }
}
