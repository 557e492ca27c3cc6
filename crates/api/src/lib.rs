//! twinshield's hardened API: HTTPS (rustls, TLS 1.3 with 1.2 as the
//! floor), bearer tokens with roles (only Argon2id hashes stored, sealed
//! under the device key), rate limits per token and per address, strict
//! JSON, generic refusals, security headers, the live feed (server-sent
//! events), Prometheus metrics, the OpenAPI document and the embedded
//! dashboard. See docs/api.md.
//!
//! The twin publishes into a [`Feed`]; the API asks the rest of the twin
//! for history, audit log and shield status through [`TwinServices`]; it
//! knows nothing of plant protocols.
//!
//! A token issued into a sealed token file checks out with its role, and
//! only the token itself does:
//!
//! ```
//! use twinshield_api::{Role, TokenCheck, TokenRefusal, TokenStore};
//! use zeroize::Zeroizing;
//!
//! let dir = tempfile::tempdir()?;
//! let store = || TokenStore::new(&dir.path().join("tokens"), Zeroizing::new([7u8; 32]));
//! let (record, token) = store().issue("operator".parse::<Role>()?, None)?;
//! let check = TokenCheck::new(store())?;
//! let principal = check.check(token.expose())?;
//! assert_eq!((principal.role, principal.token_id), (Role::Operator, record.id.clone()));
//! let guessed = format!("tsk_{}_{}", record.id, "A".repeat(43));
//! assert_eq!(check.check(&guessed), Err(TokenRefusal::WrongSecret));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod dashboard;
mod error;
mod feed;
mod limit;
pub mod openapi;
pub mod routes;
mod sealed;
mod server;
mod tls;
mod token;

pub use error::{ApiError, TlsCause};
pub use feed::{
    AlarmView, AuditEntry, BindingView, ChannelInfo, ChannelState, Feed, FindingView, HistoryPoint,
    LiveEvent, SecurityView, Series, ServiceError, StateView, TwinInfo, TwinServices,
};
pub use limit::RateLimit;
pub use server::{ApiConfig, ApiListener, Transport, router};
pub use tls::{ClientCerts, TlsIdentity};
pub use token::{
    IssuedToken, Principal, Role, TokenCheck, TokenRecord, TokenRefusal, TokenStore, parse_token,
};
