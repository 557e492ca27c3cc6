//! Device identity, publisher keys and sealed twin bundles.
//!
//! A vendor seals a model for named devices: the compiled model is
//! encrypted under a fresh content key (ChaCha20-Poly1305), the content key
//! is wrapped to each device with HPKE (RFC 9180, X25519-HKDF-SHA256,
//! ChaCha20-Poly1305) bound to that device's fingerprint commitments, and
//! the whole file is signed with the publisher's Ed25519 key. A device opens
//! only bundles signed by a key it trusts and sealed for it, with its own
//! keys, which it keeps encrypted under a key that only enough of its own
//! hardware and system components rebuild (Shamir shares, any k of n).
//!
//! Format: `docs/bundle-format.md`. Nothing here writes plaintext models or
//! keys to disk; secrets live in zeroizing buffers.
#![forbid(unsafe_code)]

mod bundle;
mod device;
mod error;
pub mod fingerprint;
mod publisher;
mod random;
mod secret;
mod shamir;
mod wire;

pub use bundle::{BundleHeader, OpenedBundle, SealRequest, inspect, open, seal};
pub use device::{DeviceFp, DeviceIdentity, MIN_COMPONENTS};
pub use error::SealError;
pub use publisher::{PublisherKey, PublisherPub};
pub use secret::{EmbeddedSecret, RuntimeSecret};
