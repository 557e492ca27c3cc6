//! Plant protocols: a validating Modbus TCP client for the twin, and a
//! register server for plants (the reference plant, test peers).
//!
//! The client never trusts the plant: every reply is checked against what was
//! asked (exception codes, short replies, values outside their declared
//! range) and each problem becomes a typed [`ReadError`] that the sync loop
//! records as a data-quality event. A sample is delivered whole or not at
//! all, so nothing half-read reaches the estimator. Timeouts, dropped
//! connections and transaction-id mismatches drop the connection; the next
//! read reconnects after an exponential backoff, which also resynchronises a
//! stream that got out of step.
//!
//! Every plant source implements [`PlantSource`], the one trait the
//! application layer knows: it yields whole samples with each value's
//! quality and, where the plant provides it, the plant's own timestamp.
//!
//! This crate knows nothing of twin models: it deals in [`Point`]s.
//!
//! A [`PointMap`] decodes a [`RegisterBank`] exactly as a read over the
//! network would, range check included:
//!
//! ```
//! use twinshield_connect::{Point, PointMap, ReadError, RegisterBank, Table};
//!
//! let level = Point {
//!     name: "y1".into(),
//!     table: Table::Input,
//!     address: 0,
//!     words: 1,
//!     scale: 0.01,
//!     offset: 0.0,
//!     signed: false,
//!     range: (0.0, 30.0),
//! };
//! let map = PointMap::new(1, vec![level])?;
//! let mut bank = RegisterBank { input: vec![1226], ..RegisterBank::default() };
//! assert!((bank.read(&map)?.values[0] - 12.26).abs() < 1e-9);
//!
//! bank.input[0] = 4000; // 40 cm: outside the point's range
//! assert!(matches!(bank.read(&map), Err(ReadError::OutOfRange { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod client;
mod map;
mod server;
mod source;

pub use client::{ClientConfig, Mismatch, ModbusClient, ReadError, Reading, SharedCause};
pub use map::{MapError, Point, PointMap, Table};
pub use server::{RegisterBank, SharedBank, serve};
pub use source::{ConnectionState, PlantSample, PlantSource, Quality, SourceInfo};
