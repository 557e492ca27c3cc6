//! Device identity, publisher keys and sealed twin bundles.
//!
//! A vendor seals a model for named devices: the compiled model is
//! encrypted under a fresh content key (ChaCha20-Poly1305), the content key
//! is wrapped to each device with HPKE (RFC 9180, X25519-HKDF-SHA256,
//! ChaCha20-Poly1305) bound to that device's binding value, and the whole
//! file is signed with the publisher's Ed25519 key. A device opens only
//! bundles signed by a key it trusts and sealed for it, with its own keys,
//! which it keeps sealed once per allowed subset of its components (any k
//! of n, at least two of them hardware-resident) under Argon2id-derived
//! keys: see [`wraps`].
//!
//! Format: `docs/bundle-format.md`. Nothing here writes plaintext models or
//! keys to disk; secrets live in zeroizing buffers.
//!
//! A publisher seals the shipped model for one device; that device opens
//! it, and the header reads without any key:
//!
//! ```
//! use twinshield_model::Model;
//! use twinshield_seal::{DeviceIdentity, EmbeddedSecret, PublisherKey, SealRequest, inspect, open, seal};
//!
//! let model = Model::parse("quadtank.twin", include_str!("../../../models/quadtank.twin"))?;
//! let state = std::env::temp_dir().join(format!("twinshield-seal-doc-{}", std::process::id()));
//! let (device, _created) = DeviceIdentity::open_or_create(&state, &EmbeddedSecret)?;
//! let publisher = PublisherKey::generate()?;
//! let bundle = seal(&SealRequest {
//!     model: &model,
//!     devices: &[device.fingerprint().clone()],
//!     publisher: &publisher,
//!     release: 1,
//!     secrets: &[],
//!     shield_policy: None,
//!     backend: None,
//!     backend_ca: None,
//! })?;
//! let header = inspect(&bundle)?;
//! assert_eq!((header.model_name.as_str(), header.release), ("quadtank", 1));
//! let opened = open(&bundle, &publisher.public(), &device)?;
//! assert_eq!(opened.model.outputs, model.outputs);
//! # std::fs::remove_dir_all(&state)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod bundle;
mod device;
mod error;
pub mod fingerprint;
mod hardware;
mod legacy;
mod publisher;
mod random;
mod secret;
mod shamir;
mod wire;
pub mod wraps;

pub use bundle::{BundleHeader, OpenedBundle, SealRequest, inspect, open, seal};
pub use device::{DeviceFp, DeviceIdentity, MIN_COMPONENTS};
pub use error::SealError;
pub use publisher::{PublisherKey, PublisherPub};
pub use secret::{EmbeddedSecret, RuntimeSecret};
