//! One module per command (and `files`, what they share).

pub mod backend;
pub mod demo;
pub mod eval;
pub(crate) mod files;
pub mod fingerprint;
pub mod harden;
pub mod history;
pub mod inspect;
pub mod keys;
pub mod model;
pub mod plant;
pub mod run;
pub mod seal;
pub mod token;
